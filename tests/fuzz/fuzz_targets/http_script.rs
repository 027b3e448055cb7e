//! Four connections on one dispatcher, driven by a byte script: raw input, requests, the clock,
//! stop, collect, half-close, disconnect, partial writes. See `tests/fuzz/src/script.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| reqguard_fuzz::script::run(data));
