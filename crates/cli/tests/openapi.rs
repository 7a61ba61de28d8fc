//! `/admin/openapi.json` describes the admin API that is really there: every documented path
//! and method exists and is guarded by the admin token.

mod common;

use common::Server;
use serde_json::Value;

#[test]
fn every_documented_operation_exists_and_needs_the_token() {
    let server = Server::start(&[]);
    let mut resp = ureq::get(&format!("{}/admin/openapi.json", server.url))
        .call()
        .unwrap();
    let doc: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 26, "{}", paths.len());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut checked = 0;
    for (path, item) in paths {
        // Path parameters get placeholder values (numeric ones must parse).
        let concrete = path
            .replace("{action}", "cancel")
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{}{concrete}", server.url);
        for (method, op) in item.as_object().unwrap() {
            let status = match method.as_str() {
                "get" => agent.get(&url).call(),
                "delete" => agent.delete(&url).call(),
                "post" => agent.post(&url).send_json(serde_json::json!({})),
                "put" => agent.put(&url).send_json(serde_json::json!({})),
                "parameters" => continue,
                other => panic!("unexpected method {other} at {path}"),
            }
            .unwrap()
            .status();
            assert_eq!(
                status, 401,
                "{method} {path} should exist and need the token"
            );
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
            assert_eq!(op["security"][0]["admin"], serde_json::json!([]));
            checked += 1;
        }
    }
    assert!(checked >= 36, "{checked}");
}
