//! `GET /admin/v1/reports/usage`: usage and estimated charges by period, product, customer,
//! dimension and allocation tag, as JSON or CSV, streamed one calendar month at a time (see
//! [`marketmeter_domain::reports::run`]) so large ranges never sit in memory.

use crate::admin::{authorize, bad_request, AdminResult};
use crate::streamed::{csv_line, streamed_body};
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use marketmeter_domain::reports::{GroupBy, Period, Report, ReportQuery, ReportRow, ReportTotals};
use marketmeter_domain::windows::rfc3339;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Longest range one report may cover.
const MAX_RANGE_DAYS: i64 = 10 * 366;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    period: Option<String>,
    group_by: Option<String>,
    tag: Option<String>,
    product_code: Option<String>,
    seller_account: Option<String>,
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

fn time_param(name: &str, v: Option<&str>) -> Result<OffsetDateTime, crate::admin::AdminFailure> {
    let v = v.ok_or_else(|| {
        bad_request(format!(
            "{name} is required (RFC 3339, e.g. 2026-01-01T00:00:00Z)"
        ))
    })?;
    OffsetDateTime::parse(v, &Rfc3339)
        .map_err(|e| bad_request(format!("{name}: {v:?} is not an RFC 3339 time ({e})")))
}

fn parse(p: ReportParams) -> Result<(ReportQuery, Format), crate::admin::AdminFailure> {
    let from = time_param("from", p.from.as_deref())?;
    let to = time_param("to", p.to.as_deref())?;
    if to <= from {
        return Err(bad_request("to must be after from"));
    }
    if (to - from).whole_days() > MAX_RANGE_DAYS {
        return Err(bad_request(format!(
            "to: the range is longer than {MAX_RANGE_DAYS} days; report in parts"
        )));
    }
    let period = match p.period.as_deref() {
        None => Period::Day,
        Some(s) => Period::parse(s)
            .ok_or_else(|| bad_request(format!("period: {s:?} is not hour, day or month")))?,
    };
    let group_by = GroupBy::parse(
        p.group_by
            .as_deref()
            .unwrap_or("product,customer,dimension"),
    )
    .map_err(bad_request)?;
    let format = match p.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(s) => return Err(bad_request(format!("format: {s:?} is not json or csv"))),
    };
    if p.tag.as_deref().is_some_and(str::is_empty) {
        return Err(bad_request("tag: give an allocation tag key"));
    }
    Ok((
        ReportQuery {
            seller_account: p.seller_account,
            product_code: p.product_code,
            from,
            to,
            period,
            group_by,
            tag_key: p.tag,
        },
        format,
    ))
}

pub async fn usage_report(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> AdminResult {
    authorize(&state, &headers)?;
    // An unknown or malformed parameter is a JSON 400 like every other admin error.
    let Query(params) = params.map_err(|e| bad_request(e.body_text()))?;
    let (query, format) = parse(params)?;
    let content_type = match format {
        Format::Json => "application/json",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let (tx, response) = streamed_body(content_type);
    let store = state.metering.store().clone();
    let now = state.metering.clock().now();
    tokio::spawn(async move {
        let mut enc = Encoder::new(format, &query);
        if tx.send(Ok(enc.head())).await.is_err() {
            return;
        }
        let mut report = Report::new(&*store, query, now);
        loop {
            let chunk = match report.next_month().await {
                Ok(Some(rows)) => Ok(enc.rows(&rows)),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "usage report failed");
                    // Aborting the body tells the client the report is incomplete.
                    Err(std::io::Error::other("the store failed during the report"))
                }
            };
            let failed = chunk.is_err();
            // A closed channel: the client went away.
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
        let _ = tx.send(Ok(enc.tail(&report.totals()))).await;
    });
    Ok(response)
}

/// Writes the report's parts in one format.
struct Encoder {
    format: Format,
    group_by: GroupBy,
    tag: bool,
    /// JSON: whether a row was written (for the separating commas).
    any: bool,
}

impl Encoder {
    fn new(format: Format, q: &ReportQuery) -> Self {
        Self {
            format,
            group_by: q.group_by,
            tag: q.tag_key.is_some(),
            any: false,
        }
    }

    fn columns(&self) -> Vec<&'static str> {
        let g = self.group_by;
        let mut c = vec!["period_start"];
        c.extend(g.product.then_some("product_code"));
        c.extend(g.customer.then_some("customer"));
        c.extend(g.dimension.then_some("dimension"));
        c.extend(self.tag.then_some("tag_value"));
        c.extend(["quantity", "records", "estimated_charge"]);
        c
    }

    fn head(&self) -> Bytes {
        match self.format {
            Format::Json => Bytes::from(format!(
                "{{\"columns\":{},\"rows\":[",
                serde_json::to_string(&self.columns()).unwrap_or_default()
            )),
            Format::Csv => csv_line(self.columns().iter().map(|c| c.to_string())),
        }
    }

    fn values(&self, r: &ReportRow) -> Vec<Value> {
        let g = self.group_by;
        let mut v = vec![json!(rfc3339(r.period_start))];
        if g.product {
            v.push(json!(r.product_code));
        }
        if g.customer {
            v.push(json!(r.customer));
        }
        if g.dimension {
            v.push(json!(r.dimension));
        }
        if self.tag {
            v.push(json!(r.tag_value));
        }
        v.push(json!(r.quantity.to_string()));
        v.push(json!(r.records));
        v.push(json!(r.charge.map(|c| c.to_string())));
        v
    }

    fn rows(&mut self, rows: &[ReportRow]) -> Bytes {
        let mut out = Vec::new();
        for r in rows {
            let values = self.values(r);
            match self.format {
                Format::Json => {
                    if self.any {
                        out.push(b',');
                    }
                    self.any = true;
                    let obj: Map<String, Value> = self
                        .columns()
                        .into_iter()
                        .map(str::to_string)
                        .zip(values)
                        .collect();
                    out.extend(serde_json::to_vec(&obj).unwrap_or_default());
                    out.push(b'\n');
                }
                Format::Csv => out.extend(csv_line(values.iter().map(cell))),
            }
        }
        Bytes::from(out)
    }

    fn tail(&self, t: &ReportTotals) -> Bytes {
        let quantity =
            marketmeter_wire::Quantity::from_micros(u64::try_from(t.quantity).unwrap_or(u64::MAX));
        match self.format {
            Format::Json => Bytes::from(format!(
                "],\"totals\":{}}}\n",
                json!({
                    "quantity": quantity.to_string(),
                    "records": t.records,
                    "estimated_charge": t.charge.map(|c| c.to_string()),
                })
            )),
            // CSV stays one table; the totals are the sum of its rows.
            Format::Csv => Bytes::new(),
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
