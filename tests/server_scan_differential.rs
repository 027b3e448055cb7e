//! The hand-written head scan (src/http/scan.rs) against httparse, in any build.
//!
//! Debug builds assert inside the parser that httparse reads every head the scan accepts the
//! same way; release builds, which `reqguard-demo serve` users run, trust the scan alone. These
//! tests compare from outside, through the public [`Session`], so they hold in
//! `cargo test --release` too. For many generated heads (smuggling-style variations, then
//! random byte flips, inserts, deletes and cuts):
//! - what the handler sees (method, target, version, every field as `(name, value)`) is what
//!   httparse, called here, parses from the same bytes;
//! - a head httparse refuses gets exactly one error answer and the connection closes;
//! - the same input with its request line ended by a bare LF (which the scan declines, so the
//!   server parses the head with httparse, which reads it as with CRLF) gets the same answers
//!   byte for byte, so the body and every request after it are framed the same way: nothing is
//!   smuggled by the scan; and the same holds behind leading empty lines;
//! - the answers do not depend on where the input was split.
//!
//! `REQGUARD_SCAN_CASES` sets the number of generated cases (default: 3,000 in debug builds,
//! 20,000 in release builds), `REQGUARD_SCAN_SEED` the first seed.
#![cfg(feature = "server")]

use std::time::Duration;

use reqguard::http::{Limits, Reply, Request, Response, Router, Routes, Session, Unaccounted};

/// Methods with a reflecting route on `/r` (a `HEAD` finds the `GET` route).
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "X-Y"];

/// A pipelined request after the one under test.
const NEXT: &[u8] = b"GET /r?next HTTP/1.1\r\nHost: n\r\n\r\n";

/// A request sent as a body (`Content-Length: 35`, or one chunk of 0x23 bytes): answered
/// as a request only where the body is framed otherwise.
const HIDDEN: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: s\r\n\r\n";

/// Writes `bytes` as hex: a reflected part never looks like a status line.
fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
}

/// The parts of a request as the reflecting route writes them, before the body.
fn reflection(
    method: &[u8],
    target: &[u8],
    http10: bool,
    fields: &[(Vec<u8>, Vec<u8>)],
) -> Vec<u8> {
    let mut out = b"M ".to_vec();
    hex(&mut out, method);
    out.extend_from_slice(b"\nT ");
    hex(&mut out, target);
    out.extend_from_slice(if http10 { b"\nV 0" } else { b"\nV 1" });
    for (name, value) in fields {
        out.extend_from_slice(b"\nF ");
        hex(&mut out, name);
        out.push(b'=');
        hex(&mut out, value);
    }
    out.extend_from_slice(b"\nB ");
    out
}

fn reflect(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    let fields: Vec<(Vec<u8>, Vec<u8>)> = req
        .headers()
        .map(|(name, value)| (name.as_bytes().to_vec(), value.to_vec()))
        .collect();
    let mut out = reflection(
        req.method().as_bytes(),
        req.target().as_bytes(),
        req.is_http10(),
        &fields,
    );
    hex(&mut out, req.body());
    res.write(&out);
    Reply::Now
}

fn smuggled(_: &Request<'_>, res: &mut Response<'_>) -> Reply {
    res.write(b"SMUGGLED");
    Reply::Now
}

/// What a session answered to some input: the bytes (without `date` lines, which follow the
/// wall clock, and without interim `100 Continue` answers, which depend on how the input was
/// split), whether the server closed the connection, and how many requests it served.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    answers: Vec<u8>,
    closed: bool,
    served: u64,
}

fn normalize(raw: &[u8]) -> Vec<u8> {
    let text = raw.split_inclusive(|&b| b == b'\n');
    let mut out = Vec::with_capacity(raw.len());
    for line in text {
        if !line.starts_with(b"date: ") {
            out.extend_from_slice(line);
        }
    }
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut cleaned = Vec::with_capacity(out.len());
    let mut at = 0;
    while at < out.len() {
        if out[at..].starts_with(interim) {
            at += interim.len();
        } else {
            cleaned.push(out[at]);
            at += 1;
        }
    }
    cleaned
}

struct Server {
    routes: Routes,
}

impl Server {
    fn new() -> Self {
        Server {
            routes: Routes::new(),
        }
    }

