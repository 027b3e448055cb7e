//! Replays the fuzz targets' committed seeds (tests/fuzz/seeds/, including every input a fuzz
//! run once failed on) through the same harness, plus a bounded number of deterministic
//! mutations of each, in plain `cargo test` (no cargo-fuzz, no nightly). It also gives the
//! valgrind and sanitizer runs a test binary that exercises the HTTP request path.
//!
//! `FUZZ_REPLAY_MUTATIONS` sets the mutations per seed (default 32).
#![cfg(feature = "server")]

use std::fs;
use std::path::Path;

#[path = "fuzz/src/lib.rs"]
#[allow(dead_code, unreachable_pub)]
mod harness;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/seeds")
        .join(target);
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Byte flips, insertions, deletions and splices, from a fixed seed: the same every run.
fn mutations(seed: &[u8], count: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed.len() as u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let mut m = seed.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = if m.is_empty() {
                    0
                } else {
                    (next() as usize) % m.len()
                };
                match next() % 4 {
                    0 if !m.is_empty() => m[at] ^= 1 << (next() % 8),
                    1 => m.insert(at, next() as u8),
                    2 if !m.is_empty() => {
                        m.remove(at);
                    }
                    _ => {
                        let copy: Vec<u8> = m[at..].iter().take(16).copied().collect();
                        m.splice(at..at, copy);
                    }
                }
            }
            m
        })
        .collect()
}

fn replay(target: &str, run: fn(&[u8])) {
    harness::quiet_deliberate_panics();
    let count = std::env::var("FUZZ_REPLAY_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut inputs = 0;
    for (name, seed) in seeds(target) {
        for input in std::iter::once(seed.clone()).chain(mutations(&seed, count)) {
            let result = std::panic::catch_unwind(|| run(&input));
            if result.is_err() {
                panic!("{target}: seed {name} (or a mutation of it) failed on {input:?}");
            }
            inputs += 1;
        }
    }
    assert!(inputs > 0);
}

#[test]
fn http_session_seeds() {
    replay("http_session", harness::session::run);
}

#[test]
fn http_script_seeds() {
    replay("http_script", harness::script::run);
}

#[test]
fn http_split_seeds() {
    replay("http_split", harness::split::run);
}
