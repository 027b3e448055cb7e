//! QA probes of the mio server's fast path (issue 10's cost round 4: the common head built
//! without the general checks, `Host` matched in the name's compare, u32 field spans, short
//! answers gathered in a fixed buffer, the router's one-word method key), over real sockets
//! with the guarded accounting, as the client battery run against `serve` sees it.
//!
//! - Every head gets the answers it gets off the fast path: when the scan declines it (its
//!   request line ended by a bare LF, which httparse reads as CRLF) and when the general checks
//!   decide (a `Connection: keep-alive` added to an HTTP/1.1 head): same statuses, same closes,
//!   same framing of what follows, and the same request as the handler sees it (`host()`,
//!   fields, body).
//! - The `Host` rules (RFC 9112 3.2) hold on the common head: missing, two, empty, port, IPv6,
//!   userinfo, invalid bytes, HTTP/1.0 and HTTP/1.1.
//! - Answers with bodies of 0 to 40 bytes, pipelined on one connection, kept-alive HTTP/1.1 and
//!   HTTP/1.0, `HEAD`, and a last `connection: close`, each read by the strict client.
//! - Methods of every length up to 10 bytes find their own route, `405` or `501`.
//! - A kept-alive connection's timer (the idle timeout, found to cover the timer once and then
//!   not computed again) moves to the request timeout when a head begins, earlier or later.
#![cfg(feature = "server")]

mod util;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use reqguard::http::{
    demo_routes, Guarded, Limits, Reply, Request, Response, Router, Running, ServerBuilder,
};
use reqguard::Config;
use util::strict::{self, StrictClient};
use util::READ_TIMEOUT;

/// Writes back what the handler sees of its request, `host()` included.
fn inspect(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    let body = res.body_mut();
    let mut line = |label: &str, value: &[u8]| {
        body.extend_from_slice(label.as_bytes());
        body.push(b'=');
        body.extend_from_slice(value);
        body.push(b'\n');
    };
    line("method", req.method().as_bytes());
    line("target", req.target().as_bytes());
    line("path", req.path().as_bytes());
    line("query", req.query().unwrap_or("-").as_bytes());
    line("host", req.host().unwrap_or("-").as_bytes());
    for (name, value) in req.headers() {
        // The field `via_general_checks` adds is not shown: the answers must be equal.
        if (name, value) != GENERAL_CHECKS {
            line(&format!("field {name}"), value);
        }
    }
    line("body", req.body());
    Reply::Now
}

/// Answers `GET /bytes?n=N` with N bytes (`a` to `z`, repeated).
fn bytes(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    let n: usize = req
        .query_param("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    res.write(&pattern(n));
    Reply::Now
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Writes back the method (routes for methods of several lengths on `/m`).
fn method(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    res.write(req.method().as_bytes());
    Reply::Now
}

/// Route methods on `/m`: 1, 3, 7, 8 and 9 bytes, around the one-word key's 8.
const ROUTE_METHODS: [&str; 6] = ["G", "GET", "OPTIONS", "PROPFIND", "PROPFINDX", "ABCDEFGH"];

fn server() -> Running {
    server_with(Limits::default())
}

fn server_with(limits: Limits) -> Running {
    ServerBuilder::new()
        .limits(limits)
        .spawn(
            || Guarded::embedded("probe_http_v4", Config::default()),
            |router: &mut Router<'_>| {
                demo_routes(router);
                for m in ["GET", "POST", "OPTIONS", "PUT"] {
                    router.route(m, "/inspect", inspect);
                }
                router.route("GET", "/bytes", bytes);
                for m in ROUTE_METHODS {
                    router.route(m, "/m", method);
                }
            },
        )
        .unwrap()
}

fn finish(running: Running) {
    let report = running.stop().unwrap();
    assert_eq!(report.leaked, 0, "{}", report.leaks);
}

/// Sends `raw` on a fresh connection, half-closes, and reads everything until the server
/// closes; the `date` lines are dropped (they may differ from one answer to the next).
fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    // The server may close before it has read everything (a 400): a failed write is fine.
    let _ = stream.write_all(raw);
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    if let Err(e) = stream.read_to_end(&mut out) {
        assert_ne!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "no close within the read timeout after {:?}",
            String::from_utf8_lossy(raw)
        );
    }
    out.split_inclusive(|&b| b == b'\n')
        .filter(|line| !line.starts_with(b"date: "))
        .flatten()
        .copied()
        .collect()
}

