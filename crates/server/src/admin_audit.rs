//! `GET /admin/v1/audit` (a page of the audit trail) and `GET /admin/v1/audit/export` (every
//! matching event, streamed page by page as JSON lines or CSV, so large ranges never sit in
//! memory). See docs/audit.md.

use crate::admin::{authorize, bad_request, AdminFailure, AdminResult};
use crate::streamed::{csv_line, streamed_body};
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use marketmeter_domain::audit::{AuditFilter, AuditRecord, MAX_AUDIT_PAGE};
use marketmeter_domain::windows::rfc3339;
use marketmeter_wire::Operation;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    operation: Option<String>,
    account: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    format: Option<String>,
}

/// The columns of an event, in CSV order (and the keys of its JSON object).
const COLUMNS: [&str; 12] = [
    "seq",
    "time",
    "operation",
    "account",
    "access_key_id",
    "source_ip",
    "user_agent",
    "region",
    "request_id",
    "request_parameters",
    "outcome",
    "error_code",
];

fn time_param(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, AdminFailure> {
    v.map(|v| {
        OffsetDateTime::parse(v, &Rfc3339)
            .map_err(|e| bad_request(format!("{name}: {v:?} is not an RFC 3339 time ({e})")))
    })
    .transpose()
}

fn filter(p: &AuditParams) -> Result<AuditFilter, AdminFailure> {
    if let Some(op) = p.operation.as_deref() {
        let known = op == "Unknown" || Operation::ALL.iter().any(|o| o.name() == op);
        if !known {
            return Err(bad_request(format!(
                "operation: {op:?} is not BatchMeterUsage, MeterUsage, RegisterUsage, \
                 ResolveCustomer or Unknown"
            )));
        }
    }
    let from = time_param("from", p.from.as_deref())?;
    let to = time_param("to", p.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            return Err(bad_request("to must be after from"));
        }
    }
    if p.limit == Some(0) || p.limit.is_some_and(|l| l > MAX_AUDIT_PAGE) {
        return Err(bad_request(format!(
            "limit: give 1 to {MAX_AUDIT_PAGE} events per page"
        )));
    }
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                bad_request(format!(
                    "cursor: {c:?} is not a cursor (use next_cursor from the previous page)"
                ))
            })
        })
        .transpose()?;
    Ok(AuditFilter {
        operation: p.operation.clone(),
        account: p.account.clone(),
        from,
        to,
        after,
        limit: p.limit,
    })
}

fn params(p: Result<Query<AuditParams>, QueryRejection>) -> Result<AuditParams, AdminFailure> {
    // An unknown or malformed parameter is a JSON 400 like every other admin error.
    p.map(|Query(p)| p).map_err(|e| bad_request(e.body_text()))
}

/// One event as a JSON object; the stored parameters are embedded as JSON.
fn event_json(r: &AuditRecord) -> Value {
    let e = &r.event;
    let parameters = e
        .request_parameters
        .as_deref()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.to_string())));
    json!({
        "seq": r.seq,
        "time": rfc3339(e.time),
        "operation": e.operation,
        "account": e.account,
        "access_key_id": e.access_key_id,
        "source_ip": e.source_ip,
        "user_agent": e.user_agent,
        "region": e.region,
        "request_id": e.request_id,
        "request_parameters": parameters,
        "outcome": e.outcome.as_str(),
        "error_code": e.error_code,
    })
}

/// `GET /admin/v1/audit`: one page, oldest first; `next_cursor` is set when the page is full.
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    p: Result<Query<AuditParams>, QueryRejection>,
) -> AdminResult {
    authorize(&state, &headers)?;
    let p = params(p)?;
    if p.format.is_some() {
        return Err(bad_request(
            "format: only the export takes a format (GET /admin/v1/audit/export)",
        ));
    }
    let f = filter(&p)?;
    let page = state.metering.store().audit_events(&f).await?;
    let next = (page.len() == f.page_size() as usize)
        .then(|| page.last().map(|r| r.seq.to_string()))
        .flatten();
    let events: Vec<Value> = page.iter().map(event_json).collect();
    Ok(Json(json!({"events": events, "next_cursor": next})).into_response())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonLines,
    Csv,
}

/// `GET /admin/v1/audit/export`: every matching event, as JSON lines (default) or CSV.
pub async fn export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    p: Result<Query<AuditParams>, QueryRejection>,
) -> AdminResult {
    authorize(&state, &headers)?;
    let p = params(p)?;
    let format = match p.format.as_deref() {
        None | Some("jsonl") => Format::JsonLines,
        Some("csv") => Format::Csv,
        Some(s) => return Err(bad_request(format!("format: {s:?} is not jsonl or csv"))),
    };
    if p.limit.is_some() {
        return Err(bad_request(
            "limit: the export has no limit; narrow it with from, to, operation or account",
        ));
    }
    let mut f = filter(&p)?;
    f.limit = Some(MAX_AUDIT_PAGE);
    let content_type = match format {
        Format::JsonLines => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let (tx, response) = streamed_body(content_type);
    let store = state.metering.store().clone();
    tokio::spawn(async move {
        if format == Format::Csv && tx.send(Ok(csv_line(COLUMNS))).await.is_err() {
            return;
        }
        loop {
            let page = match store.audit_events(&f).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    // Aborting the body tells the client the export is incomplete.
                    let _ = tx
                        .send(Err(std::io::Error::other(
                            "the store failed during the export",
                        )))
                        .await;
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            f.after = Some(last.seq);
            let full = page.len() == MAX_AUDIT_PAGE as usize;
            let mut out = Vec::new();
            for r in &page {
                match format {
                    Format::JsonLines => {
                        out.extend(serde_json::to_vec(&event_json(r)).unwrap_or_default());
                        out.push(b'\n');
                    }
                    Format::Csv => out.extend(csv_line(csv_cells(r))),
                }
            }
            // A closed channel: the client went away.
            if tx.send(Ok(Bytes::from(out))).await.is_err() || !full {
                return;
            }
        }
    });
    Ok(response)
}

fn csv_cells(r: &AuditRecord) -> [String; 12] {
    let e = &r.event;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        r.seq.to_string(),
        rfc3339(e.time),
        e.operation.clone(),
        opt(&e.account),
        opt(&e.access_key_id),
        opt(&e.source_ip),
        opt(&e.user_agent),
        opt(&e.region),
        e.request_id.clone(),
        opt(&e.request_parameters),
        e.outcome.as_str().to_string(),
        opt(&e.error_code),
    ]
}
