//! Turns a request's SigV4 headers into a domain [`Caller`].

use crate::AppState;
use http::HeaderMap;
use marketmeter_domain::audit::AuditEvent;
use marketmeter_domain::Caller;
use marketmeter_sigv4 as sigv4;
use marketmeter_wire::{ApiError, ErrorCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Verify every SigV4 signature (the default).
    SigV4,
    /// Skip verification; known keys still map to their accounts.
    Open,
}

/// Region assumed when an open-mode request carries no parsable credential scope.
const OPEN_DEFAULT_REGION: &str = "us-east-1";

fn sigv4_error(e: &sigv4::SigV4Error) -> ApiError {
    let code = match e.aws_error_name() {
        "MissingAuthenticationTokenException" => ErrorCode::MissingAuthenticationToken,
        "IncompleteSignatureException" => ErrorCode::IncompleteSignature,
        "UnrecognizedClientException" => ErrorCode::UnrecognizedClient,
        _ => ErrorCode::InvalidSignature,
    };
    ApiError::new(code, e.to_string())
}

pub async fn authenticate(
    state: &AppState,
    method: &str,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    audit: &mut AuditEvent,
) -> Result<Caller, ApiError> {
    let header_list: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let parts = sigv4::RequestParts {
        method,
        path: uri.path(),
        query: uri.query(),
        headers: &header_list,
        body,
    };
    let parsed = sigv4::parse(&parts);
    let store = state.metering.store();

    // The audit records who the request claims to be as soon as that is read, so rejected
    // calls carry it too (for a bad signature the key's account is claimed, not proven).
    if let Ok(p) = &parsed {
        audit.access_key_id = Some(p.access_key_id.clone());
        audit.region = Some(p.region.clone());
    }

    if state.auth == AuthMode::Open {
        let Ok(parsed) = parsed else {
            audit.region = Some(OPEN_DEFAULT_REGION.to_string());
            return Ok(open_caller(None, OPEN_DEFAULT_REGION.to_string()));
        };
        let key = store.access_key(&parsed.access_key_id).await?;
        audit.account = key.as_ref().map(|k| k.account_id.clone());
        return Ok(match key {
            Some(k) => Caller {
                account_id: Some(k.account_id),
                access_key_id: Some(k.access_key_id),
                workload: k.workload,
                signing_region: parsed.region,
                open: true,
            },
            None => open_caller(Some(parsed.access_key_id), parsed.region),
        });
    }

    let parsed = parsed.map_err(|e| sigv4_error(&e))?;
    let key = store
        .access_key(&parsed.access_key_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnrecognizedClient,
                "The security token included in the request is invalid: unknown access key id",
            )
        })?;
    audit.account = Some(key.account_id.clone());
    // Clients sign with their real clock, so the skew check reads the wall clock even when the
    // metering rules run on a manual one (--clock manual).
    let now = time::OffsetDateTime::now_utc();
    sigv4::verify_cached(
        &state.signing_keys,
        &parts,
        &parsed,
        &key.secret_access_key,
        key.session_token.as_deref(),
        now,
        &state.verify,
    )
    .map_err(|e| sigv4_error(&e))?;
    Ok(Caller {
        account_id: Some(key.account_id),
        access_key_id: Some(key.access_key_id),
        workload: key.workload,
        signing_region: parsed.region,
        open: false,
    })
}

fn open_caller(access_key_id: Option<String>, region: String) -> Caller {
    Caller {
        account_id: None,
        access_key_id,
        workload: None,
        signing_region: region,
        open: true,
    }
}
