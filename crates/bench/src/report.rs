//! Counting (per operation: requests, records, errors by kind, a latency histogram) and the two
//! outputs: a table for people and `--json` for scripts.

use crate::check::{Op, Verdict};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies from 1 µs to 60 s at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone)]
pub struct OpStats {
    pub requests: u64,
    pub ok_requests: u64,
    pub records: u64,
    pub errors: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        Self {
            requests: 0,
            ok_requests: 0,
            records: 0,
            errors: BTreeMap::new(),
            latency_us: histogram(),
        }
    }
}

impl OpStats {
    /// A request that got an answer after `latency`.
    pub fn answered(&mut self, latency: Duration, verdict: Verdict) {
        self.requests += 1;
        self.latency_us
            .saturating_record(latency.as_micros().clamp(1, u64::MAX as u128) as u64);
        self.records += verdict.records_ok;
        if verdict.errors.is_empty() {
            self.ok_requests += 1;
        }
        for e in verdict.errors {
            *self.errors.entry(e).or_default() += 1;
        }
    }

    /// A request that got no answer (connection refused or reset, timeout).
    pub fn failed(&mut self, error: String) {
        self.requests += 1;
        *self.errors.entry(error).or_default() += 1;
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.requests += other.requests;
        self.ok_requests += other.ok_requests;
        self.records += other.records;
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms share their bounds");
    }
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Serialize)]
pub struct OpSummary {
    pub operation: &'static str,
    pub requests: u64,
    pub ok_requests: u64,
    pub records: u64,
    pub requests_per_s: f64,
    pub records_per_s: f64,
    /// Milliseconds, over every answered request.
    pub latency_ms: Latency,
    pub error_count: u64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub endpoint: String,
    pub concurrency: usize,
    pub elapsed_s: f64,
    /// `duration`, `max-requests` or `key-space` (every unique key of the seed was sent).
    pub stopped_by: &'static str,
    pub connections_opened: u64,
    pub error_count: u64,
    pub operations: Vec<OpSummary>,
}

impl Summary {
    pub fn new(
        endpoint: String,
        concurrency: usize,
        elapsed: Duration,
        stopped_by: &'static str,
        connections_opened: u64,
        stats: &BTreeMap<Op, OpStats>,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ms = |q: f64, h: &Histogram<u64>| h.value_at_quantile(q) as f64 / 1000.0;
        let operations: Vec<OpSummary> = stats
            .iter()
            .map(|(op, s)| OpSummary {
                operation: op.name(),
                requests: s.requests,
                ok_requests: s.ok_requests,
                records: s.records,
                requests_per_s: s.ok_requests as f64 / secs,
                records_per_s: s.records as f64 / secs,
                latency_ms: Latency {
                    p50: ms(0.5, &s.latency_us),
                    p99: ms(0.99, &s.latency_us),
                    p99_9: ms(0.999, &s.latency_us),
                    max: s.latency_us.max() as f64 / 1000.0,
                    mean: s.latency_us.mean() / 1000.0,
                },
                error_count: s.errors.values().sum(),
                errors: s.errors.clone(),
            })
            .collect();
        Self {
            endpoint,
            concurrency,
            elapsed_s: secs,
            stopped_by,
            connections_opened,
            error_count: operations.iter().map(|o| o.error_count).sum(),
            operations,
        }
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "{} connections to {} for {:.1} s (stopped by {})\n\
             {:<16} {:>9} {:>10} {:>11} {:>8} {:>8} {:>9} {:>8}\n",
            self.concurrency,
            self.endpoint,
            self.elapsed_s,
            self.stopped_by,
            "operation",
            "requests",
            "req/s",
            "records/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors"
        );
        for o in &self.operations {
            out.push_str(&format!(
                "{:<16} {:>9} {:>10.0} {:>11.0} {:>8.2} {:>8.2} {:>9.2} {:>8}\n",
                o.operation,
                o.requests,
                o.requests_per_s,
                o.records_per_s,
                o.latency_ms.p50,
                o.latency_ms.p99,
                o.latency_ms.p99_9,
                o.error_count
            ));
            for (e, n) in &o.errors {
                out.push_str(&format!("  error x{n}: {e}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_percentiles_and_errors_add_up() {
        let mut a = OpStats::default();
        for ms in 1..=100u64 {
            a.answered(
                Duration::from_millis(ms),
                Verdict {
                    records_ok: 25,
                    errors: vec![],
                },
            );
        }
        let mut b = OpStats::default();
        b.answered(
            Duration::from_millis(5),
            Verdict {
                records_ok: 24,
                errors: vec!["record status DuplicateRecord".into()],
            },
        );
        b.failed("connection refused".into());
        a.merge(&b);
        let stats = BTreeMap::from([(Op::BatchMeterUsage, a)]);
        let s = Summary::new("x".into(), 2, Duration::from_secs(2), "duration", 2, &stats);
        let o = &s.operations[0];
        assert_eq!((o.requests, o.ok_requests, o.records), (102, 100, 2524));
        assert_eq!(o.requests_per_s, 50.0);
        assert_eq!(o.records_per_s, 1262.0);
        assert!(
            (o.latency_ms.p50 - 50.0).abs() < 0.1,
            "{}",
            o.latency_ms.p50
        );
        assert!(
            (o.latency_ms.p99 - 99.0).abs() < 0.1,
            "{}",
            o.latency_ms.p99
        );
        assert_eq!(s.error_count, 2);
        assert!(s.table().contains("error x1: connection refused"));
    }
}
