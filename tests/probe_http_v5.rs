//! QA probes of the mio server after issue 10's cost round 5, over real sockets with the
//! guarded accounting, each piece of the round held by what a client sees:
//!
//! - `Host` values are run as reg-name bytes before leading whitespace is skipped: any SP/HTAB
//!   before (and after) a value, in any name case, gives the answer the plain `Host: value` gets
//!   (RFC 9110 5.5: the whitespace is not part of the value; RFC 9112 3.2 decides validity).
//! - Leading empty lines (RFC 9112 2.2) are looked for only when the input begins with CR or LF:
//!   CRLFs and bare LFs before a request, between pipelined ones, split anywhere and more than
//!   the head limit, are dropped; other bytes before a request line are a `400`.
//! - A `Content-Length` body is kept as where it begins: the handler gets every body whole,
//!   however it arrives (with its head, after it, byte by byte, after `100 Continue`).
//! - Health probes (a loop group only) are read from the probe's own bytes, pipelined after
//!   other requests too; a plain server has none.
//! - The default content type is kept as `None`: the type a handler sets is the one written,
//!   `text/plain` when it sets none or sets it by name; none on `204`/`304`.
//! - A handler's panic becomes the `500` once `catch_unwind` has stopped it, from `handle` and
//!   from a deferred `resume`, whatever it wrote or panicked with; the connection serves on.
#![cfg(feature = "server")]

#[path = "util/quiet.rs"]
mod quiet;
mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use reqguard::http::{
    demo_routes, Guarded, Handler, LoopGroup, Reply, Request, Response, Router, ServerBuilder,
};
use reqguard::Config;
use util::READ_TIMEOUT;

/// Writes back what the handler sees of its request.
fn inspect(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    let mut text = format!(
        "method={} target={} host={:?}\n",
        req.method(),
        req.target(),
        req.host()
    );
    for (name, value) in req.headers() {
        text += &format!("{name}={:?}\n", String::from_utf8_lossy(value));
    }
    text += &format!("body={:?}", String::from_utf8_lossy(req.body()));
    res.write(text.as_bytes());
    Reply::Now
}

/// The content types `/ct?t=N` sets (the last one: none set).
const TYPES: [Option<&str>; 6] = [
    Some("text/plain"),
    Some("TEXT/PLAIN"),
    Some("text/plain; charset=utf-8"),
    Some("application/json"),
    Some("text/plai"),
    None,
];

/// `/ct?t=N&s=STATUS[&w][&p=K]`: sets content type N and the status, writes `body` (`w`), then
/// panics (`p`: 0 with a `&str`, 1 with a `u32`, 2 with a `String`).
fn content_type(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    let number = |key| req.query_param(key).and_then(|v| v.parse::<usize>().ok());
    if let Some(set) = number("t").and_then(|t| TYPES[t]) {
        res.set_content_type(set);
    }
    if let Some(status) = number("s") {
        res.set_status(u16::try_from(status).unwrap());
    }
    if req.query_param("w").is_some() {
        res.write(b"body");
    }
    match number("p") {
        Some(0) => panic!("/ct on purpose panics"),
        Some(1) => std::panic::panic_any(42_u32),
        Some(2) => std::panic::panic_any(String::from("/ct with a String panics")),
        _ => Reply::Now,
    }
}

/// `/later?panic=1`: a deferred answer whose `resume` writes, sets a type and a status, and
/// panics when asked to (the token).
struct Later;

impl Handler for Later {
    fn handle(&self, req: &Request<'_>, _: &mut Response<'_>) -> Reply {
        Reply::After {
            delay: Duration::from_millis(1),
            token: u64::from(req.query_param("panic") == Some("1")),
        }
    }

    fn resume(&self, panics: u64, res: &mut Response<'_>) {
        res.set_status(202);
        res.set_content_type("application/json");
        res.write(b"{\"resumed\":");
        if panics == 1 {
            panic!("/later's resume on purpose panics");
        }
        res.write(b"1}");
    }
}

fn routes(router: &mut Router<'_>) {
    demo_routes(router);
    for method in ["GET", "POST", "PUT", "OPTIONS"] {
        router.route(method, "/inspect", inspect);
    }
    router.route("GET", "/ct", content_type);
    router.route("GET", "/later", Later);
}