/// A field that changes nothing in an HTTP/1.1 request (kept alive either way) but that keeps
/// its head off the common shape: the general checks (`Host`, target form, framing) decide.
const GENERAL_CHECKS: (&str, &[u8]) = ("Connection", b"keep-alive");

/// `raw` (an HTTP/1.1 request) with [`GENERAL_CHECKS`] after its request line.
fn via_general_checks(raw: &[u8]) -> Option<Vec<u8>> {
    let end = raw.windows(2).position(|w| w == b"\r\n")? + 2;
    raw[..end].ends_with(b" HTTP/1.1\r\n").then(|| {
        let (name, value) = GENERAL_CHECKS;
        let field = [name.as_bytes(), b": ", value, b"\r\n"].concat();
        [&raw[..end], &field, &raw[end..]].concat()
    })
}

/// `raw` with its request line ended by a bare LF: the scan takes only CRLF, so the server
/// parses the head with httparse (which reads it as CRLF).
fn via_httparse(raw: &[u8]) -> Option<Vec<u8>> {
    let end = raw.iter().position(|&b| b == b'\n')?;
    let line = &raw[..=end];
    let plain = line.ends_with(b" HTTP/1.1\r\n") || line.ends_with(b" HTTP/1.0\r\n");
    (plain && !line[..end - 1].contains(&b'\r')).then(|| [&raw[..end - 1], &raw[end..]].concat())
}

const HOSTS: &[Option<&str>] = &[
    Some("Host: x"),
    Some("host: x"),
    Some("HOST:x"),
    Some("hOsT:\t x \t"),
    Some("Host: "),
    Some("Host:"),
    Some("Host: x:80"),
    Some("Host: x:"),
    Some("Host: [::1]:8080"),
    Some("Host: [::1"),
    Some("Host: u@x"),
    Some("Host: a b"),
    Some("Host: h/x"),
    Some("Host: %41"),
    Some("Host: %4"),
    Some("Host: x,y"),
    Some("Host: XN--Bcher-kva.example"),
    Some("Host: x\r\nHost: x"),
    Some("Host: x\r\nhost: y"),
    Some("Host: \r\nHost: x"),
    Some("Host : x"),
    Some("Hostx: x"),
    Some("X-Host: x"),
    None,
];

const LINES: &[&str] = &[
    "GET /inspect HTTP/1.1",
    "GET /inspect?q=1 HTTP/1.1",
    "HEAD /inspect HTTP/1.1",
    "POST /inspect HTTP/1.1",
    "GET /inspect HTTP/1.0",
    "GET http://h:1/inspect?q HTTP/1.1",
    "OPTIONS * HTTP/1.1",
    "GET * HTTP/1.1",
    "CONNECT h:1 HTTP/1.1",
    "GET / HTTP/1.1",
    "GET /nope HTTP/1.1",
    "BREW /inspect HTTP/1.1",
];

const FIELDS: &[&[&str]] = &[
    &[],
    &["X-A: a"],
    &["Content-Length: 0"],
    &["Content-Length: 3"],
    &["Transfer-Encoding: chunked"],
    &["Content-Length: 3", "Transfer-Encoding: chunked"],
    &["Connection: close"],
    &["connection: Keep-Alive"],
    &["Connection: upgrade"],
    &["Expect: 100-continue"],
    &["Expect: nothing"],
];