    fn router(&self) -> Router<'_> {
        let mut router = Router::new(&self.routes);
        for method in METHODS {
            router.route(method, "/r", reflect);
        }
        router.route("GET", "/smuggled", smuggled);
        router
    }

    /// Feeds `pieces` one after the other to a fresh session with `max_head`, then lets the
    /// request timeout pass: a head that trickles in is parsed again only once its end may
    /// have arrived, so a refusal found late may come at the timeout (with the same answer).
    fn run(&self, router: &Router<'_>, max_head: usize, pieces: &[&[u8]]) -> Outcome {
        let limits = Limits::default().with_max_head(max_head);
        let timeout = limits.request_timeout() + Duration::from_secs(1);
        let mut session = Session::new(router, Unaccounted::new(), limits);
        let mut raw = Vec::new();
        for piece in pieces {
            session.feed(piece);
            raw.extend_from_slice(&session.take_output());
        }
        session.advance(timeout);
        raw.extend_from_slice(&session.take_output());
        Outcome {
            answers: normalize(&raw),
            closed: session.is_closed(),
            served: session.stats().served,
        }
    }
}

/// What httparse says about the head at the start of `input`, read as the server reads it: at
/// most `max_head` bytes, at most 64 fields.
#[derive(Debug)]
enum Oracle {
    /// A complete head: method, target, HTTP/1.0, fields.
    Head(Vec<u8>, Vec<u8>, bool, Vec<(Vec<u8>, Vec<u8>)>),
    /// Not complete within the bytes given; `true` when the limit cut it.
    Partial(bool),
    Error(httparse::Error),
}

fn oracle(input: &[u8], max_head: usize) -> Oracle {
    let window = &input[..input.len().min(max_head)];
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(window) {
        Ok(httparse::Status::Complete(_)) => Oracle::Head(
            request.method.unwrap().as_bytes().to_vec(),
            request.path.unwrap().as_bytes().to_vec(),
            request.version == Some(0),
            request
                .headers
                .iter()
                .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                .collect(),
        ),
        Ok(httparse::Status::Partial) => Oracle::Partial(input.len() > window.len()),
        // `HTTP/1.2` and later minor versions are read as HTTP/1.1 (RFC 9110 §2.5; another
        // major version is `505`, tests/probe_client/v8.rs).
        Err(httparse::Error::Version) => match later_minor_version(window) {
            Some(at) => {
                let mut as_http11 = input.to_vec();
                as_http11[at] = b'1';
                oracle(&as_http11, max_head)
            }
            // A version still short of `HTTP/D.D` and its line end, with another major digit:
            // it may become `HTTP/2.0` (`505`) or `HTTP/22` (`400`), so the server waits for it.
            None if unfinished_version(window) => Oracle::Partial(input.len() > window.len()),
            None => Oracle::Error(httparse::Error::Version),
        },
        Err(error) => Oracle::Error(error),
    }
}

/// Where the minor digit of an `HTTP/1.x` version (x past 1) is in the request line at the
/// start of `window`, after the empty lines httparse skips and the line's two spaces.
fn later_minor_version(window: &[u8]) -> Option<usize> {
    let line = window.trim_ascii_start();
    let skipped = window.len() - line.len();
    let second_space = line
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b' ')
        .nth(1)?
        .0;
    let at = skipped + second_space + 1;
    let version = window.get(at..at + 8)?;
    (version.starts_with(b"HTTP/1.") && version[7].is_ascii_digit()).then_some(at + 7)
}

/// Whether the request line at the start of `window` ends in a version that is still a proper
/// prefix of `HTTP/` DIGIT `.` DIGIT and its line end (`CRLF` or `LF`), RFC 9112 §2.3.
fn unfinished_version(window: &[u8]) -> bool {
    let line = window.trim_ascii_start();
    let Some((second_space, _)) = line.iter().enumerate().filter(|&(_, &b)| b == b' ').nth(1)
    else {
        return false;
    };
    let version = &line[second_space + 1..];
    let fits = |at: usize, byte: u8| match at {
        0..=4 => byte == b"HTTP/"[at],
        5 | 7 => byte.is_ascii_digit(),
        6 => byte == b'.',
        8 => byte == b'\r',
        _ => false,
    };
    version.len() < 10 && version.iter().enumerate().all(|(at, &b)| fits(at, b))
}

