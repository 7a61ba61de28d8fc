//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Everything on the request path is an atomic counter or histogram resolved once at start
//! (per operation), so observing a request costs a few atomic adds; label lookups by name
//! happen only for errors.

use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use marketmeter_domain::store::CommitObserver;
use marketmeter_wire::{BatchMeterUsageResult, Operation, UsageRecordResultStatus};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Label of requests whose `X-Amz-Target` names no operation.
const UNKNOWN: &str = "unknown";

/// Latency buckets (seconds): sub-millisecond reads up to multi-second stalls.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Group-commit sizes: the SQLite writer takes up to `max_batch` (256 by default) writes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Counters of one operation, resolved at start.
struct PerOperation {
    requests: IntCounter,
    latency: Histogram,
    /// Indexed like [`STATUSES`].
    records: [IntCounter; 4],
}

/// Record statuses counted by `marketmeter_records_total`.
const STATUSES: [&str; 4] = [
    "Success",
    "CustomerNotSubscribed",
    "DuplicateRecord",
    "Unprocessed",
];

pub struct Metrics {
    registry: Registry,
    /// Indexed like `Operation::ALL`, then one for unknown operations.
    per_op: Vec<PerOperation>,
    errors: IntCounterVec,
    commit_writes: Histogram,
    commit_seconds: Histogram,
    commit_failures: IntCounter,
    audit_append_failures: IntCounter,
}

fn op_index(op: Option<Operation>) -> usize {
    match op {
        Some(op) => Operation::ALL
            .iter()
            .position(|o| *o == op)
            .unwrap_or(Operation::ALL.len()),
        None => Operation::ALL.len(),
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "marketmeter_requests_total",
                "AWS API requests answered, by operation",
            ),
            &["operation"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "marketmeter_errors_total",
                "AWS API error responses, by operation and error code (__type)",
            ),
            &["operation", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "marketmeter_request_duration_seconds",
                "AWS API request latency, by operation (body read to response)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let records = IntCounterVec::new(
            Opts::new(
                "marketmeter_records_total",
                "usage records answered by BatchMeterUsage and MeterUsage, by status",
            ),
            &["operation", "status"],
        )
        .expect("valid metric");
        let commit_writes = Histogram::with_opts(
            HistogramOpts::new(
                "marketmeter_store_commit_batch_size",
                "write requests committed in one store transaction (SQLite group commit; 1 on PostgreSQL)",
            )
            .buckets(BATCH_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "marketmeter_store_commit_duration_seconds",
                "store write transaction time, BEGIN to end of COMMIT",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let commit_failures = IntCounter::new(
            "marketmeter_store_commit_failures_total",
            "store write transactions that did not commit",
        )
        .expect("valid metric");
        let audit_append_failures = IntCounter::new(
            "marketmeter_audit_append_failures_total",
            "audit events of answered calls that could not be stored",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(latency.clone()),
            Box::new(records.clone()),
            Box::new(commit_writes.clone()),
            Box::new(commit_seconds.clone()),
            Box::new(commit_failures.clone()),
            Box::new(audit_append_failures.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        let names = Operation::ALL
            .iter()
            .map(|o| o.name())
            .chain(std::iter::once(UNKNOWN));
        let per_op = names
            .map(|name| PerOperation {
                requests: requests.with_label_values(&[name]),
                latency: latency.with_label_values(&[name]),
                records: STATUSES.map(|s| records.with_label_values(&[name, s])),
            })
            .collect();
        Self {
            registry,
            per_op,
            errors,
            commit_writes,
            commit_seconds,
            commit_failures,
            audit_append_failures,
        }
    }

    /// An answered call whose audit event could not be appended (the store failed).
    pub fn audit_append_failed(&self) {
        self.audit_append_failures.inc();
    }

    /// One answered AWS request: `error` is the `__type` of an error response.
    pub fn request(&self, op: Option<Operation>, elapsed: Duration, error: Option<&str>) {
        let m = &self.per_op[op_index(op)];
        m.requests.inc();
        m.latency.observe(elapsed.as_secs_f64());
        if let Some(code) = error {
            let name = op.map_or(UNKNOWN, Operation::name);
            self.errors.with_label_values(&[name, code]).inc();
        }
    }

    /// The records of a BatchMeterUsage answer, by result status.
    pub fn batch_records(&self, result: &BatchMeterUsageResult) {
        let m = &self.per_op[op_index(Some(Operation::BatchMeterUsage))];
        for r in &result.results {
            let i = match r.status {
                UsageRecordResultStatus::Success => 0,
                UsageRecordResultStatus::CustomerNotSubscribed => 1,
                UsageRecordResultStatus::DuplicateRecord => 2,
            };
            m.records[i].inc();
        }
        m.records[3].inc_by(result.unprocessed_records.len() as u64);
    }

    /// A MeterUsage record that was stored (or was an identical retry).
    pub fn meter_record(&self) {
        self.per_op[op_index(Some(Operation::MeterUsage))].records[0].inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, writes: usize, elapsed: Duration, ok: bool) {
        if ok {
            self.commit_writes.observe(writes as f64);
            self.commit_seconds.observe(elapsed.as_secs_f64());
        } else {
            self.commit_failures.inc();
        }
    }
}

/// Middleware of the AWS endpoint: counts every answer by operation and error code and times it.
pub async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| Operation::from_target(Some(t)).ok());
    let started = Instant::now();
    let resp = next.run(req).await;
    let error = resp
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok());
    state.metrics.request(op, started.elapsed(), error);
    resp
}

/// `GET /metrics`: Prometheus text format, no authentication (it holds counts, no secrets).
pub async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            prometheus::TEXT_FORMAT.to_string(),
        )],
        state.metrics.render(),
    )
        .into_response()
}
