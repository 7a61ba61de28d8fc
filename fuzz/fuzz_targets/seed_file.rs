//! Any text as a TOML seed file (`serve --seed`, `check-seed`, `admin catalog apply`): parsing,
//! checking and the JSON form for the admin API never panic, and they agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketmeter::config::{parse_seed, seed_as_json};
use marketmeter_domain::seed::Seed;

fuzz_target!(|data: &[u8]| {
    // Seed files are read as UTF-8 text; anything else is refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let valid = parse_seed(text).is_ok_and(|s| s.check().is_ok());
    let json = seed_as_json(text);
    assert_eq!(valid, json.is_ok(), "parse+check and seed_as_json disagree");
    if let Ok(json) = json {
        // The admin API reads this JSON back as a seed: it must be the same valid seed.
        let seed: Seed = serde_json::from_value(json).expect("seed_as_json output reads back");
        seed.check().expect("seed_as_json output checks");
    }
});
