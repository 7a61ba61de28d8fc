//! AWS Signature Version 4 verification of header-signed requests (`Authorization:
//! AWS4-HMAC-SHA256 ...`). Pure: the caller looks up the secret between [`parse`] and [`verify`].
//!
//! The canonical request is rebuilt from the `SignedHeaders` the client actually sent, so any
//! SDK's choice of signed headers verifies. Signatures are compared in constant time, the
//! request time must be within the configured skew (past or future), and `host` must be signed.

mod canonical;
mod error;

pub use error::SigV4Error;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc2822;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The request as received.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Header names in any case, raw values; repeated names allowed.
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
    fn first<'s>(&'s self, name: &'s str) -> Option<&'s str> {
        self.values(name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// The parsed `Authorization` header and request time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    pub access_key_id: String,
    /// Credential scope date, `yyyymmdd`.
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: [u8; 32],
    pub request_time: OffsetDateTime,
    pub session_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Expected credential-scope service (`aws-marketplace` for this API).
    pub service: String,
    /// Largest accepted difference between the request time and now (AWS: 15 minutes).
    pub max_skew: Duration,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            service: "aws-marketplace".into(),
            max_skew: Duration::minutes(15),
        }
    }
}

const AMZ_DATE: &[time::format_description::FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

pub fn parse(req: &RequestParts) -> Result<ParsedAuth, SigV4Error> {
    let raw = req
        .values("authorization")
        .next()
        .ok_or(SigV4Error::MissingAuthentication)?;
    let auth = std::str::from_utf8(raw)
        .map_err(|_| SigV4Error::Incomplete("Authorization header is not valid UTF-8".into()))?;
    let rest = match auth.trim_start().split_once(' ') {
        Some((alg, rest)) if alg == ALGORITHM => rest,
        _ => {
            return Err(SigV4Error::Incomplete(format!(
                "unsupported Authorization header; expected '{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...'"
            )))
        }
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let missing = |p: &str| {
        SigV4Error::Incomplete(format!(
            "Authorization header requires '{p}' parameter. Authorization={ALGORITHM} Credential=..., SignedHeaders=..., Signature=..."
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(SigV4Error::Incomplete(
            "Credential must have the form <access key>/<yyyymmdd>/<region>/<service>/aws4_request"
                .into(),
        ));
    };
    if terminator != "aws4_request" || access_key_id.is_empty() || region.is_empty() {
        return Err(SigV4Error::Incomplete(
            "Credential must have the form <access key>/<yyyymmdd>/<region>/<service>/aws4_request"
                .into(),
        ));
    }
    let mut sig = [0u8; 32];
    hex::decode_to_slice(signature, &mut sig).map_err(|_| {
        SigV4Error::Incomplete("Signature must be 64 hexadecimal characters".into())
    })?;

    let request_time = match req.first("x-amz-date") {
        Some(d) => PrimitiveDateTime::parse(d, AMZ_DATE)
            .map(|t| t.assume_utc())
            .map_err(|_| SigV4Error::Incomplete(format!("X-Amz-Date {d:?} is not in the form 20261123T032008Z")))?,
        None => match req.first("date") {
            Some(d) => OffsetDateTime::parse(d, &Rfc2822)
                .map_err(|_| SigV4Error::Incomplete(format!("Date header {d:?} is not an RFC 1123 date")))?,
            None => {
                return Err(SigV4Error::Incomplete(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header".into(),
                ))
            }
        },
    };

    Ok(ParsedAuth {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature: sig,
        request_time,
        session_token: req.first("x-amz-security-token").map(str::to_string),
    })
}

/// Derived signing keys per (access key, secret digest, date, region, service): repeated
/// requests skip the four key-derivation HMACs. A changed secret never hits an old entry.
#[derive(Default)]
pub struct SigningKeyCache {
    keys: Mutex<HashMap<CacheKey, [u8; 32]>>,
}

/// (access key id, SHA-256 of the secret, scope date, region, service).
type CacheKey = (String, [u8; 32], String, String, String);

/// Entries kept before the cache is emptied (keys change daily; this bounds memory).
const CACHE_CAPACITY: usize = 10_000;

impl SigningKeyCache {
    fn get_or_derive(&self, parsed: &ParsedAuth, secret: &str) -> [u8; 32] {
        let key = (
            parsed.access_key_id.clone(),
            Sha256::digest(secret.as_bytes()).into(),
            parsed.date.clone(),
            parsed.region.clone(),
            parsed.service.clone(),
        );
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.get(&key) {
            return *k;
        }
        let derived = signing_key(secret, &parsed.date, &parsed.region, &parsed.service);
        if keys.len() >= CACHE_CAPACITY {
            keys.clear();
        }
        keys.insert(key, derived);
        derived
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Verifies without a cache.
pub fn verify(
    req: &RequestParts,
    parsed: &ParsedAuth,
    secret_access_key: &str,
    expected_session_token: Option<&str>,
    now: OffsetDateTime,
    cfg: &VerifyConfig,
) -> Result<(), SigV4Error> {
    let key = signing_key(
        secret_access_key,
        &parsed.date,
        &parsed.region,
        &parsed.service,
    );
    verify_with_key(req, parsed, key, expected_session_token, now, cfg)
}

/// Verifies, taking the derived signing key from `cache`.
pub fn verify_cached(
    cache: &SigningKeyCache,
    req: &RequestParts,
    parsed: &ParsedAuth,
    secret_access_key: &str,
    expected_session_token: Option<&str>,
    now: OffsetDateTime,
    cfg: &VerifyConfig,
) -> Result<(), SigV4Error> {
    // Check the cheap, key-independent rules first so a bogus scope never fills the cache.
    check_scope_and_time(parsed, now, cfg)?;
    let key = cache.get_or_derive(parsed, secret_access_key);
    verify_with_key(req, parsed, key, expected_session_token, now, cfg)
}

fn fmt_amz(t: OffsetDateTime) -> String {
    t.format(AMZ_DATE).unwrap_or_default()
}

fn check_scope_and_time(
    parsed: &ParsedAuth,
    now: OffsetDateTime,
    cfg: &VerifyConfig,
) -> Result<(), SigV4Error> {
    if parsed.service != cfg.service {
        return Err(SigV4Error::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{}'.",
            cfg.service
        )));
    }
    let amz = fmt_amz(parsed.request_time);
    if !amz.starts_with(&parsed.date) || parsed.date.len() != 8 {
        return Err(SigV4Error::InvalidSignature(format!(
            "Date in Credential scope ({}) does not match YYYYMMDD from the request time ({amz})",
            parsed.date
        )));
    }
    let skew_min = cfg.max_skew.whole_minutes();
    if now - parsed.request_time > cfg.max_skew {
        return Err(SigV4Error::Expired(format!(
            "Signature expired: {amz} is now earlier than {} ({} - {skew_min} min.)",
            fmt_amz(now - cfg.max_skew),
            fmt_amz(now)
        )));
    }
    if parsed.request_time - now > cfg.max_skew {
        return Err(SigV4Error::Expired(format!(
            "Signature not yet current: {amz} is still later than {} ({} + {skew_min} min.)",
            fmt_amz(now + cfg.max_skew),
            fmt_amz(now)
        )));
    }
    Ok(())
}

fn verify_with_key(
    req: &RequestParts,
    parsed: &ParsedAuth,
    key: [u8; 32],
    expected_session_token: Option<&str>,
    now: OffsetDateTime,
    cfg: &VerifyConfig,
) -> Result<(), SigV4Error> {
    check_scope_and_time(parsed, now, cfg)?;
    if !parsed.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::InvalidSignature(
            "'Host' must be a signed header".into(),
        ));
    }
    let payload_hash = hex::encode(Sha256::digest(req.body));
    if let Some(declared) = req.first("x-amz-content-sha256") {
        if declared != payload_hash {
            return Err(SigV4Error::InvalidSignature(
                "x-amz-content-sha256 does not match the SHA-256 of the body".into(),
            ));
        }
    }
    let canonical = canonical::request(req, &parsed.signed_headers, &payload_hash)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n{}",
        fmt_amz(parsed.request_time),
        parsed.date,
        parsed.region,
        parsed.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let expected = hmac(&key, string_to_sign.as_bytes());
    if !bool::from(expected.ct_eq(&parsed.signature)) {
        return Err(SigV4Error::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
                .into(),
        ));
    }
    // After the signature: only a correctly signed request learns about its token.
    let token_ok = match (expected_session_token, parsed.session_token.as_deref()) {
        (None, None) => true,
        (Some(want), Some(got)) => bool::from(want.as_bytes().ct_eq(got.as_bytes())),
        _ => false,
    };
    if !token_ok {
        return Err(SigV4Error::SessionToken(
            "The security token included in the request is invalid.".into(),
        ));
    }
    Ok(())
}
