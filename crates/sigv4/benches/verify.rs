//! SigV4 verification of a botocore-style request, with and without the signing-key cache.
//! Run with `cargo bench -p marketmeter-sigv4`.

use criterion::{criterion_group, criterion_main, Criterion};
use marketmeter_sigv4::*;
use sha2::{Digest, Sha256};
use std::hint::black_box;
use time::OffsetDateTime;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Signs the canonical form by hand (the same rules the verifier checks), once, outside the loop.
fn signed_request(body: &[u8]) -> (Vec<(String, Vec<u8>)>, OffsetDateTime) {
    let now = OffsetDateTime::from_unix_timestamp(1_795_402_800).unwrap();
    let amz = "20261123T030000Z";
    let payload = hex::encode(Sha256::digest(body));
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:127.0.0.1:7171\nx-amz-date:{amz}\nx-amz-target:AWSMPMeteringService.BatchMeterUsage\n\ncontent-type;host;x-amz-date;x-amz-target\n{payload}"
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz}\n20261123/us-east-1/aws-marketplace/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(SECRET, "20261123", "us-east-1", "aws-marketplace");
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(sts.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let auth = format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/aws-marketplace/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={sig}");
    let headers = vec![
        (
            "Content-Type".to_string(),
            b"application/x-amz-json-1.1".to_vec(),
        ),
        ("Host".to_string(), b"127.0.0.1:7171".to_vec()),
        ("X-Amz-Date".to_string(), amz.as_bytes().to_vec()),
        (
            "X-Amz-Target".to_string(),
            b"AWSMPMeteringService.BatchMeterUsage".to_vec(),
        ),
        ("Authorization".to_string(), auth.into_bytes()),
    ];
    (headers, now)
}

fn bench(c: &mut Criterion) {
    let body = vec![b'x'; 8 * 1024];
    let (owned, now) = signed_request(&body);
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = RequestParts {
        method: "POST",
        path: "/",
        query: None,
        headers: &headers,
        body: &body,
    };
    let cfg = VerifyConfig::default();
    let parsed = parse(&req).unwrap();
    verify(&req, &parsed, SECRET, None, now, &cfg).expect("the bench request verifies");

    let mut g = c.benchmark_group("sigv4_8KiB_body");
    g.bench_function("parse+verify", |b| {
        b.iter(|| {
            let p = parse(black_box(&req)).unwrap();
            verify(&req, &p, SECRET, None, now, &cfg).unwrap()
        })
    });
    let cache = SigningKeyCache::default();
    g.bench_function("parse+verify_cached", |b| {
        b.iter(|| {
            let p = parse(black_box(&req)).unwrap();
            verify_cached(&cache, &req, &p, SECRET, None, now, &cfg).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
