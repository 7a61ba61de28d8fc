//! Any text as the `serve --config` TOML file: never a panic, whatever is accepted keeps the
//! limits the resolver promises (nothing that would stop the server from serving), and the
//! server's own arithmetic on the accepted durations never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketmeter::config::serve_config_from_toml;
use marketmeter_wire::EpochTime;
use time::macros::datetime;
use time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = serve_config_from_toml(text) else {
        return;
    };
    assert!(c.limits.max_connections > 0);
    assert!(!c.limits.header_timeout.is_zero() && !c.limits.body_timeout.is_zero());
    assert!(c.webhook_attempts > 0);
    assert!(c
        .webhooks
        .iter()
        .all(|u| u.starts_with("http://") || u.starts_with("https://")));
    assert!(c.admin_token.as_ref().is_none_or(|t| !t.is_empty()));
    // What requests do with the durations: usage-time windows (a previous-month record hits the
    // month-end rule), a token's expiry, SigV4's skew bounds.
    let now = datetime!(2026-06-01 03:00 UTC);
    let w = c.metering.windows;
    for t in [now - Duration::hours(5), now, now + Duration::minutes(1)] {
        let t = EpochTime::from_secs(t.unix_timestamp());
        let _ = w.check_batch(t, now);
        let _ = w.check_meter(t, now);
    }
    let _ = now + c.metering.registration_token_ttl;
    let _ = (now - c.signature_skew, now + c.signature_skew);
});
