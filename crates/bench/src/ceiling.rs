//! `marketmeter bench ceiling`: the HTTP ceiling of a machine. It reads each request body and
//! answers a fixed response of the same size and headers as marketmeter's real answer, without
//! verifying, deciding or storing anything; no metering server can be faster on that machine.

use crate::world::{BatchPlan, MeterPlan};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use marketmeter_wire::{
    BatchMeterUsageRequest, BatchMeterUsageResult, MeterUsageResult, UsageRecordResult,
    UsageRecordResultStatus,
};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// A record id shaped like the server's (a UUID).
const RECORD_ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const REQUEST_ID: &str = "5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";

/// The canned answers, rendered once from the same requests the load generator sends.
pub struct Answers {
    batch: Bytes,
    meter: Bytes,
}

impl Answers {
    pub fn new(batch: &BatchPlan, meter: &MeterPlan) -> Result<Self> {
        let sample = batch
            .body(0)
            .context("the seed has no BatchMeterUsage key space")?;
        let req: BatchMeterUsageRequest = serde_json::from_str(&sample)?;
        let result = BatchMeterUsageResult {
            results: req
                .usage_records
                .into_iter()
                .map(|r| UsageRecordResult {
                    usage_record: r,
                    metering_record_id: Some(RECORD_ID.into()),
                    status: UsageRecordResultStatus::Success,
                })
                .collect(),
            unprocessed_records: vec![],
        };
        let meter_ok = meter.capacity() > 0;
        anyhow::ensure!(meter_ok, "the seed has no MeterUsage key space");
        Ok(Self {
            batch: serde_json::to_vec(&result)?.into(),
            meter: serde_json::to_vec(&MeterUsageResult {
                metering_record_id: RECORD_ID.into(),
            })?
            .into(),
        })
    }

    pub fn batch_len(&self) -> usize {
        self.batch.len()
    }
}

async fn answer(
    answers: Arc<Answers>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req
        .headers()
        .get("x-amz-target")
        .map(|v| v.as_bytes().to_vec());
    // Read the whole body, as a real server must before it can answer.
    let read = req.into_body().collect().await;
    let body = match (read, target.as_deref()) {
        (Err(_), _) => Bytes::new(),
        (Ok(_), Some(b"AWSMPMeteringService.MeterUsage")) => answers.meter.clone(),
        (Ok(_), Some(_)) => answers.batch.clone(),
        (Ok(_), None) => Bytes::from_static(b"ready"),
    };
    Ok(Response::builder()
        .header("content-type", crate::signer::CONTENT_TYPE)
        .header("x-amzn-RequestId", REQUEST_ID)
        .body(Full::new(body))
        .expect("static headers are valid"))
}

/// Serves until the process ends; prints `ceiling listening on http://ADDR` first.
pub async fn serve(listen: SocketAddr, answers: Answers) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!(
        "ceiling listening on http://{} (BatchMeterUsage answer: {} bytes)",
        listener.local_addr()?,
        answers.batch_len()
    );
    use std::io::Write;
    std::io::stdout().flush().ok();
    let answers = Arc::new(answers);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let answers = answers.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(answers.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