/// The request's body for its fields, so a framed body is there (and one unframed is read as
/// the next request).
fn body_for(fields: &[&str]) -> &'static str {
    match fields {
        ["Content-Length: 3"] => "abc",
        ["Transfer-Encoding: chunked"] => "3\r\nabc\r\n0\r\n\r\n",
        ["Content-Length: 3", _] => "3\r\nabc\r\n0\r\n\r\n",
        _ => "",
    }
}

/// Every head: a request line, a `Host` variant (first or last), a set of other fields, its
/// body, then a pipelined request whose answer shows how the first one was framed.
fn heads() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for line in LINES {
        for host in HOSTS {
            for (k, fields) in FIELDS.iter().enumerate() {
                // Every Host with the plain fields; the framing fields with a few Hosts.
                if k > 1
                    && !matches!(
                        host,
                        Some("Host: x" | "hOsT:\t x \t" | "Host: x\r\nHost: x") | None
                    )
                {
                    continue;
                }
                for host_last in [false, true] {
                    let mut head = format!("{line}\r\n");
                    let mut lines: Vec<&str> = fields.to_vec();
                    if let Some(host) = host {
                        if host_last {
                            lines.push(host)
                        } else {
                            lines.insert(0, host)
                        }
                    }
                    for field in lines {
                        head.push_str(field);
                        head.push_str("\r\n");
                    }
                    head.push_str("\r\n");
                    head.push_str(body_for(fields));
                    head.push_str("GET /inspect?next HTTP/1.1\r\nHost: n\r\n\r\n");
                    all.push(head.into_bytes());
                }
            }
        }
    }
    all
}

#[test]
fn heads_on_the_fast_path_get_the_answers_of_the_general_path() {
    let running = server();
    let addr = running.addr();
    let mut compared = 0;
    let mut differ = Vec::new();
    for raw in heads() {
        let fast = exchange(addr, &raw);
        let others = [
            ("httparse", via_httparse(&raw)),
            ("general checks", via_general_checks(&raw)),
        ];
        for (path, other) in others {
            let Some(other) = other else { continue };
            compared += 1;
            let answers = exchange(addr, &other);
            if answers != fast {
                differ.push(format!(
                    "{:?}\n    fast path: {:?}\n    {path}: {:?}",
                    String::from_utf8_lossy(&raw),
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&answers)
                ));
            }
        }
    }
    assert!(compared > 2000, "only {compared} heads compared");
    assert!(
        differ.is_empty(),
        "{} of {compared} heads answered otherwise off the fast path:\n  {}",
        differ.len(),
        differ
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    finish(running);
}

/// The status of the first answer to `raw` on a fresh connection, and the `host` the handler
/// saw (`/inspect`'s line), if it answered.
fn status_and_host(addr: SocketAddr, raw: &str) -> (u16, Option<String>) {
    let out = exchange(addr, raw.as_bytes());
    let text = String::from_utf8_lossy(&out);
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer to {raw:?}: {text:?}"));
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host="))
        .map(str::to_string);
    (status, host)
}

/// RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without `Host`, to any
/// request with two `Host` lines or an invalid `Host` value; `host[:port]` of a reg-name,
/// IPv4 or IP literal is valid, an empty value too (the target had no authority). On the
/// common head (origin-form, nothing but `Host`), which skips the general checks.
#[test]
fn host_rules_hold_on_the_common_head() {
    let running = server();
    let addr = running.addr();
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("1.1", "Host: x\r\n", 200, Some("x")),
        ("1.1", "host:x\r\n", 200, Some("x")),
        ("1.1", "HOST: \t x \t\r\n", 200, Some("x")),
        ("1.1", "Host: \r\n", 200, Some("")),
        ("1.1", "Host: x:8080\r\n", 200, Some("x:8080")),
        ("1.1", "Host: 10.0.0.1:80\r\n", 200, Some("10.0.0.1:80")),
        ("1.1", "Host: [::1]:80\r\n", 200, Some("[::1]:80")),
        ("1.1", "Host: %41.example\r\n", 200, Some("%41.example")),
        ("1.1", "", 400, None),
        ("1.1", "X-Host: x\r\n", 400, None),
        ("1.1", "Host: x\r\nHost: x\r\n", 400, None),
        ("1.1", "Host: x\r\nhost: y\r\n", 400, None),
        ("1.1", "Host: \r\nHost: x\r\n", 400, None),
        ("1.1", "Host: x\r\nHost: \r\n", 400, None),
        ("1.1", "Host: u@x\r\n", 400, None),
        ("1.1", "Host: a b\r\n", 400, None),
        ("1.1", "Host: h/x\r\n", 400, None),
        ("1.1", "Host: x:8a\r\n", 400, None),
        ("1.1", "Host: x:80:90\r\n", 400, None),
        ("1.1", "Host: [::1\r\n", 400, None),
        ("1.1", "Host: %zz\r\n", 400, None),
        ("1.1", "Host: x\"y\r\n", 400, None),
        ("1.1", "Host : x\r\n", 400, None),
        ("1.0", "", 200, Some("-")),
        ("1.0", "Host: x\r\n", 200, Some("x")),
        ("1.0", "Host: x\r\nHost: x\r\n", 400, None),
        ("1.0", "Host: u@x\r\n", 400, None),
    ];
    let mut wrong = Vec::new();
    for &(version, fields, status, host) in cases {
        let raw = format!("GET /inspect HTTP/{version}\r\n{fields}\r\n");
        let got = status_and_host(addr, &raw);
        let expected = (status, host.map(str::to_string));
        if got != expected {
            wrong.push(format!("{raw:?}: got {got:?}, expected {expected:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "Host rules broken:\n  {}",
        wrong.join("\n  ")
    );
    finish(running);
}

/// Answers with bodies of 0 to 40 bytes (those up to 16 are gathered in a fixed buffer),
/// pipelined on one connection: kept-alive HTTP/1.1, `POST /echo` of the same length, HTTP/1.0
/// kept alive, `HEAD` (its length and no body), then a last `connection: close`. Every answer
/// read by the strict client, every body byte for byte.
#[test]
fn short_answers_of_every_length_are_whole_and_strict_when_pipelined() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for n in 0..=40 {
        requests
            .extend_from_slice(format!("GET /bytes?n={n} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        expected.push(("GET", n, "HTTP/1.1"));
        requests.extend_from_slice(
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n").as_bytes(),
        );
        requests.extend_from_slice(&pattern(n));
        expected.push(("POST", n, "HTTP/1.1"));
        requests.extend_from_slice(
            format!("GET /bytes?n={n} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        );
        expected.push(("GET", n, "HTTP/1.1")); // an HTTP/1.0 request: RFC 9110 §6.2
        requests
            .extend_from_slice(format!("HEAD /bytes?n={n} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        expected.push(("HEAD", n, "HTTP/1.1"));
    }
    requests.extend_from_slice(b"GET /bytes?n=7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    client.send(&requests);
    for (method, n, version) in expected {
        let answer = client.answer(method);
        let what = format!("{method} {n} bytes over {version}");
        assert_eq!(answer.status, 200, "{what}");
        assert_eq!(answer.version, version, "{what}");
        assert_eq!(
            answer.field("content-length"),
            Some(n.to_string().as_str()),
            "{what}"
        );
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            pattern(n)
        };
        assert_eq!(answer.body, body, "{what}");
        assert!(!answer.closes(), "{what}");
    }
    let last = client.answer("GET");
    assert_eq!(
        (last.body.as_slice(), last.closes()),
        (&b"abcdefg"[..], true)
    );
    client.expect_nothing_more(true, Duration::ZERO);
    finish(running);
}

/// Methods of 1 to 10 bytes on a path with routes for methods of 1, 3, 7, 8 and 9 bytes (the
/// router matches methods of up to 8 bytes as one word): each route's own method finds it,
/// a known method without a route there is `405`, anything else `501`; `HEAD` finds `GET`.
#[test]
fn methods_of_every_length_find_their_own_route() {
    let running = server();
    let addr = running.addr();
    let mut asked = vec![
        "G",
        "GE",
        "GET",
        "GETS",
        "HEAD",
        "POST",
        "OPTION",
        "OPTIONS",
        "OPTIONSX",
        "PROPFIN",
        "PROPFIND",
        "PROPFINDX",
        "PROPFINDXY",
        "ABCDEFG",
        "ABCDEFGH",
        "ABCDEFGHI",
        "g",
        "get",
        "Get",
        "PATCH",
        "DELETE",
        "X",
    ];
    asked.sort_unstable();
    let mut wrong = Vec::new();
    for m in asked {
        let raw = format!("{m} /m HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        let out = exchange(addr, raw.as_bytes());
        let text = String::from_utf8_lossy(&out);
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let routed = if m == "HEAD" { "GET" } else { m };
        let expected = if ROUTE_METHODS.contains(&routed) {
            200
        } else if ["POST", "PUT", "DELETE", "PATCH", "TRACE"].contains(&m) {
            405
        } else {
            501
        };
        let body_ok = status != 200 || m == "HEAD" || text.ends_with(m);
        if status != expected || !body_ok {
            wrong.push(format!("{m}: expected {expected}, got {text:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "methods routed wrongly:\n  {}",
        wrong.join("\n  ")
    );
    finish(running);
}

/// Three requests answered on one connection (between them it waits with its idle timeout
/// alone), then the start of a head, left unfinished; when it was sent.
fn kept_alive_then_a_head_begun(client: &mut StrictClient) -> Instant {
    for _ in 0..3 {
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.answer("GET").status, 200);
        std::thread::sleep(Duration::from_millis(40));
    }
    client.send(b"GET / HT");
    Instant::now()
}

/// The request timeout shorter than the idle timeout: a head begun after answers gets its
/// `408` at the request timeout, not when the idle timer set after the last answer fires. The
/// idle timeout is past the client's read timeout (10 s), so a `408` read at all is the request
/// timer's, however slow the machine; it never comes before that timer's 300 ms.
#[test]
fn a_head_begun_after_answers_gets_its_408_at_the_request_timeout() {
    let limits = Limits::default()
        .with_idle_timeout(Duration::from_secs(60))
        .with_request_timeout(Duration::from_millis(300));
    let running = server_with(limits);
    let mut client = StrictClient::connect(running.addr());
    let begun = kept_alive_then_a_head_begun(&mut client);
    let answer = client.answer("GET");
    let waited = begun.elapsed();
    assert_eq!((answer.status, answer.closes()), (408, true));
    assert!(
        waited >= Duration::from_millis(250),
        "408 after {waited:?}: the request timeout is 300 ms"
    );
    client.expect_nothing_more(true, Duration::ZERO);
    finish(running);
}

/// The idle timeout shorter than the request timeout: a head begun after answers is not cut
/// at the idle timeout; finished later, it is answered on the same connection.
#[test]
fn a_head_begun_after_answers_outlives_the_idle_timeout() {
    let limits = Limits::default()
        .with_idle_timeout(Duration::from_millis(500))
        .with_request_timeout(Duration::from_secs(6));
    let running = server_with(limits);
    let mut client = StrictClient::connect(running.addr());
    kept_alive_then_a_head_begun(&mut client);
    // Three idle timeouts pass while the head is incomplete: nothing is answered or closed.
    client.expect_nothing_more(false, Duration::from_millis(1500));
    client.send(b"TP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.answer("GET").text(), "hello");
    finish(running);
}

/// Requests whose chunked body no route reads (`404`, `405`, a `GET` route), each followed on
/// the same connection by a `GET /`: the body is read past and the connection kept, so the
/// request behind it is answered (as a `Content-Length` body is).
fn unread_chunked_bodies_keep_the_connection(addr: SocketAddr, stack: &str) {
    let cases = [
        ("POST /nope", 404),
        ("POST /", 405),
        ("GET /", 200),
        ("PUT /echo", 405),
    ];
    let mut wrong = Vec::new();
    for (line, status) in cases {
        let mut client = StrictClient::connect(addr);
        client.send(
            format!(
                "{line} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        );
        let first = client.answer("POST");
        if first.status != status || first.closes() {
            wrong.push(format!(
                "{line}: {} {:?}, expected {status} kept alive",
                first.status,
                first.field("connection")
            ));
            continue;
        }
        let next = client.answer("GET");
        assert_eq!(
            (next.status, next.text()),
            (200, "hello"),
            "{stack}: {line}"
        );
    }
    assert!(
        wrong.is_empty(),
        "{stack}: a chunked body no route reads closes the connection (the request behind it is lost):\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn mio_keeps_the_connection_after_a_chunked_body_no_route_reads() {
    let running = server();
    unread_chunked_bodies_keep_the_connection(running.addr(), "mio");
    finish(running);
}

/// Runs `check` against the demo on hyper (`serve --stack hyper`), started as
/// tests/hyper_conformance.rs starts it; nothing may leak.
#[cfg(feature = "hyper")]
fn with_hyper_demo(check: impl FnOnce(SocketAddr) + std::panic::UnwindSafe) {
    use reqguard::tokio_hyper::{demo_routes, HyperServer};
    let server =
        util::hyper_thread::HyperThread::spawn(|core| HyperServer::new(core, demo_routes()));
    let addr = server.addr;
    let checked = std::panic::catch_unwind(|| check(addr));
    let report = server.stop();
    assert_eq!(report.leaked, 0);
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
}

/// Failed from f8012b5 (the demo dropped an unread body before hyper read it) to 6212988.
#[cfg(feature = "hyper")]
#[test]
fn hyper_keeps_the_connection_after_a_chunked_body_no_route_reads() {
    with_hyper_demo(|addr| unread_chunked_bodies_keep_the_connection(addr, "hyper"));
}

/// A 60 KB `Content-Length` body that no route reads, then a pipelined `GET /`: either the
/// connection goes on (both answered, as on mio) or the answer says `connection: close`
/// before the server closes. Never an answer that claims keep-alive followed by a FIN, which
/// loses the request behind it without a word (a client may then retry a non-idempotent one).
fn an_unread_large_body_never_ends_in_a_silent_close(addr: SocketAddr, stack: &str) {
    let body = vec![b'a'; 60_000];
    let mut wrong = Vec::new();
    for (line, method) in [("POST /nope", "POST"), ("GET /", "GET"), ("HEAD /", "HEAD")] {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let head = format!("{line} HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n");
        let request = [head.as_bytes(), &body, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
        // The server may stop reading (and close) before it has all of it.
        let _ = stream.write_all(&request);
        let mut reader = BufReader::new(stream);
        let first = strict::read_for(&mut reader, method).expect("a strict first answer");
        if first.closes() {
            strict::expect_clean_eof(&mut reader).expect("a clean close after the close answer");
            continue;
        }
        match strict::read_for(&mut reader, "GET") {
            Ok(next) if next.status == 200 => {}
            other => wrong.push(format!(
                "{line}: {} kept alive, then {:?} instead of the pipelined GET's answer",
                first.status,
                other.map(|a| a.status).map_err(|e| e.kind())
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{stack}: an answer without `connection: close`, then the connection closed:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn mio_never_ends_an_unread_large_body_in_a_silent_close() {
    let running = server();
    an_unread_large_body_never_ends_in_a_silent_close(running.addr(), "mio");
    finish(running);
}

#[cfg(feature = "hyper")]
#[test]
fn hyper_never_ends_an_unread_large_body_in_a_silent_close() {
    with_hyper_demo(|addr| an_unread_large_body_never_ends_in_a_silent_close(addr, "hyper"));
}
