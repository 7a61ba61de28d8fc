//! `marketmeter admin ...` against a running server: the CLI does what the admin API does.

mod common;

use common::{Server, ADMIN_TOKEN};
use std::process::Command;

fn admin(server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_marketmeter"))
        .args(["admin", "--endpoint", &server.url, "--admin-token", token])
        .args(args)
        .output()
        .unwrap()
}

fn json(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn admin_subcommands() {
    let server = Server::start(&[]);
    let token = json(admin(
        &server,
        ADMIN_TOKEN,
        &[
            "create-registration-token",
            "--product-code",
            "e2e-saas",
            "--customer-aws-account-id",
            "444455556666",
        ],
    ));
    assert_eq!(token["registration_token"].as_str().unwrap().len(), 43);
    assert!(token["expires_at"].as_str().unwrap().ends_with('Z'));

    let records = json(admin(
        &server,
        ADMIN_TOKEN,
        &["usage-records", "--product-code", "e2e-saas"],
    ));
    assert_eq!(records["records"].as_array().unwrap().len(), 0);

    let keys = json(admin(
        &server,
        ADMIN_TOKEN,
        &["public-keys", "e2e-container"],
    ));
    assert_eq!(keys["keys"][0]["version"], 1);
    assert_eq!(keys["keys"][0]["jwk"]["kty"], "RSA");
    let pem = admin(
        &server,
        ADMIN_TOKEN,
        &["public-keys", "e2e-container", "--pem", "1"],
    );
    assert!(String::from_utf8(pem.stdout)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));

    let added = json(admin(
        &server,
        ADMIN_TOKEN,
        &["add-public-key", "e2e-container"],
    ));
    assert_eq!(added["version"], 2);
    let retired = json(admin(
        &server,
        ADMIN_TOKEN,
        &["retire-public-key", "e2e-container", "--version", "1"],
    ));
    assert!(retired["retired_at"].is_string());

    // Errors say what went wrong and exit non-zero.
    let denied = admin(&server, "wrong-token", &["usage-records"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));
    let missing = admin(&server, ADMIN_TOKEN, &["public-keys", "no-such-product"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let wrong_kind = admin(&server, ADMIN_TOKEN, &["add-public-key", "e2e-saas"]);
    assert!(String::from_utf8_lossy(&wrong_kind.stderr).contains("container"));
}