/// Runs `check` against a loop group of one loop (health probes on); nothing may leak.
fn with_group(check: impl FnOnce(SocketAddr)) {
    let group = LoopGroup::new()
        .loops(1)
        .spawn(
            |_| Guarded::embedded("probe_http_v5", Config::default()),
            routes,
        )
        .expect("spawn the group");
    check(group.addr());
    let report = group.stop().unwrap();
    assert_eq!(report.totals.leaked, 0);
}

/// Sends `parts` a few milliseconds apart on a fresh connection, half-closes, and reads
/// everything until the server closes; the `date` lines are dropped.
fn exchange(addr: SocketAddr, parts: &[&[u8]]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        // The server may close before it has read everything (a 400): a failed write is fine.
        let _ = stream.write_all(part);
    }
    // A half-close may end a connection whose deferred answer is not written yet: the requests
    // to `/later` end with one that asks for the close instead.
    if !parts.iter().any(|part| part.starts_with(b"GET /later")) {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut out = Vec::new();
    let read = stream.read_to_end(&mut out);
    assert!(read.is_ok(), "no clean close after {parts:?}: {read:?}");
    let text = String::from_utf8_lossy(&out);
    text.split_inclusive('\n')
        .filter(|line| !line.starts_with("date: "))
        .collect()
}

fn whole(addr: SocketAddr, raw: &[u8]) -> String {
    exchange(addr, &[raw])
}

