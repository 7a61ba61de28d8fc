//! Any request head (`Name: value` lines, a blank line, then the body) through SigV4 parsing
//! and, when it parses, verification: never a panic, and a forged signature never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketmeter_sigv4::{parse, verify, RequestParts, VerifyConfig};

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let headers: Vec<(&str, &[u8])> = head
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            Some((name.trim(), line[colon + 1..].trim_ascii()))
        })
        .collect();
    let req = RequestParts {
        method: "POST",
        path: "/",
        query: None,
        headers: &headers,
        body,
    };
    if let Ok(parsed) = parse(&req) {
        // "Now" is the request's own time, so only the signature itself can fail; a fuzzer
        // cannot forge an HMAC-SHA256 under a secret it never sees.
        let now = parsed.request_time;
        let ok = verify(&req, &parsed, "fuzz-secret-never-in-input", None, now, &VerifyConfig::default());
        assert!(ok.is_err(), "a fuzzed signature verified");
    }
});