/// The status of the first answer, and its body if it is a reflection.
fn first_answer(answers: &[u8]) -> Option<(u16, Option<&[u8]>)> {
    let status = std::str::from_utf8(answers.get(9..12)?)
        .ok()?
        .parse()
        .ok()?;
    let end = answers.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    // The answer to a `HEAD` has a length and no body: no reflection then.
    let length: Option<usize> = answers[..end]
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"content-length: "))
        .and_then(|n| std::str::from_utf8(n.trim_ascii()).ok()?.parse().ok());
    let body = length.and_then(|n| answers.get(end..end + n));
    Some((status, body.filter(|body| body.starts_with(b"M "))))
}

fn count_answers(answers: &[u8]) -> usize {
    answers.windows(9).filter(|w| *w == b"HTTP/1.1 ").count()
}

/// Checks one input; `Ok(true)` when the handler's parts were compared with httparse's, `Err`
/// describes the first divergence.
fn check(
    server: &Server,
    router: &Router<'_>,
    input: &[u8],
    max_head: usize,
    splits: usize,
) -> Result<bool, String> {
    let direct = server.run(router, max_head, &[input]);
    // The request line ended by a bare LF: the scan declines it (it takes CRLF only), so the
    // server parses the head with httparse, which reads it as with CRLF. The limit shrinks by
    // the byte so the same bytes of the head fit.
    if let Some(lf) = bare_lf_request_line(input) {
        let via_httparse = server.run(router, max_head - 1, &[&lf]);
        if via_httparse != direct {
            return Err(format!(
                "answers differ with the request line ended by LF (httparse in the server):\n  CRLF: {direct:?}\n  LF:   {via_httparse:?}"
            ));
        }
    }
    // Empty lines before the request line end nothing (and are not part of the head): the
    // same answers. (Empty lines alone start a request that never comes: its timeout is
    // tests/server_head_regressions.rs's concern.)
    for empty in [&b"\r\n"[..], b"\n"]
        .into_iter()
        .filter(|_| !input.is_empty())
    {
        let behind = server.run(router, max_head, &[empty, input]);
        if behind != direct {
            return Err(format!(
                "answers differ behind {empty:?}:\n  direct: {direct:?}\n  behind: {behind:?}"
            ));
        }
    }
    // A client that sent nothing but empty lines sent no request (its answer, if any, is the
    // concern of tests/server_head_regressions.rs).
    let request = input.trim_ascii_start();
    let compared = if request.is_empty() {
        false
    } else {
        check_oracle(&direct, oracle(input, max_head))?
    };
    // Split in two at `splits` points spread over the input (every point when it has fewer).
    let step = (input.len() / splits.max(1)).max(1);
    for at in (1..input.len()).step_by(step) {
        let split = server.run(router, max_head, &[&input[..at], &input[at..]]);
        if split != direct {
            return Err(format!(
                "answers differ when split at {at}:\n  whole: {direct:?}\n  split: {split:?}"
            ));
        }
    }
    Ok(compared)
}

/// `input` with its request line ended by LF instead of CRLF, when the line is one httparse
/// reads the same either way: it ends with `HTTP/1.x` CRLF and has no other CR.
fn bare_lf_request_line(input: &[u8]) -> Option<Vec<u8>> {
    let end = input.iter().position(|&b| b == b'\n')?;
    let line = &input[..end + 1];
    let ends_well = line.ends_with(b" HTTP/1.1\r\n") || line.ends_with(b" HTTP/1.0\r\n");
    if !ends_well || line[..end - 1].contains(&b'\r') {
        return None;
    }
    Some([&input[..end - 1], &input[end..]].concat())
}