/// A `200` with a `text/plain` body, as written on a kept-alive HTTP/1.1 connection.
fn ok_plain(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

const HELLO: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const BAD_REQUEST: &str = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\
    content-length: 11\r\nconnection: close\r\n\r\nBad Request";

/// `Host` values and whether they are valid authorities (RFC 9112 3.2, RFC 3986 3.2.2).
const HOST_VALUES: [(&str, bool); 14] = [
    ("x", true),
    ("", true),
    ("x:80", true),
    ("x:", true),
    ("[::1]:80", true),
    ("1.2.3.4", true),
    ("H.Ex-a_m~ple", true),
    ("%41", true),
    ("h!$&'()*+,;=x", true),
    ("[::1", false),
    ("a b", false),
    ("u@h", false),
    ("x:y", false),
    ("\u{80}", false),
];

/// Whitespace before and after a `Host` value changes nothing: every value, name case and
/// form gets what `Host: value` gets, and that is `200` with `host()` the value when it is a
/// valid authority, `400` (and close) when it is not.
#[test]
fn host_values_are_judged_alike_whatever_whitespace_comes_before_them() {
    with_group(|addr| {
        let mut cases = 0;
        for (value, valid) in HOST_VALUES {
            let raw_value: Vec<u8> = if value == "\u{80}" {
                vec![0x80]
            } else {
                value.as_bytes().to_vec()
            };
            for form in 0..3 {
                let request = |name: &str, before: &str, after: &str| {
                    let line: &[u8] = match form {
                        0 => b"GET /inspect HTTP/1.1\r\n",
                        1 => b"OPTIONS http://x/inspect HTTP/1.1\r\nA: b\r\n",
                        _ => b"GET /inspect HTTP/1.0\r\n",
                    };
                    let mut raw = line.to_vec();
                    raw.extend_from_slice(format!("{name}{before}").as_bytes());
                    raw.extend_from_slice(&raw_value);
                    raw.extend_from_slice(format!("{after}\r\nX:  y \r\n\r\n").as_bytes());
                    raw.extend_from_slice(HELLO);
                    raw
                };
                let plain = whole(addr, &request("Host:", " ", ""));
                if valid {
                    // The absolute-form's authority is the request's host (RFC 9112 3.2.2).
                    let host = format!("host={:?}\n", Some(if form == 1 { "x" } else { value }));
                    assert_eq!(plain.get(8..17), Some(" 200 OK\r\n"), "{value:?}: {plain}");
                    assert!(plain.contains(&host), "{value:?}: {plain}");
                } else {
                    assert_eq!(plain, BAD_REQUEST, "{value:?}");
                }
                for name in ["Host:", "host:", "HOST:"] {
                    for before in ["", " ", "  ", "\t", " \t", "\t ", "\t\t  "] {
                        for after in ["", " ", "\t "] {
                            let raw = request(name, before, after);
                            let answer = whole(addr, &raw);
                            let expected = plain.replace("\nHost=", &format!("\n{}=", &name[..4]));
                            assert_eq!(answer, expected, "{:?}", String::from_utf8_lossy(&raw));
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, HOST_VALUES.len() * 3 * 3 * 7 * 3);
    });
}

/// Requests that leading empty lines may precede, and the answers they get without them.
fn requests_after_empty_lines() -> Vec<(&'static [u8], String)> {
    vec![
        (HELLO, ok_plain("hello")),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 5\r\n\r\nhello"
                .to_string(),
        ),
        (
            b"PUT /inspect HTTP/1.1\r\nHost:  x\r\nTransfer-Encoding: chunked\r\n\r\n2;e=1\r\nhi\r\n0\r\nT: 1\r\n\r\n",
            ok_plain(
                "method=PUT target=/inspect host=Some(\"x\")\nHost=\"x\"\n\
                 Transfer-Encoding=\"chunked\"\nbody=\"hi\"",
            ),
        ),
        (
            b"GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n",
            ok_plain("live"),
        ),
    ]
}

/// CRLFs and bare LFs before a request line are dropped (RFC 9112 2.2), before the first request
/// and between pipelined ones, sent whole or split anywhere, and more of them than the head
/// limit (they are dropped as they arrive, not kept as a head); anything else before a request
/// line is a `400`.
#[test]
fn leading_empty_lines_are_dropped_however_they_arrive() {
    let many = "\r\n".repeat(5_000);
    let lfs = "\n".repeat(9_000);
    let prefixes = [
        "\r\n",
        "\n",
        "\r\n\r\n",
        "\n\n\r\n",
        many.as_str(),
        lfs.as_str(),
    ];
    with_group(|addr| {
        for (request, answer) in requests_after_empty_lines() {
            assert_eq!(whole(addr, request), answer);
            for prefix in prefixes {
                let mut raw = prefix.as_bytes().to_vec();
                raw.extend_from_slice(request);
                raw.extend_from_slice(prefix.as_bytes());
                raw.extend_from_slice(HELLO);
                let expected = format!("{answer}{}", ok_plain("hello"));
                let what = String::from_utf8_lossy(&raw[raw.len().saturating_sub(200)..]);
                assert_eq!(whole(addr, &raw), expected, "{what}");
                if prefix.len() > 4 {
                    continue;
                }
                // Split at every point of the empty lines and the request line's start, and
                // between the request and the empty lines after it.
                let after = prefix.len() + request.len();
                let cuts = (1..prefix.len() + 6).chain(after - 2..after + prefix.len() + 2);
                for cut in cuts {
                    let answer = exchange(addr, &[&raw[..cut], &raw[cut..]]);
                    assert_eq!(answer, expected, "{what} cut at {cut}");
                }
            }
        }
        for bad in ["\r\r\n", " \r\n", "\0\r\n", "\r\n \r\n", "\r", "\t"] {
            let mut raw = bad.as_bytes().to_vec();
            raw.extend_from_slice(HELLO);
            assert_eq!(whole(addr, &raw), BAD_REQUEST, "{bad:?}");
            assert_eq!(
                exchange(addr, &[&raw[..1], &raw[1..]]),
                BAD_REQUEST,
                "{bad:?}"
            );
        }
    });
}

/// The answer `POST /echo` gets for `body`.
fn echoed(body: &[u8]) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    )
}

/// `answer` without the one `100 Continue` a request with `expect` may get before it (whether
/// the head was read before its body arrived is up to the reads; RFC 9110 10.1.1).
fn without_continue<'a>(answer: &'a str, expect: &str) -> &'a str {
    let interim = "HTTP/1.1 100 Continue\r\n\r\n";
    match answer.strip_prefix(interim) {
        Some(rest) if !expect.is_empty() => rest,
        _ => answer,
    }
}

