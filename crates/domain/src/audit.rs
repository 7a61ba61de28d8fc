//! The audit trail: one append-only event per metering API call, in the spirit of CloudTrail.
//!
//! The HTTP front fills an [`AuditEvent`] as a call proceeds (who, from where, what). A call
//! that changes stored state hands a copy to the store write, which inserts it in the same
//! transaction as the change ([`Audit::for_write`]); every other call (rejections, reads, dry
//! runs) appends its event on its own once answered. Secrets never enter an event: the
//! signature, secret key and session token travel in headers that are never copied, and a
//! registration token (a bearer credential) is kept only as its SHA-256 digest.

use crate::store::MeterOutcome;
use marketmeter_wire::{ErrorCode, Request};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How a call ended, as its caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    /// A BatchMeterUsage answered with records in `UnprocessedRecords`.
    Partial,
    Error,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "partial" => Some(Self::Partial),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// One metering API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When the call arrived, on the service clock (the manual clock under `--clock manual`).
    pub time: OffsetDateTime,
    /// The operation name, or `Unknown` when `X-Amz-Target` named none.
    pub operation: String,
    /// The account of the access key, when the key is known.
    pub account: Option<String>,
    pub access_key_id: Option<String>,
    /// The TCP peer address (proxies' headers are not trusted).
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The region of the SigV4 credential scope.
    pub region: Option<String>,
    /// The `x-amzn-RequestId` the client was answered with.
    pub request_id: String,
    /// The request body as JSON with secrets replaced (see [`request_parameters`]).
    pub request_parameters: Option<String>,
    pub outcome: AuditOutcome,
    /// The `__type` of the error answered (`error` outcomes).
    pub error_code: Option<String>,
}

/// Longest user agent kept (bytes); longer ones are cut at a character boundary.
const MAX_USER_AGENT: usize = 512;

impl AuditEvent {
    /// The event of a call that just arrived; the rest is filled in as the call proceeds.
    pub fn arrived(time: OffsetDateTime, request_id: String) -> Self {
        Self {
            time,
            operation: "Unknown".into(),
            account: None,
            access_key_id: None,
            source_ip: None,
            user_agent: None,
            region: None,
            request_id,
            request_parameters: None,
            outcome: AuditOutcome::Success,
            error_code: None,
        }
    }

    pub fn set_user_agent(&mut self, ua: &str) {
        let mut end = ua.len().min(MAX_USER_AGENT);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        self.user_agent = Some(ua[..end].to_string());
    }

    /// The call was answered with the error `code`.
    pub fn failed(mut self, code: ErrorCode) -> Self {
        self.outcome = AuditOutcome::Error;
        self.error_code = Some(code.type_name().to_string());
        self
    }

    /// As answered for a MeterUsage whose write ended in `o`.
    pub fn settle_meter(self, o: &MeterOutcome) -> Self {
        match crate::metering::meter_refusal(o) {
            Some(code) => self.failed(code),
            None => self,
        }
    }

    /// As answered for a ResolveCustomer of a single-use token: refused when it was used.
    pub fn settle_consume(self, consumed: bool) -> Self {
        if consumed {
            self
        } else {
            self.failed(crate::metering::USED_TOKEN)
        }
    }
}

/// The event of the call being served, and whether a store write already recorded it.
#[derive(Debug)]
pub struct Audit {
    event: AuditEvent,
    recorded: bool,
}

impl Audit {
    pub fn new(event: AuditEvent) -> Self {
        Self {
            event,
            recorded: false,
        }
    }

    pub fn event(&self) -> &AuditEvent {
        &self.event
    }

    pub fn event_mut(&mut self) -> &mut AuditEvent {
        &mut self.event
    }

    /// A copy for a store write, which records it (settled) in the write's transaction. The
    /// original stays here so that a failed write can still be recorded as a failure.
    pub fn for_write(&self) -> AuditEvent {
        self.event.clone()
    }

    /// The store committed the copy from [`Audit::for_write`].
    pub fn written(&mut self) {
        self.recorded = true;
    }

    /// Whether the event is already stored (with the call's change).
    pub fn is_recorded(&self) -> bool {
        self.recorded
    }

    pub fn into_event(self) -> AuditEvent {
        self.event
    }
}

/// A stored event and its position in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing with insertion; the paging cursor.
    pub seq: i64,
    pub event: AuditEvent,
}

/// A page of the trail: every field narrows; ordered by `seq`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub operation: Option<String>,
    pub account: Option<String>,
    /// Inclusive.
    pub from: Option<OffsetDateTime>,
    /// Exclusive.
    pub to: Option<OffsetDateTime>,
    /// Only events after this `seq` (the previous page's last).
    pub after: Option<i64>,
    /// At most this many ([`MAX_AUDIT_PAGE`] when larger; [`DEFAULT_AUDIT_PAGE`] when absent).
    pub limit: Option<u32>,
}

pub const DEFAULT_AUDIT_PAGE: u32 = 100;
pub const MAX_AUDIT_PAGE: u32 = 1000;

