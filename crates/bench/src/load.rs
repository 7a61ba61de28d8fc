//! The load loop: `concurrency` workers, each with its own keep-alive HTTP/1.1 connection,
//! sending signed requests back to back until the duration, the request budget or the key space
//! runs out, and checking every answer.

use crate::check::{check, Op, Verdict};
use crate::report::{OpStats, Summary};
use crate::signer::Signer;
use crate::world::{BatchPlan, MeterPlan, BATCH_RECORDS};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No answer within this long counts as an error (and the connection is replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Load {
    pub addr: SocketAddr,
    pub concurrency: usize,
    /// Sent before the measured `duration` (same key sequence) but not counted: lazy
    /// initialisation, connection set-up and caches warming do not skew the numbers.
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: Option<u64>,
    pub batch: Option<BatchPlan>,
    pub meter: Option<MeterPlan>,
    pub accepted_statuses: Vec<String>,
}

/// Shared by the workers: the next key-space positions and why the run ended.
struct Shared {
    load: Load,
    authority: String,
    batch_signer: Option<Signer>,
    meter_signers: Vec<Signer>,
    next_batch: AtomicU64,
    next_meter: AtomicU64,
    started: AtomicU64,
    key_space_exhausted: AtomicBool,
    budget_exhausted: AtomicBool,
    connections: AtomicU64,
    measure_from: Instant,
    deadline: Instant,
}

pub async fn run(load: Load) -> Result<Summary> {
    let shared = Arc::new(Shared {
        authority: load.addr.to_string(),
        batch_signer: load.batch.as_ref().map(|p| Signer::new(&p.credential)),
        meter_signers: load
            .meter
            .as_ref()
            .map(|p| p.workloads.iter().map(Signer::new).collect())
            .unwrap_or_default(),
        next_batch: AtomicU64::new(0),
        next_meter: AtomicU64::new(0),
        started: AtomicU64::new(0),
        key_space_exhausted: AtomicBool::new(false),
        budget_exhausted: AtomicBool::new(false),
        connections: AtomicU64::new(0),
        measure_from: Instant::now() + load.warmup,
        deadline: Instant::now() + load.warmup + load.duration,
        load,
    });
    // With both operations, workers alternate between them.
    let ops: Vec<Op> = [
        shared.load.batch.as_ref().map(|_| Op::BatchMeterUsage),
        shared.load.meter.as_ref().map(|_| Op::MeterUsage),
    ]
    .into_iter()
    .flatten()
    .collect();
    let workers: Vec<_> = (0..shared.load.concurrency)
        .map(|i| tokio::spawn(worker(shared.clone(), ops[i % ops.len()])))
        .collect();
    let mut stats: BTreeMap<Op, OpStats> = ops.iter().map(|op| (*op, OpStats::default())).collect();
    for w in workers {
        let (op, s) = w.await.context("a load worker panicked")??;
        stats.get_mut(&op).expect("op of a worker").merge(&s);
    }
    let elapsed = shared.measure_from.elapsed();
    let stopped_by = if shared.key_space_exhausted.load(Ordering::Relaxed) {
        "key-space"
    } else if shared.budget_exhausted.load(Ordering::Relaxed) {
        "max-requests"
    } else {
        "duration"
    };
    Ok(Summary::new(
        format!("http://{}", shared.authority),
        shared.load.concurrency,
        elapsed,
        stopped_by,
        shared.connections.load(Ordering::Relaxed),
        &stats,
    ))
}

impl Shared {
    /// The next signed request of `op` and how many records it carries; None ends the worker.
    fn next_request(&self, op: Op) -> Result<Option<(http::Request<String>, u64)>> {
        if Instant::now() >= self.deadline {
            return Ok(None);
        }
        if let Some(max) = self.load.max_requests {
            if self.started.fetch_add(1, Ordering::Relaxed) >= max {
                self.budget_exhausted.store(true, Ordering::Relaxed);
                return Ok(None);
            }
        }
        let built = match op {
            Op::BatchMeterUsage => {
                let plan = self.load.batch.as_ref().expect("batch worker has a plan");
                let n = self.next_batch.fetch_add(1, Ordering::Relaxed);
                plan.body(n).map(|body| {
                    let signer = self.batch_signer.as_ref().expect("batch signer");
                    (
                        signer.request(&self.authority, op.target(), body),
                        BATCH_RECORDS as u64,
                    )
                })
            }
            Op::MeterUsage => {
                let plan = self.load.meter.as_ref().expect("meter worker has a plan");
                let n = self.next_meter.fetch_add(1, Ordering::Relaxed);
                plan.call(n).map(|(who, body)| {
                    let signer = &self.meter_signers[who];
                    (signer.request(&self.authority, op.target(), body), 1)
                })
            }
        };
        match built {
            None => {
                self.key_space_exhausted.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Some((req, records)) => Ok(Some((req?, records))),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.load.addr)
            .await
            .with_context(|| format!("connecting to {}", self.load.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }
}

async fn worker(shared: Arc<Shared>, op: Op) -> Result<(Op, OpStats)> {
    let mut stats = OpStats::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    while let Some((req, records)) = shared.next_request(op)? {
        // Servers that close after each answer (HTTP/1.0 style) get a new connection; that is
        // not an error, but it is counted (`connections_opened`).
        if let Some(c) = conn.as_mut() {
            if c.ready().await.is_err() {
                conn = None;
            }
        }
        let sender = match conn.as_mut() {
            Some(c) => c,
            None => match shared.connect().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.failed(format!("connect: {}", e.root_cause()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let req = req.map(|b| Full::new(Bytes::from(b)));
        let sent_at = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let error_type = resp
                .headers()
                .get("x-amzn-ErrorType")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, error_type, body))
        })
        .await;
        let latency = sent_at.elapsed();
        if sent_at < shared.measure_from {
            // Warm-up: only a broken connection matters.
            if !matches!(answer, Ok(Ok(_))) {
                conn = None;
            }
            continue;
        }
        match answer {
            Ok(Ok((status, error_type, body))) => {
                let verdict: Verdict = check(
                    op,
                    status,
                    error_type.as_deref(),
                    &body,
                    records,
                    &shared.load.accepted_statuses,
                );
                stats.answered(latency, verdict);
            }
            Ok(Err(e)) => {
                stats.failed(format!("transport: {e}"));
                conn = None;
            }
            Err(_) => {
                stats.failed(format!("no answer within {REQUEST_TIMEOUT:?}"));
                conn = None;
            }
        }
    }
    Ok((op, stats))
}