/// A `Content-Length` body reaches its handler whole, exactly its bytes, however it arrives:
/// with its head, after it, in pieces, byte by byte, after `100 Continue`; and the request
/// pipelined after it is read from where the body ends.
#[test]
fn content_length_bodies_reach_the_handler_whole_however_they_arrive() {
    let bodies: [&[u8]; 6] = [
        b"",
        b"h",
        b"hello",
        b"he\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"0\r\n\r\n",
        &[b'z'; 3000],
    ];
    with_group(|addr| {
        for body in bodies {
            for expect in ["", "Expect: 100-continue\r\n"] {
                let head = format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\n{expect}Content-Length: {}\r\n\r\n",
                    body.len()
                );
                let mut raw = head.clone().into_bytes();
                raw.extend_from_slice(body);
                raw.extend_from_slice(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok",
                );
                let expected = format!("{}{}", echoed(body), echoed(b"ok"));
                let what = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
                assert_eq!(whole(addr, &raw), expected, "{what}");
                // Cut around the head's end and through the body (every point of short ones).
                let end = head.len() + body.len();
                let cuts = (head.len() - 2..=end.min(head.len() + 30)).chain([end + 1]);
                for cut in cuts {
                    let answer = exchange(addr, &[&raw[..cut], &raw[cut..]]);
                    assert_eq!(
                        without_continue(&answer, expect),
                        expected,
                        "{what} cut at {cut}"
                    );
                }
                if body.len() <= 30 {
                    let bytes: Vec<&[u8]> = raw.chunks(1).collect();
                    let answer = exchange(addr, &bytes);
                    assert_eq!(without_continue(&answer, expect), expected, "{what} bytes");
                }
            }
        }
    });
}

/// Health probes are answered from the probe's own bytes, first on the connection or pipelined
/// after other requests and empty lines, `GET` and `HEAD`, with a query; a plain server (no
/// loop group) has no probes: its `/healthz/live` is a `404`.
#[test]
fn health_probes_answer_in_a_loop_group_only_and_wherever_they_come() {
    let probes = b"GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
        \r\nHEAD /healthz/ready?full=1 HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /nope HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /healthz/live HTTP/1.0\r\n\r\n";
    let expected = format!(
        "{}{}HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n\
         HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nNot Found\
         HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\
         connection: close\r\n\r\nlive",
        ok_plain("live"),
        echoed(b"abc"),
    );
    with_group(|addr| {
        assert_eq!(whole(addr, probes), expected);
        for cut in 1..probes.len() {
            let answer = exchange(addr, &[&probes[..cut], &probes[cut..]]);
            assert_eq!(answer, expected, "cut at {cut}");
        }
    });
    let running = ServerBuilder::new()
        .spawn(
            || Guarded::embedded("probe_http_v5", Config::default()),
            routes,
        )
        .unwrap();
    let answer = whole(
        running.addr(),
        b"GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let not_found =
        "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nNot Found";
    assert_eq!(answer, not_found);
    assert_eq!(running.stop().unwrap().leaked, 0);
}

/// The head of an answer to `/ct` (a `GET`; `HEAD` gets the same head and no body).
fn content_type_head(version: &str, status: u16, set: Option<&str>, body: &str) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        _ => "Not Found",
    };
    // `HTTP/1.1` to an HTTP/1.0 request too (RFC 9110 §6.2), which closes.
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    if matches!(status, 204 | 304) {
        if version == "1.0" {
            head += "connection: close\r\n";
        }
        return head + "\r\n";
    }
    head += &format!("content-type: {}\r\n", set.unwrap_or("text/plain"));
    head += &format!("content-length: {}\r\n", body.len());
    if version == "1.0" {
        head += "connection: close\r\n";
    }
    head + "\r\n"
}

/// The content type a handler sets is the one written, byte for byte (`TEXT/PLAIN` too; `text/plain`
/// when it sets none or sets it by name), for every status, HTTP/1.1 and 1.0, `GET` and `HEAD`;
/// `204` and `304` carry none.
#[test]
fn content_types_are_written_as_the_handler_sets_them() {
    with_group(|addr| {
        for (t, set) in TYPES.iter().enumerate() {
            for status in [200, 201, 204, 304, 404] {
                for write in ["", "&w=1"] {
                    let body = if write.is_empty() || matches!(status, 204 | 304) {
                        ""
                    } else {
                        "body"
                    };
                    let head = content_type_head("1.1", status, *set, body);
                    let query = format!("/ct?t={t}&s={status}{write}");
                    let raw = format!(
                        "GET {query} HTTP/1.1\r\nHost: x\r\n\r\nHEAD {query} HTTP/1.1\r\nHost: x\r\n\r\n"
                    );
                    let expected = format!("{head}{body}{head}");
                    assert_eq!(whole(addr, raw.as_bytes()), expected, "{raw}");
                    let raw = format!("GET {query} HTTP/1.0\r\n\r\n");
                    let head = content_type_head("1.0", status, *set, body);
                    assert_eq!(
                        whole(addr, raw.as_bytes()),
                        format!("{head}{body}"),
                        "{raw}"
                    );
                }
            }
        }
    });
}

