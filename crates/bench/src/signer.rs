//! SigV4 signing of every request with the AWS SDK's own signer (`aws-sigv4`), exactly as the
//! SDKs sign `meteringmarketplace` calls: service `aws-marketplace`, headers host, content-type
//! and x-amz-target.

use crate::world::Credential;
use anyhow::{Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

pub const SERVICE: &str = "aws-marketplace";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A credential turned into the signer's identity once, not per request.
pub struct Signer {
    identity: Identity,
    region: String,
}

impl Signer {
    pub fn new(c: &Credential) -> Self {
        let creds = Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "marketmeter-bench",
        );
        Self {
            identity: creds.into(),
            region: c.region.clone(),
        }
    }

    /// A signed `POST /` of `body` to `authority` for the operation `target`.
    pub fn request(
        &self,
        authority: &str,
        target: &str,
        body: String,
    ) -> Result<http::Request<String>> {
        let url = format!("http://{authority}/");
        let headers = [
            ("host", authority),
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", target),
        ];
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("signing parameters")?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .context("signable request")?;
        let (instructions, _) = sign(signable, &params)
            .context("signing the request")?
            .into_parts();
        let mut builder = http::Request::builder().method("POST").uri("/");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let mut req = builder.body(body).context("building the request")?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_the_credential_scope_of_the_workload_region() {
        let signer = Signer::new(&Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("token".into()),
            region: "eu-west-1".into(),
        });
        let req = signer
            .request(
                "127.0.0.1:9",
                "AWSMPMeteringService.MeterUsage",
                "{}".into(),
            )
            .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(auth.contains("/eu-west-1/aws-marketplace/aws4_request"));
        assert!(auth.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        ));
        assert_eq!(req.headers()["x-amz-security-token"], "token");
        assert_eq!(req.headers()["host"], "127.0.0.1:9");
    }
}
