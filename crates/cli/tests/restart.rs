//! Nothing acknowledged is lost: after a SIGKILL and a restart on the same database, every
//! acknowledged record is there and retries get the same MeteringRecordIds.

mod common;

use common::{Db, Server};
use serde_json::json;
use std::io::Read;

/// One BatchMeterUsage in open-auth mode (signing is covered elsewhere; this is about storage).
fn batch(server: &Server, dimension: &str, quantity: i64, ts: i64) -> serde_json::Value {
    let body = json!({"UsageRecords": [{
        "Timestamp": ts, "Dimension": dimension, "Quantity": quantity,
        "CustomerAWSAccountId": "444455556666",
        "LicenseArn": "arn:aws:license-manager::111122223333:license/l-e2e0saas0buyer"}]});
    let mut resp = ureq::post(&server.url)
        .header("X-Amz-Target", "AWSMPMeteringService.BatchMeterUsage")
        .header("Content-Type", "application/x-amz-json-1.1")
        .send(body.to_string().as_bytes())
        .unwrap();
    let mut text = String::new();
    resp.body_mut()
        .as_reader()
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn acknowledged_records_survive_a_kill_and_retries_keep_their_ids() {
    let db = Db::fresh();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 3600;
    let server = Server::start_on(&db, &["--auth", "open"]);
    let mut ids = Vec::new();
    for (dim, q) in [("requests", 5), ("storage_gb", 7), ("users", 1)] {
        let out = batch(&server, dim, q, ts);
        assert_eq!(out["Results"][0]["Status"], "Success", "{out}");
        ids.push(
            out["Results"][0]["MeteringRecordId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    server.kill();

    let server = Server::start_on(&db, &["--auth", "open"]);
    let stored = server.usage_records("e2e-saas");
    assert_eq!(
        stored.len(),
        3,
        "every acknowledged record survives the kill"
    );
    for ((dim, q), id) in [("requests", 5), ("storage_gb", 7), ("users", 1)]
        .into_iter()
        .zip(&ids)
    {
        let out = batch(&server, dim, q, ts);
        assert_eq!(
            out["Results"][0]["MeteringRecordId"],
            id.as_str(),
            "retry after restart keeps its id"
        );
        let dup = batch(&server, dim, q + 1, ts);
        assert_eq!(dup["Results"][0]["Status"], "DuplicateRecord");
    }
    assert_eq!(
        server.usage_records("e2e-saas").len(),
        3,
        "nothing counted twice"
    );
}
