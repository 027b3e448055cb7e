//! Arbitrary bytes on one connection: parse, admit, respond, then stop, drain and disconnect,
//! with the ledger checked at the end of each input. See `tests/fuzz/src/session.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| reqguard_fuzz::session::run(data));
