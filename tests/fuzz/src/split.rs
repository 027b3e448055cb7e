//! Target `http_split`: the same bytes, split at arbitrary points and read back at arbitrary
//! moments, give the same answers as in one piece. This is where an incremental parser hides
//! its bugs: a decoder that restarts (quadratic work), a limit counted on framing in one split
//! and not another, back-pressure that loses or reorders input.
//!
//! Format: byte 0 picks the limits (tight, medium, default); byte 1 is the number of cuts (at
//! most 16); then 3 bytes per cut (a little-endian `u16` offset, and a flag byte whose low bit
//! says whether the client reads its answers at that point); the rest is the input.

use std::time::Duration;

use reqguard::http::{demo_routes, ChunkedDecoder, Guarded, Limits, Router, Routes, Session};
use reqguard::Config;

use super::{check_responses, without_interim};

fn limits(choice: u8) -> Limits {
    match choice % 3 {
        // Every limit small enough for the fuzzer to cross: back-pressure after 256 bytes of
        // answers, a 64-byte body, a few bytes of framing, extensions and trailers.
        0 => Limits::default()
            .with_max_head(256)
            .with_max_body(64)
            .with_max_chunk_overhead(96)
            .with_max_chunk_extensions(16)
            .with_max_trailers(32)
            .with_max_output(256)
            .with_max_pipeline(4),
        1 => Limits::default()
            .with_max_head(1024)
            .with_max_body(4096)
            .with_max_chunk_overhead(1024)
            .with_max_output(2048)
            .with_max_pipeline(8),
        _ => Limits::default(),
    }
}

/// Cut points (offset, whether the client reads there), sorted, within `len`.
fn cuts(header: &[u8], len: usize) -> Vec<(usize, bool)> {
    let mut cuts: Vec<(usize, bool)> = header
        .chunks_exact(3)
        .map(|c| {
            let offset = usize::from(u16::from_le_bytes([c[0], c[1]]));
            (offset % (len + 1), c[2] & 1 == 1)
        })
        .collect();
    cuts.sort_unstable();
    cuts
}

/// Feeds `input` in the pieces `cuts` make, reading answers where they say; then lets deferred
/// answers come due, stops, drains and disconnects. Returns every answer; checks the ledger.
fn answers(input: &[u8], cuts: &[(usize, bool)], limits: Limits) -> Vec<u8> {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(
        &router,
        Guarded::embedded("fuzz", Config::default()),
        limits,
    );
    let mut out = Vec::new();
    let mut start = 0;
    for &(cut, read) in cuts {
        session.feed(&input[start..cut]);
        start = cut;
        if read {
            out.extend(session.take_output());
        }
    }
    session.feed(&input[start..]);
    out.extend(session.take_output());
    session.advance(Duration::from_secs(61));
    out.extend(session.take_output());
    session.stop();
    session.advance(Duration::from_secs(6));
    out.extend(session.take_output());
    session.disconnect();
    session.ledger().expect("guarded").assert_quiescent();
    assert_eq!(session.dispatcher().in_flight(), 0);
    out
}

/// The chunked decoder alone, on `input` as a body: (consumed, body) or the error.
fn decode(input: &[u8], cuts: &[(usize, bool)], limits: &Limits) -> Result<(usize, Vec<u8>), u16> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    let mut start = 0;
    for end in cuts.iter().map(|c| c.0).chain([input.len()]) {
        if end < start {
            continue;
        }
        start += decoder
            .decode(&input[start..end], &mut body)
            .map_err(|e| e.status())?;
        if decoder.is_done() {
            return Ok((start, body));
        }
    }
    Ok((usize::MAX, body))
}

/// Runs one input. See the module docs for the format.
pub fn run(data: &[u8]) {
    super::quiet_deliberate_panics();
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Some((&count, rest)) = rest.split_first() else {
        return;
    };
    let header_len = (usize::from(count) % 17 * 3).min(rest.len());
    let (header, input) = rest.split_at(header_len);
    let limits = limits(choice);
    let cuts = cuts(header, input.len());

    let whole = answers(input, &[], limits);
    check_responses(&whole);
    let split = answers(input, &cuts, limits);
    check_responses(&split);
    // Only `100 Continue` may differ: it is sent when a head arrives before its body.
    let (whole, split) = (without_interim(&whole), without_interim(&split));
    assert!(
        whole == split,
        "answers depend on how the bytes are split ({cuts:?}):\n{:?}\n{:?}",
        String::from_utf8_lossy(&whole),
        String::from_utf8_lossy(&split)
    );
    assert_eq!(
        decode(input, &[], &limits),
        decode(input, &cuts, &limits),
        "the chunked decoder depends on the split ({cuts:?})"
    );
}
