//! SigV4 verification, cross-checked against the real `aws-sigv4` signer and a published vector,
//! plus the negative cases a verifier must reject.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use marketmeter_sigv4::*;
use proptest::prelude::*;
use std::time::{Duration as StdDuration, SystemTime};
use time::{Duration, OffsetDateTime};

/// A request as the server sees it: owned headers.
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Req {
    fn with<R>(&self, f: impl FnOnce(&RequestParts) -> R) -> R {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        f(&RequestParts {
            method: &self.method,
            path: &self.path,
            query: None,
            headers: &headers,
            body: &self.body,
        })
    }
    fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
    }
    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
    fn header(&self, name: &str) -> String {
        let v = &self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1;
        String::from_utf8(v.clone()).unwrap()
    }
}

const T0: u64 = 1_795_402_800; // 2026-11-23T03:00:00Z

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + StdDuration::from_secs(secs)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0 as i64).unwrap()
}

/// Signs like the SDKs do, with the real signer (every signing input is a parameter on purpose).
#[allow(clippy::too_many_arguments)]
fn signed(
    headers: &[(&str, &str)],
    body: &[u8],
    ak: &str,
    sk: &str,
    token: Option<&str>,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Req {
    let identity = Credentials::new(ak, sk, token.map(str::to_string), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        "http://127.0.0.1:7171/",
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:7171/");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut req = builder.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    Req {
        method: "POST".into(),
        path: "/".into(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.to_vec(),
    }
}

fn botocore_like(body: &[u8], token: Option<&str>, region: &str) -> Req {
    signed(
        &[
            ("host", "127.0.0.1:7171"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AWSMPMeteringService.BatchMeterUsage"),
        ],
        body,
        "AKIDEXAMPLE",
        "secret",
        token,
        region,
        "aws-marketplace",
        at(T0),
    )
}

fn check(
    req: &Req,
    secret: &str,
    token: Option<&str>,
    now: OffsetDateTime,
) -> Result<ParsedAuth, SigV4Error> {
    req.with(|p| {
        let parsed = parse(p)?;
        verify(p, &parsed, secret, token, now, &VerifyConfig::default())?;
        Ok(parsed)
    })
}

#[track_caller]
fn kind(r: Result<ParsedAuth, SigV4Error>) -> &'static str {
    r.unwrap_err().aws_error_name()
}

#[test]
fn published_get_vanilla_vector() {
    // The AWS SigV4 test suite's "get-vanilla" case, independent of aws-sigv4.
    let req = Req {
        method: "GET".into(),
        path: "/".into(),
        headers: vec![
            ("Host".into(), b"example.amazonaws.com".to_vec()),
            ("X-Amz-Date".into(), b"20150830T123600Z".to_vec()),
            (
                "Authorization".into(),
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".to_vec(),
            ),
        ],
        body: vec![],
    };
    let cfg = VerifyConfig {
        service: "service".into(),
        max_skew: Duration::minutes(15),
    };
    let now = OffsetDateTime::from_unix_timestamp(1_440_938_160).unwrap();
    req.with(|p| {
        let parsed = parse(p).unwrap();
        verify(
            p,
            &parsed,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            now,
            &cfg,
        )
        .unwrap();
        assert!(verify(
            p,
            &parsed,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEX",
            None,
            now,
            &cfg
        )
        .is_err());
    });
}

#[test]
fn botocore_and_rust_sdk_header_sets_verify() {
    let req = botocore_like(br#"{"UsageRecords":[]}"#, None, "us-west-2");
    let parsed = check(&req, "secret", None, now()).unwrap();
    assert_eq!(parsed.region, "us-west-2");
    assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");

    let rust = signed(
        &[
            ("content-length", "2"),
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "127.0.0.1:7171"),
            ("x-amz-target", "AWSMPMeteringService.MeterUsage"),
            (
                "x-amz-user-agent",
                "aws-sdk-rust/1.3.9  os/linux lang/rust/1.95.0",
            ),
        ],
        b"{}",
        "AKIDEXAMPLE",
        "secret",
        Some("session"),
        "eu-central-1",
        "aws-marketplace",
        at(T0),
    );
    check(&rust, "secret", Some("session"), now()).unwrap();
}

#[test]
fn cache_gives_the_same_answers_and_never_serves_an_old_secret() {
    let cache = SigningKeyCache::default();
    let req = botocore_like(b"{}", None, "us-east-1");
    let cfg = VerifyConfig::default();
    req.with(|p| {
        let parsed = parse(p).unwrap();
        for _ in 0..3 {
            verify_cached(&cache, p, &parsed, "secret", None, now(), &cfg).unwrap();
        }
        assert_eq!(
            verify_cached(&cache, p, &parsed, "rotated", None, now(), &cfg)
                .unwrap_err()
                .aws_error_name(),
            "InvalidSignatureException"
        );
    });
}

#[test]
fn negative_cases() {
    let body = br#"{"UsageRecords":[]}"#;
    let good = botocore_like(body, None, "us-east-1");
    assert_eq!(
        kind(check(&good, "wrong", None, now())),
        "InvalidSignatureException"
    );

    // Scope edited after signing: region, service, date.
    for (from, to) in [
        ("/us-east-1/", "/us-west-2/"),
        ("/aws-marketplace/", "/execute-api/"),
        ("/20261123/", "/20261122/"),
    ] {
        let mut r = good.clone();
        r.set(
            "authorization",
            &good.header("authorization").replace(from, to),
        );
        assert_eq!(
            kind(check(&r, "secret", None, now())),
            "InvalidSignatureException",
            "{to}"
        );
    }
    // Signed for another service with its own valid signature.
    let other = signed(
        &[("host", "h"), ("content-type", "x")],
        body,
        "AKIDEXAMPLE",
        "secret",
        None,
        "us-east-1",
        "s3",
        at(T0),
    );
    let e = check(&other, "secret", None, now()).unwrap_err();
    assert!(e.to_string().contains("aws-marketplace"), "{e}");

    // Clock skew: 14 min ok, 16 min old or ahead rejected.
    for (offset, ok) in [
        (-14 * 60, true),
        (14 * 60, true),
        (-16 * 60, false),
        (16 * 60, false),
    ] {
        let r = signed(
            &[("host", "h")],
            body,
            "AKIDEXAMPLE",
            "secret",
            None,
            "us-east-1",
            "aws-marketplace",
            at((T0 as i64 + offset) as u64),
        );
        assert_eq!(
            check(&r, "secret", None, now()).is_ok(),
            ok,
            "offset {offset}"
        );
    }

    // Host not signed.
    let mut r = good.clone();
    r.set(
        "authorization",
        &good.header("authorization").replace(";host;", ";"),
    );
    let e = check(&r, "secret", None, now()).unwrap_err();
    assert_eq!(e.aws_error_name(), "InvalidSignatureException");
    assert!(
        e.to_string().contains("'Host' must be a signed header"),
        "{e}"
    );

    // Body changed, a signed header changed, a signed header removed.
    let mut r = good.clone();
    r.body = br#"{"UsageRecords":[{}]}"#.to_vec();
    assert_eq!(
        kind(check(&r, "secret", None, now())),
        "InvalidSignatureException"
    );
    assert!(good.header("authorization").contains("content-type"));
    let mut r = good.clone();
    r.set("content-type", "application/x-amz-json-1.0");
    assert_eq!(
        kind(check(&r, "secret", None, now())),
        "InvalidSignatureException"
    );
    let mut r = good.clone();
    r.remove("content-type");
    assert_eq!(
        kind(check(&r, "secret", None, now())),
        "InvalidSignatureException"
    );
    // Declared payload hash that lies.
    let mut r = good.clone();
    r.set("x-amz-content-sha256", &"0".repeat(64));
    assert_eq!(
        kind(check(&r, "secret", None, now())),
        "InvalidSignatureException"
    );

    // Session tokens: stripped, wrong, unexpected.
    let with_token = botocore_like(body, Some("tok"), "us-east-1");
    check(&with_token, "secret", Some("tok"), now()).unwrap();
    assert_eq!(
        kind(check(&with_token, "secret", Some("other"), now())),
        "UnrecognizedClientException"
    );
    assert_eq!(
        kind(check(&with_token, "secret", None, now())),
        "UnrecognizedClientException"
    );
    assert_eq!(
        kind(check(&good, "secret", Some("tok"), now())),
        "UnrecognizedClientException"
    );
    let mut stripped = with_token.clone();
    stripped.remove("x-amz-security-token");
    assert_eq!(
        kind(check(&stripped, "secret", Some("tok"), now())),
        "InvalidSignatureException",
        "token was signed"
    );

    // Missing and malformed Authorization.
    let mut r = good.clone();
    r.remove("authorization");
    assert_eq!(
        kind(check(&r, "secret", None, now())),
        "MissingAuthenticationTokenException"
    );
    let auth = good.header("authorization");
    let sig_at = auth.find("Signature=").unwrap();
    for bad in [
        auth[..sig_at].trim_end_matches([',', ' ']).to_string(),
        format!("{}Signature=zz", &auth[..sig_at]),
        auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        auth.replace("/aws4_request", ""),
        "Bearer abc".to_string(),
    ] {
        let mut r = good.clone();
        r.set("authorization", &bad);
        assert_eq!(
            kind(check(&r, "secret", None, now())),
            "IncompleteSignatureException",
            "{bad}"
        );
    }
    let mut r = good.clone();
    r.remove("x-amz-date");
    assert_eq!(
        kind(check(&r, "secret", None, now())),
        "IncompleteSignatureException"
    );
}

#[test]
fn header_names_match_case_insensitively() {
    let good = botocore_like(b"{}", None, "us-east-1");
    let mut upper = good.clone();
    upper.headers = good
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_uppercase(), v.clone()))
        .collect();
    check(&upper, "secret", None, now()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_body_region_and_target_signed_by_aws_sigv4_verifies(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        op in prop::sample::select(vec!["BatchMeterUsage", "MeterUsage", "RegisterUsage", "ResolveCustomer"]),
        token in proptest::option::of("[A-Za-z0-9/+=]{8,40}"),
    ) {
        let target = format!("AWSMPMeteringService.{op}");
        let r = signed(
            &[("host", "localhost:8080"), ("content-type", "application/x-amz-json-1.1"), ("x-amz-target", &target)],
            &body, "AKIDEXAMPLE", "s3cr3t/+=", token.as_deref(), &region, "aws-marketplace", at(T0),
        );
        prop_assert!(check(&r, "s3cr3t/+=", token.as_deref(), now()).is_ok());
        let mut tampered = r.clone();
        tampered.body.push(b' ');
        prop_assert!(check(&tampered, "s3cr3t/+=", token.as_deref(), now()).is_err());
    }
}