/// The server's answer to the first request against httparse's reading of its head; `Ok(true)`
/// when the handler's parts were compared.
fn check_oracle(direct: &Outcome, oracle: Oracle) -> Result<bool, String> {
    let first = first_answer(&direct.answers);
    let answers = count_answers(&direct.answers);
    let refused = |statuses: &[u16]| -> Result<bool, String> {
        match first {
            Some((status, _)) if statuses.contains(&status) && answers == 1 && direct.closed => {
                Ok(false)
            }
            _ => Err(format!(
                "httparse refuses this head ({oracle:?}): expected one {statuses:?} and close, got {direct:?}"
            )),
        }
    };
    match &oracle {
        Oracle::Error(httparse::Error::TooManyHeaders) => refused(&[431]),
        Oracle::Error(httparse::Error::Version) => refused(&[400, 505]),
        Oracle::Error(_) => refused(&[400]),
        Oracle::Partial(true) => refused(&[414, 431, 501]),
        // Incomplete until the request timeout.
        Oracle::Partial(false) => refused(&[408]),
        Oracle::Head(method, target, http10, fields) => match first {
            Some((200, Some(body))) => {
                let parts = reflection(method, target, *http10, fields);
                let length = declared_length(fields);
                let body_len = body.len().saturating_sub(parts.len()) / 2;
                if body.starts_with(&parts) && length.is_none_or(|n| n == body_len) {
                    Ok(true)
                } else {
                    Err(format!(
                        "the handler saw other parts than httparse parses (or a body of another length than {length:?}):\n  httparse: {:?}\n  handler:  {:?}",
                        String::from_utf8_lossy(&parts),
                        String::from_utf8_lossy(body)
                    ))
                }
            }
            _ => Ok(false),
        },
    }
}