const INTERNAL_ERROR: &str = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\
    content-length: 21\r\n\r\nInternal Server Error";

/// A handler that panics, after setting a status and a content type and writing, with any
/// payload, gets the plain `500` and nothing it wrote; so does a deferred answer whose `resume`
/// panics; the connection then serves the request pipelined after it (a `HEAD` gets the head).
#[test]
fn a_panicking_handler_gets_the_plain_500_and_the_connection_serves_on() {
    quiet::quiet_panics();
    with_group(|addr| {
        for panic in 0..3 {
            for t in [0, 3, 5] {
                for query in ["", "&s=201&w=1", "&s=404&w=1"] {
                    let target = format!("/ct?t={t}{query}&p={panic}");
                    let raw = format!(
                        "GET {target} HTTP/1.1\r\nHost: x\r\n\r\nHEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n"
                    );
                    let head = INTERNAL_ERROR.trim_end_matches("Internal Server Error");
                    let expected = format!("{INTERNAL_ERROR}{head}{}", ok_plain("hello"));
                    let mut sent = raw.into_bytes();
                    sent.extend_from_slice(HELLO);
                    assert_eq!(whole(addr, &sent), expected, "{target}");
                }
            }
        }
        assert_eq!(
            whole(
                addr,
                b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
            ),
            format!("{INTERNAL_ERROR}{}", ok_plain("hello"))
        );
        let resumed = "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n\
            content-length: 13\r\n\r\n{\"resumed\":1}";
        let last = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\
            connection: close\r\n\r\nhello";
        for (target, answer) in [("/later", resumed), ("/later?panic=1", INTERNAL_ERROR)] {
            let later = format!(
                "GET {target} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            assert_eq!(whole(addr, later.as_bytes()), format!("{answer}{last}"));
        }
    });
}

/// A `Host` value is read whole at every length and with its odd byte anywhere: the run over
/// reg-name bytes goes a word at a time and ends at the CR, so a value of 1 to 24 bytes with an
/// upper-case letter, a digit, a `-`, `.`, `_`, `~`, `%41` or a port anywhere is served with
/// `host()` the value, and one with `@`, `/`, a space or obs-text anywhere (also right after an
/// allowed odd byte) is a `400`, with
/// any whitespace before and after it.
#[test]
fn host_values_of_every_length_are_read_whole() {
    let odd: [(&[u8], bool); 13] = [
        (b"Q", true),
        (b"7", true),
        (b"-", true),
        (b".", true),
        (b"_~", true),
        (b"%41", true),
        (b"@", false),
        (b"/", false),
        (b"a b", false),
        (&[0x80], false),
        (b"\"", false),
        // A byte the table allows, then one it does not: each is looked at.
        (b"-@", false),
        (b"Q\x80", false),
    ];
    with_group(|addr| {
        for len in 1..=24 {
            for (byte, valid) in odd {
                for at in 0..=len {
                    let mut value = vec![b'h'; len];
                    value.splice(at..at, byte.iter().copied());
                    for (before, after) in [(" ", ""), ("", ""), ("  ", " "), ("\t", "\t")] {
                        let mut raw =
                            format!("GET /inspect HTTP/1.1\r\nHost:{before}").into_bytes();
                        raw.extend_from_slice(&value);
                        raw.extend_from_slice(format!("{after}\r\n\r\n").as_bytes());
                        raw.extend_from_slice(HELLO);
                        let answer = whole(addr, &raw);
                        let what = String::from_utf8_lossy(&raw).into_owned();
                        if valid {
                            let host =
                                format!(" host={:?}\n", Some(String::from_utf8_lossy(&value)));
                            assert!(
                                answer.starts_with("HTTP/1.1 200 OK\r\n"),
                                "{what}: {answer}"
                            );
                            assert!(answer.contains(&host), "{what}: {answer}");
                            assert!(answer.ends_with(&ok_plain("hello")), "{what}: {answer}");
                        } else {
                            assert_eq!(answer, BAD_REQUEST, "{what}");
                        }
                    }
                }
            }
        }
    });
}
