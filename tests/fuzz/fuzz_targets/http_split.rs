//! The same bytes split at arbitrary points (and read back at arbitrary moments) give the same
//! answers as in one piece. See `tests/fuzz/src/split.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| reqguard_fuzz::split::run(data));