/// The body length httparse's fields declare when they frame it plainly: one `Content-Length`
/// of digits, no `Transfer-Encoding`.
fn declared_length(fields: &[(Vec<u8>, Vec<u8>)]) -> Option<usize> {
    let named = |name: &'static str| {
        fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut lengths = named("content-length");
    match (
        lengths.next(),
        lengths.next(),
        named("transfer-encoding").next(),
    ) {
        (Some((_, value)), None, None) => {
            let digits = value.trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
        _ => None,
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, from: &[&'a [u8]]) -> &'a [u8] {
        from[self.below(from.len())]
    }
}

// Each part of a generated head: most often one of the common shape (the first list), else
// one just outside it (the second).
const METHODS_COMMON: &[&[u8]] = &[b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"X-Y"];
const METHODS_ODD: &[&[u8]] = &[
    b"CONNECT",
    b"get",
    b"G\x00T",
    b"GE\x7fT",
    b"\xc3\xa9",
    b"G@T",
    b"",
    b"GET\t",
    b"G\"T",
];
const TARGETS_COMMON: &[&[u8]] = &[
    b"/r",
    b"/r",
    b"/r",
    b"/r?a=b&c",
    b"http://h:1/r",
    b"http://h/r?x",
    b"/r?%7e~!$&'()*+,;=:@\"<>[]\\^`{|}",
];
const TARGETS_ODD: &[&[u8]] = &[
    b"/r#f",
    b"/a",
    b"//r",
    b"*",
    b"h:1",
    b"/r\x7f",
    b"/r\x00",
    b"/\xc3\xa9",
    b"/r\xff",
    b"",
    b"/r\t",
    b"/r\x0b",
];
const VERSIONS_COMMON: &[&[u8]] = &[b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"];
const VERSIONS_ODD: &[&[u8]] = &[
    b"HTTP/1.2",
    b"http/1.1",
    b"HTTP/2.0",
    b"HTTP/1.10",
    b"HTTP/1.",
    b"HTTP/1.1 ",
    b"HTTP/1.1\t",
    b"HTTP/1,1",
    b"HTTP/0.9",
    b"",
    b"HTTP/1.1\x00",
    b"HTTP/1.1\r",
];
const SPACES_COMMON: &[&[u8]] = &[b" "];
const SPACES_ODD: &[&[u8]] = &[b"  ", b"\t", b"", b"\x0b", b"\x00", b"\r", b"\n", b"\x0c"];
const EOLS_COMMON: &[&[u8]] = &[b"\r\n"];
const EOLS_ODD: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\r\r\n",
    b"\n\r",
    b"\r\n ",
    b"\r\n\t",
    b"\x00\r\n",
];
const NAMES_COMMON: &[&[u8]] = &[
    b"Host",
    b"Content-Length",
    b"content-length",
    b"Transfer-Encoding",
    b"transfer-encoding",
    b"Connection",
    b"Expect",
    b"X-A",
    b"X_A",
    b"x!#$%&'*+-.^_`|~9",
    b"Accept",
    b"User-Agent",
    b"X-A",
    b"X_A",
    b"x!#$%&'*+-.^_`|~9",
    b"Accept",
    b"User-Agent",
    b"Cookie",
];
const NAMES_ODD: &[&[u8]] = &[
    b"Host ",
    b" Host",
    b"Ho st",
    b"Content-Length\t",
    b"",
    b"X\x00",
    b"X\x80",
    b"\tX",
    b"X\"",
    b"X:Y",
    b"X\x7f",
    b"X(Y)",
    b"X@",
];
const COLONS_COMMON: &[&[u8]] = &[b": ", b": ", b":", b":\t", b":  \t "];
const COLONS_ODD: &[&[u8]] = &[b" :", b"\t:", b"", b";", b":\x0b"];
const VALUES_COMMON: &[&[u8]] = &[
    b"x",
    b"h",
    b"",
    b"5",
    b" 5 ",
    b"5, 5",
    b"05",
    b"+5",
    b"-1",
    b"0x5",
    b"5 5",
    b"4",
    b"6",
    b"35",
    b"18446744073709551616",
    b"chunked",
    b"Chunked ",
    b"gzip, chunked",
    b"chunked, chunked",
    b"\"chunked\"",
    b"identity",
    b"close",
    b"keep-alive",
    b"Close, keep-alive",
    b"100-continue",
    b"a b",
    b"a\tb",
    b"\tx\t",
    b"x \t",
    b"[::1]:80",
    b"h:99999",
    b"h/x",
    b"h@x",
    b"h%20",
    b"~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
];
const VALUES_ODD: &[&[u8]] = &[
    b"\x80\xff",
    b"a\x00b",
    b"a\rb",
    b"a\nb",
    b"a\x7fb",
    b"a\x0bb",
    b"\xa05",
    b"5\x0c",
    b"\x01",
];

impl Rng {
    /// A common part most of the time, else an odd one.
    fn part<'a>(&mut self, common: &[&'a [u8]], odd: &[&'a [u8]]) -> &'a [u8] {
        if self.chance(97) {
            self.pick(common)
        } else {
            self.pick(odd)
        }
    }
}

/// One generated input: a head (request line, fields) built mostly of the common shape,
/// then a body, a request hidden in the body, a pipelined request.
fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut head = Vec::new();
    head.extend_from_slice(rng.part(METHODS_COMMON, METHODS_ODD));
    head.extend_from_slice(rng.part(SPACES_COMMON, SPACES_ODD));
    head.extend_from_slice(rng.part(TARGETS_COMMON, TARGETS_ODD));
    if rng.chance(3) {
        head.extend(std::iter::repeat_n(b'a', rng.below(9000)));
    }
    head.extend_from_slice(rng.part(SPACES_COMMON, SPACES_ODD));
    head.extend_from_slice(rng.part(VERSIONS_COMMON, VERSIONS_ODD));
    head.extend_from_slice(rng.part(EOLS_COMMON, EOLS_ODD));
    if rng.chance(85) {
        head.extend_from_slice(b"Host: h\r\n");
    }
    let fields = if rng.chance(5) {
        60 + rng.below(8)
    } else {
        rng.below(5)
    };
    for n in 0..fields {
        if fields > 8 && rng.chance(95) {
            head.extend_from_slice(format!("X-{n}: {n}\r\n").as_bytes());
            continue;
        }
        if rng.chance(90) {
            head.extend_from_slice(rng.part(NAMES_COMMON, NAMES_ODD));
            head.extend_from_slice(rng.part(COLONS_COMMON, COLONS_ODD));
            head.extend_from_slice(rng.part(VALUES_COMMON, VALUES_ODD));
        } else {
            head.extend_from_slice(b"X-Long: ");
            head.extend(std::iter::repeat_n(b'v', rng.below(300)));
        }
        if rng.chance(3) {
            // obs-fold: a continuation line.
            head.extend_from_slice(b"\r\n ");
            head.extend_from_slice(rng.part(VALUES_COMMON, VALUES_ODD));
        }
        head.extend_from_slice(rng.part(EOLS_COMMON, EOLS_ODD));
    }
    head.extend_from_slice(rng.part(EOLS_COMMON, EOLS_ODD));
    if rng.chance(20) {
        mutate(rng, &mut head);
    }
    let mut input = head;
    match rng.below(5) {
        0 => input.extend_from_slice(b"hello"),
        1 => input.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n"),
        2 => input.extend_from_slice(HIDDEN),
        3 => input.extend_from_slice(&[b"23\r\n", HIDDEN, b"\r\n0\r\n\r\n"].concat()),
        _ => {}
    }
    input.extend_from_slice(NEXT);
    if rng.chance(10) {
        let cut = rng.below(input.len());
        input.truncate(cut);
    }
    input
}

/// One to three byte flips, inserts or deletes in the head, of the bytes that matter to a parser.
fn mutate(rng: &mut Rng, head: &mut Vec<u8>) {
    const BYTES: &[u8] = b"\x00\r\n\t \x7f\x80\xff:\x0b\x0c\"A,;";
    for _ in 0..1 + rng.below(3) {
        if head.is_empty() {
            return;
        }
        let at = rng.below(head.len());
        let byte = if rng.chance(80) {
            BYTES[rng.below(BYTES.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(3) {
            0 => head[at] = byte,
            1 => head.insert(at, byte),
            _ => {
                head.remove(at);
            }
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fails with every input that diverged (at most 10 shown), as a Rust byte string.
fn report(failures: &[(Vec<u8>, usize, String)]) {
    if failures.is_empty() {
        return;
    }
    let mut text = format!("{} divergent inputs; the first ones:\n", failures.len());
    for (input, max_head, why) in failures.iter().take(10) {
        text += &format!(
            "- max_head {max_head}, input b\"{}\"\n  {why}\n",
            input.escape_ascii()
        );
    }
    panic!("{text}");
}

#[test]
fn generated_heads_are_read_as_httparse_reads_them() {
    let cases = env_or(
        "REQGUARD_SCAN_CASES",
        if cfg!(debug_assertions) {
            3_000
        } else {
            20_000
        },
    );
    let seed = env_or("REQGUARD_SCAN_SEED", 1);
    let server = Server::new();
    let router = server.router();
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in 0..cases {
        let mut rng = Rng((seed + case).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let input = generate(&mut rng);
        let max_head = [8 * 1024, 8 * 1024, 8 * 1024, 8 * 1024, 64, 200][rng.below(6)];
        // Every split point of the heads up to 256 bytes (in release builds).
        let splits = if cfg!(debug_assertions) { 16 } else { 256 };
        match check(&server, &router, &input, max_head, splits) {
            Ok(parts) => compared += u64::from(parts),
            Err(why) => failures.push((input, max_head, why)),
        }
    }
    report(&failures);
    // The generator must keep reaching the handler, or the comparison of parts proves nothing.
    assert!(
        compared * 6 >= cases,
        "only {compared} of {cases} generated requests reached the handler"
    );
    eprintln!("{compared} of {cases} generated requests reached the handler");
}

/// Heads just outside the scan's shape, one by one, each split at every byte: the request-line
/// and field-line tricks of request smuggling (whitespace and controls around names, values and
/// the target, obs-fold, bare CR and LF, conflicting framing fields, versions, field counts).
#[test]
fn smuggling_variations_are_read_as_httparse_reads_them() {
    let server = Server::new();
    let router = server.router();
    let mut failures = Vec::new();
    for input in variations() {
        for max_head in [8 * 1024, 64] {
            if let Err(why) = check(&server, &router, &input, max_head, usize::MAX) {
                failures.push((input.clone(), max_head, why));
            }
        }
    }
    report(&failures);
}

/// Request lines just outside the scan's shape (each followed by `Host` and the end of the head).
const REQUEST_LINES: &[&[u8]] = &[
    b"GET /r HTTP/1.1",
    b"GET /r HTTP/1.0",
    b"GET /r HTTP/1.2",
    b"GET /r http/1.1",
    b"GET /r HTTP/1.1 ",
    b"GET  /r HTTP/1.1",
    b"GET /r  HTTP/1.1",
    b"GET\t/r HTTP/1.1",
    b"GET /r\tHTTP/1.1",
    b"GET /r\x0bHTTP/1.1",
    b"GET /r\x00 HTTP/1.1",
    b"GET /r\x7f HTTP/1.1",
    b"GET /r\x80 HTTP/1.1",
    b"GET /\xc3\xa9 HTTP/1.1",
    b"GET http://h:1/r HTTP/1.1",
    b"GET HTTP://H/r HTTP/1.1",
    b"CONNECT h:1 HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"get /r HTTP/1.1",
    b"G\x00T /r HTTP/1.1",
    b" GET /r HTTP/1.1",
    b"GET /r HTTP/1.1\r",
    b"GET /r HTTP/1.1\n",
];

/// Field lines just outside the scan's shape, mostly about framing (each in a `POST`).
const FIELD_LINES: &[&[u8]] = &[
    b"Content-Length: 5",
    b"Content-Length:5",
    b"Content-Length:\t5\t",
    b"Content-Length: 5 ",
    b"Content-Length : 5",
    b"Content-Length\t: 5",
    b" Content-Length: 5",
    b"\tContent-Length: 5",
    b"Content-Length: 5\r\n 6",
    b"Content-Length: 5\r\n\t6",
    b"Content-Length: 5\r\nContent-Length: 5",
    b"Content-Length: 5\r\nContent-Length: 6",
    b"Content-Length: 5, 5",
    b"Content-Length: 5,6",
    b"Content-Length: +5",
    b"Content-Length: 05",
    b"Content-Length: 0x5",
    b"Content-Length: 5\x00",
    b"Content-Length: 5\x0b",
    b"Content-Length: 5\x7f",
    b"Content-Length: 5\x80",
    b"Content-Length: \xa05",
    b"Content-Length: 5\rX: y",
    b"Content-Length: 5\nX: y",
    b"Content\x00Length: 5",
    b"Content-Length\x00: 5",
    b"Content_Length: 5",
    b"CONTENT-LENGTH: 5",
    b"Content-Length: 35",
    b"Content-Length: 35\r\nContent-Length: 5",
    b"Content-Length: 5\r\nContent-Length: 35",
    b"Content-Length: 35, 5",
    b"Content-Length: 3\x005",
    b"Content-Length: 35\x0b",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5",
    b"Content-Length: 5\r\nTransfer-Encoding: chunked",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked, identity",
    b"Transfer-Encoding:\tchunked",
    b"Transfer-Encoding: chunked\t",
    b"Transfer-Encoding : chunked",
    b"Transfer-Encoding: \x0bchunked",
    b"Transfer-Encoding: chunked\x00",
    b"Transfer-Encoding: \"chunked\"",
    b"Transfer-Encoding: chunk\x80ed",
    b"Transfer-Encoding:\r\n chunked",
    b"Transfer_Encoding: chunked\r\nContent-Length: 5",
    b"X: a\x00b",
    b"X: a\x7fb",
    b"X: a\x01b",
    b"X: \x80\xff",
    b"X:\x0c",
    b"X-\x80: 1",
    b"X\"Y: 1",
    b": 1",
    b"X",
    b"Host: h",
    b"Host: h h",
    b"Host:",
    b"Expect: 100-continue\r\nContent-Length: 5",
    b"Connection: close\r\nContent-Length: 5",
];

/// Heads just outside the scan's shape, each behind a few bodies and before a pipelined request.
fn variations() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = REQUEST_LINES
        .iter()
        .map(|line| [line, &b"\r\nHost: h\r\n\r\n"[..], NEXT].concat())
        .collect();
    all.extend([
        [&b"GET /r HTTP/1.1\nHost: h\n\n"[..], NEXT].concat(),
        [&b"GET /r HTTP/1.1\r\nHost: h\n\r\n"[..], NEXT].concat(),
        [&b"GET /r HTTP/1.1\r\nHost: h\r\r\n\r\n"[..], NEXT].concat(),
        [&b"GET /r HTTP/1.1\r\nHost: h\r\n\n"[..], NEXT].concat(),
        [&b"GET /r HTTP/1.1\r\nHost: h\r\n\r\r\n"[..], NEXT].concat(),
        [&b"GET /r HTTP/1.1\r\n\r\n"[..], NEXT].concat(),
        [&b"GET /r HTTP/1.1\r\nHost: h\r\n"[..], &b"a".repeat(9000)].concat(),
    ]);
    let chunked_hidden = [b"23\r\n", HIDDEN, b"\r\n0\r\n\r\n"].concat();
    for field in FIELD_LINES {
        for body in [&b"hello"[..], HIDDEN, &chunked_hidden] {
            all.push(
                [
                    &b"POST /r HTTP/1.1\r\nHost: h\r\n"[..],
                    field,
                    b"\r\n\r\n",
                    body,
                    NEXT,
                ]
                .concat(),
            );
        }
        // The same field behind a chunked body's framing.
        all.push(
            [
                &b"POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"[..],
                field,
                b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                NEXT,
            ]
            .concat(),
        );
    }
    // 62 to 65 fields, around httparse's 64 (a 65th is 431).
    for n in 62..66 {
        let mut head = b"GET /r HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 1..n {
            head.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        all.push([&head[..], b"\r\n", NEXT].concat());
    }
    all
}