impl AuditFilter {
    pub fn page_size(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_AUDIT_PAGE)
            .clamp(1, MAX_AUDIT_PAGE)
    }
}

/// How a registration token appears in the trail: its SHA-256, so that someone holding a token
/// can find its calls, while the trail cannot be used to resolve one.
pub fn token_digest(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// The fields holding a bearer credential, replaced by [`token_digest`] wherever they appear.
const CREDENTIAL_FIELDS: [&str; 1] = ["RegistrationToken"];

/// Largest parameters kept (bytes of JSON); larger ones are replaced by [`omitted`], so one
/// event stays small whatever the request (bodies go up to 1 MB).
pub const MAX_PARAMETERS: usize = 64 * 1024;

/// What stands for parameters larger than [`MAX_PARAMETERS`].
fn omitted(bytes: usize) -> String {
    serde_json::json!({ "omitted": "larger than the audit limit", "bytes": bytes }).to_string()
}

fn bounded(json: String) -> String {
    if json.len() > MAX_PARAMETERS {
        omitted(json.len())
    } else {
        json
    }
}

/// The parameters of a decoded request: its known fields only, re-encoded.
pub fn request_parameters(req: &Request) -> Option<String> {
    let json = match req {
        Request::BatchMeterUsage(r) => serde_json::to_string(r),
        Request::MeterUsage(r) => serde_json::to_string(r),
        Request::RegisterUsage(r) => serde_json::to_string(r),
        Request::ResolveCustomer(r) => {
            let mut r = r.clone();
            r.registration_token = token_digest(&r.registration_token);
            serde_json::to_string(&r)
        }
    };
    json.ok().map(bounded)
}

/// The parameters of a body that was not decoded (the call failed before, or on, decoding):
/// the JSON as sent with credential fields digested, or nothing when it is not JSON.
pub fn raw_parameters(body: &[u8]) -> Option<String> {
    if body.len() > MAX_PARAMETERS {
        // Not parsed at all: the size alone decides, and a huge body costs nothing more.
        return Some(omitted(body.len()));
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    redact(&mut v);
    Some(bounded(v.to_string()))
}

fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let credential = CREDENTIAL_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(k));
                match item {
                    serde_json::Value::String(s) if credential => *s = token_digest(s),
                    // A credential field that is not a string: dropped rather than guessed at.
                    _ if credential => *item = serde_json::Value::Null,
                    _ => redact(item),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_parameters_digest_tokens_at_any_depth_and_case() {
        let body = br#"{"registrationToken":"secret-1","x":[{"RegistrationToken":"secret-2"}],"n":{"REGISTRATIONTOKEN":7}}"#;
        let p = raw_parameters(body).unwrap();
        assert!(!p.contains("secret-1") && !p.contains("secret-2"), "{p}");
        assert!(p.contains(&token_digest("secret-1")));
        assert!(p.contains(&token_digest("secret-2")));
        assert!(p.contains(r#""REGISTRATIONTOKEN":null"#), "{p}");
    }

    #[test]
    fn raw_parameters_skip_what_is_not_json_and_omit_what_is_large() {
        assert_eq!(raw_parameters(b"not json"), None);
        assert_eq!(raw_parameters(b""), None);
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_PARAMETERS));
        let p: serde_json::Value =
            serde_json::from_str(&raw_parameters(big.as_bytes()).unwrap()).unwrap();
        assert_eq!(p["bytes"], big.len());
    }

    #[test]
    fn large_decoded_parameters_are_omitted() {
        let record = marketmeter_wire::UsageRecord {
            dimension: "d".repeat(200),
            ..serde_json::from_value(serde_json::json!({
                "Timestamp": 0, "Dimension": "d", "CustomerIdentifier": "c"
            }))
            .unwrap()
        };
        let req = Request::BatchMeterUsage(marketmeter_wire::BatchMeterUsageRequest {
            usage_records: vec![record; 400],
            product_code: Some("p".into()),
        });
        let p: serde_json::Value =
            serde_json::from_str(&request_parameters(&req).unwrap()).unwrap();
        assert!(p["bytes"].as_u64().unwrap() > MAX_PARAMETERS as u64, "{p}");
    }

    #[test]
    fn decoded_resolve_customer_keeps_only_the_digest() {
        let req = Request::ResolveCustomer(marketmeter_wire::ResolveCustomerRequest {
            registration_token: "tok-secret".into(),
        });
        let p = request_parameters(&req).unwrap();
        assert!(!p.contains("tok-secret"));
        assert!(p.contains(&token_digest("tok-secret")));
    }

    #[test]
    fn user_agent_is_cut_at_a_character_boundary() {
        let mut e = AuditEvent::arrived(OffsetDateTime::UNIX_EPOCH, "r".into());
        e.set_user_agent(&"é".repeat(400));
        let ua = e.user_agent.unwrap();
        assert!(ua.len() <= MAX_USER_AGENT && ua.len() >= MAX_USER_AGENT - 1);
    }
}
