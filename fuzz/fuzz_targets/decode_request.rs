//! Any body, decoded and validated as each of the four operations: never a panic, and never a
//! server fault (every rejection is a client error with an awsJson code).
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketmeter_wire::{decode_request, Operation};

fuzz_target!(|body: &[u8]| {
    for op in Operation::ALL {
        if let Err(e) = decode_request(op, body) {
            assert!(!e.code.is_fault(), "{op:?} answered a fault: {e}");
            assert!(!e.message.is_empty());
        }
    }
});
