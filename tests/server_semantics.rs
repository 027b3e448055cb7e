//! RFC 9110 / 9112 semantics over real sockets, every answer read by the strict client of
//! `tests/util/strict.rs` (status line, field syntax, one IMF-fixdate `date`, exact body
//! length, no body after `HEAD`, nothing after the last answer; `StrictClient`). Issue 10, rows 4 to 9, and what
//! handlers see (headers, query, body, `this`). The conformance table in `docs/server.md`
//! names these tests.
#![cfg(feature = "server")]

mod util;

use std::time::Duration;

use reqguard::engines::Handle;
use reqguard::http::{
    demo_routes, Guarded, Limits, Reply, Request, Response, Router, Running, ServerBuilder,
};
use reqguard::{Config, DowngradePolicy};
use util::strict::{Strict, StrictClient};

/// How long `expect_nothing_more` waits on a kept-alive connection.
const QUIET: Duration = Duration::from_millis(150);

/// A route that writes back what a handler sees of its request.
fn inspect(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    let body = res.body_mut();
    let mut line = |label: &str, value: &[u8]| {
        body.extend_from_slice(label.as_bytes());
        body.extend_from_slice(b"=");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\n");
    };
    line("method", req.method().as_bytes());
    line("target", req.target().as_bytes());
    line("path", req.path().as_bytes());
    line("query", req.query().unwrap_or("-").as_bytes());
    line("q", req.query_param("q").unwrap_or("-").as_bytes());
    line("host", req.host().unwrap_or("-").as_bytes());
    line("x-token", req.header("X-TOKEN").unwrap_or(b"-"));
    line("fields", req.headers().count().to_string().as_bytes());
    for (name, value) in req.headers() {
        line(&format!("field {name}"), value);
    }
    line("body", req.body());
    let this = req.this::<Handle<&'static str>>().map_or("-", |h| **h);
    line("this", this.as_bytes());
    Reply::Now
}

fn start(limits: Limits, config: Config) -> Running {
    ServerBuilder::new()
        .limits(limits)
        .spawn(
            move || Guarded::embedded("the server's wrapper", config),
            |router: &mut Router<'_>| {
                demo_routes(router);
                router.route("GET", "/inspect", inspect);
                router.route("POST", "/inspect", inspect);
            },
        )
        .unwrap()
}

fn server() -> Running {
    start(Limits::default(), Config::default())
}

fn finish(running: Running) {
    let report = running.stop().unwrap();
    assert_eq!(report.leaked, 0, "{}", report.leaks);
}

/// Sends `requests` in one write and reads one strict answer per method in `methods`.
fn pipelined(client: &mut StrictClient, requests: &str, methods: &[&str]) -> Vec<Strict> {
    client.send(requests.as_bytes());
    methods.iter().map(|m| client.answer(m)).collect()
}

#[test]
fn head_is_answered_by_the_get_route_with_its_length_and_no_body() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let answers = pipelined(
        &mut client,
        "HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
        &["HEAD", "GET"],
    );
    assert_eq!(answers[0].status, 200, "{:?}", answers[0]);
    assert_eq!(answers[0].field("content-length"), Some("5"), "kept");
    assert_eq!(answers[0].field("content-type"), Some("text/plain"));
    assert!(answers[0].body.is_empty());
    // The GET right behind it parses from the very next byte.
    assert_eq!((answers[1].status, answers[1].text()), (200, "hello"));
    // A deferred answer to HEAD, and HTTP/1.0.
    let answers = pipelined(
        &mut client,
        "HEAD /delay?ms=5 HTTP/1.1\r\nhost: x\r\n\r\nHEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n\
         GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        &["HEAD", "HEAD", "GET"],
    );
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].field("content-length"), Some("12")); // "delayed 5 ms"
    assert_eq!(answers[1].version, "HTTP/1.1"); // to HTTP/1.0 too: RFC 9110 §6.2
    assert_eq!(answers[1].field("content-length"), Some("5"));
    assert_eq!(answers[2].text(), "hello");
    client.expect_nothing_more(false, QUIET);
    finish(running);
}

#[test]
fn no_answer_to_head_has_a_body_404_405_500_and_503_included() {
    let running = start(
        Limits::default(),
        Config::default().with_downgrade(DowngradePolicy::OnStop),
    );
    let mut client = StrictClient::connect(running.addr());
    let answers = pipelined(
        &mut client,
        "HEAD /missing HTTP/1.1\r\nhost: x\r\n\r\nHEAD /echo HTTP/1.1\r\nhost: x\r\n\r\n\
         HEAD /panic HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
        &["HEAD", "HEAD", "HEAD", "GET"],
    );
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [404, 405, 500, 200], "{answers:?}");
    assert_eq!(answers[0].field("content-length"), Some("9")); // "Not Found"
    assert_eq!(answers[1].field("allow"), Some("POST"));
    assert_eq!(answers[3].text(), "hello");
    client.expect_nothing_more(false, QUIET);

    // The PR's late request, as a HEAD: the wrapper is collected at stop, the answer is a 503
    // with its head only, then the close.
    assert!(running.stop_handle().stop_and_wait(Duration::from_secs(10)));
    let answer = pipelined(&mut client, "HEAD / HTTP/1.1\r\nhost: x\r\n\r\n", &["HEAD"]).remove(0);
    assert_eq!(answer.status, 503);
    assert!(answer.closes());
    assert_eq!(answer.field("content-length"), Some("19"));
    client.expect_nothing_more(true, Duration::from_secs(5));
    let report = running.join().unwrap();
    assert_eq!(report.stats.refused_finalized, 1);
    assert_eq!(report.leaked, 0);

    // A rejected HEAD (here: no Host) has no body either.
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let answer = pipelined(&mut client, "HEAD / HTTP/1.1\r\n\r\n", &["HEAD"]).remove(0);
    assert_eq!((answer.status, answer.closes()), (400, true));
    client.expect_nothing_more(true, Duration::from_secs(5));
    finish(running);
}

#[test]
fn every_405_carries_allow_and_an_unknown_method_gets_501() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let answers = pipelined(
        &mut client,
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhiGET /echo HTTP/1.1\r\nhost: x\r\n\r\n\
         DELETE /inspect HTTP/1.1\r\nhost: x\r\n\r\nBREW / HTTP/1.1\r\nhost: x\r\n\r\n\
         get / HTTP/1.1\r\nhost: x\r\n\r\nBREW /missing HTTP/1.1\r\nhost: x\r\n\r\n\
         PUT /missing HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
        &["POST", "GET", "DELETE", "BREW", "get", "BREW", "PUT", "GET"],
    );
    let got: Vec<(u16, Option<&str>)> = answers
        .iter()
        .map(|a| (a.status, a.field("allow")))
        .collect();
    assert_eq!(
        got,
        [
            (405, Some("GET, HEAD")),
            (405, Some("POST")),
            (405, Some("GET, HEAD, POST")),
            (501, None), // a method no server knows
            (501, None), // methods are case-sensitive
            (501, None),
            (404, None), // a method it knows, on no resource
            (200, None),
        ],
        "{answers:?}"
    );
    // None of them closed the connection.
    assert!(answers.iter().all(|a| !a.closes()));
    client.expect_nothing_more(false, QUIET);
    finish(running);
}

#[test]
fn options_without_a_route_lists_the_methods() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let answers = pipelined(
        &mut client,
        "OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\nOPTIONS /echo HTTP/1.1\r\nhost: x\r\n\r\n\
         OPTIONS /missing HTTP/1.1\r\nhost: x\r\n\r\nGET * HTTP/1.1\r\nhost: x\r\n\r\n",
        &["OPTIONS", "OPTIONS", "OPTIONS", "GET"],
    );
    let got: Vec<(u16, Option<&str>)> = answers
        .iter()
        .map(|a| (a.status, a.field("allow")))
        .collect();
    assert_eq!(
        got,
        [
            (204, Some("GET, HEAD, POST")), // every route's methods
            (204, Some("POST")),
            (404, None),
            (400, None), // the asterisk-form is for OPTIONS only
        ],
        "{answers:?}"
    );
    // The 204s have no content-length and no body (the strict client checks both).
    client.expect_nothing_more(true, Duration::from_secs(5));
    finish(running);
}

#[test]
fn every_answer_is_dated_with_an_imf_fixdate() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    // The strict client checks the date of each: exactly one, IMF-fixdate, within 5 s.
    let answers = pipelined(
        &mut client,
        "GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /missing HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\nPOST /echo HTTP/1.1\r\nhost: x\r\n\
         expect: 100-continue\r\ncontent-length: 1\r\n\r\n",
        &["GET", "GET", "GET"],
    );
    assert_eq!(answers.len(), 3);
    let first = answers[0].field("date").unwrap().to_string();
    assert!(util::strict::parse_imf_fixdate(&first).is_some());
    // `100 Continue` may go undated (RFC 9110 §6.6.1); the answer after it is dated.
    assert_eq!(client.answer("POST").status, 100);
    client.send(b"x");
    let echo = client.answer("POST");
    assert_eq!(echo.text(), "x");
    // A rejection is dated too.
    client.send(b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n");
    assert_eq!(client.answer("GET").status, 400);
    finish(running);
}

#[test]
fn http11_without_host_with_two_or_with_an_invalid_one_gets_400() {
    let running = server();
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: x\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: user@x\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: x:8o\r\n\r\n",
        "GET / HTTP/1.0\r\nhost: x\r\nhost: y\r\n\r\n",
        "GET http:///nohost HTTP/1.1\r\nhost: x\r\n\r\n",
        "GET nothing HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let mut client = StrictClient::connect(running.addr());
        let answer = pipelined(&mut client, request, &["GET"]).remove(0);
        assert_eq!((answer.status, answer.closes()), (400, true), "{request:?}");
        client.expect_nothing_more(true, Duration::from_secs(5));
    }
    // What is allowed: HTTP/1.0 without Host, an empty Host, a port, an IP literal.
    let mut client = StrictClient::connect(running.addr());
    let answers = pipelined(
        &mut client,
        "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nhost:\r\n\r\n\
         GET / HTTP/1.1\r\nhost: example.com:8080\r\n\r\nGET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n",
        &["GET", "GET", "GET", "GET"],
    );
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    client.expect_nothing_more(false, QUIET);
    finish(running);
}

#[test]
fn absolute_form_targets_are_served_like_origin_form() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let answers = pipelined(
        &mut client,
        "GET http://127.0.0.1/ HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n\
         GET HTTP://example.com:8080/delay?ms=1 HTTP/1.1\r\nhost: example.com:8080\r\n\r\n\
         POST http://example.com/echo HTTP/1.1\r\nhost: example.com\r\ncontent-length: 4\r\n\r\nping\
         GET http://proxy.example?q=1 HTTP/1.1\r\nhost: x\r\n\r\n\
         GET https://other.example/inspect?q=2 HTTP/1.1\r\nhost: ignored.example\r\n\r\n",
        &["GET", "GET", "POST", "GET", "GET"],
    );
    assert_eq!((answers[0].status, answers[0].text()), (200, "hello"));
    assert_eq!(answers[1].text(), "delayed 1 ms");
    assert_eq!(answers[2].text(), "ping");
    // `http://host?q=1` has the path `/`.
    assert_eq!((answers[3].status, answers[3].text()), (200, "hello"));
    let seen = answers[4].text();
    assert!(seen.contains("\npath=/inspect\n"), "{seen}");
    assert!(seen.contains("\nq=2\n"), "{seen}");
    // The target's authority is the host; the Host field is ignored (RFC 9112 §3.2.2).
    assert!(seen.contains("\nhost=other.example\n"), "{seen}");
    client.expect_nothing_more(false, QUIET);
    finish(running);
}

#[test]
fn a_target_over_the_limit_gets_414_and_a_head_over_it_431() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(9 * 1024));
    let answer = pipelined(&mut client, &long, &["GET"]).remove(0);
    assert_eq!((answer.status, answer.closes()), (414, true), "{answer:?}");
    client.expect_nothing_more(true, Duration::from_secs(5));
    // The same bytes in the header section are a 431.
    let mut client = StrictClient::connect(running.addr());
    let fat = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-fat: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let answer = pipelined(&mut client, &fat, &["GET"]).remove(0);
    assert_eq!((answer.status, answer.closes()), (431, true), "{answer:?}");
    // A method that never ends is not implemented.
    let mut client = StrictClient::connect(running.addr());
    let answer = pipelined(&mut client, &"A".repeat(9 * 1024), &["A"]).remove(0);
    assert_eq!((answer.status, answer.closes()), (501, true), "{answer:?}");
    // Just under the limit is served.
    let mut client = StrictClient::connect(running.addr());
    let under = format!(
        "GET /inspect?{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(8000)
    );
    assert_eq!(pipelined(&mut client, &under, &["GET"])[0].status, 200);
    finish(running);
}

#[test]
fn handlers_see_headers_query_body_and_this() {
    let running = server();
    let mut client = StrictClient::connect(running.addr());
    let answer = pipelined(
        &mut client,
        "POST /inspect?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nx-token: t1\r\n\
         X-Token: t2\r\ncontent-length: 4\r\n\r\nbody",
        &["POST"],
    )
    .remove(0);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.text(),
        "method=POST\ntarget=/inspect?q=1&r=2\npath=/inspect\nquery=q=1&r=2\nq=1\n\
         host=example.com\nx-token=t1\nfields=4\nfield Host=example.com\nfield x-token=t1\n\
         field X-Token=t2\nfield content-length=4\nbody=body\nthis=the server's wrapper\n"
    );
    // A chunked body arrives decoded; HEAD reaches the GET route with method HEAD.
    let answers = pipelined(
        &mut client,
        "POST /inspect HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
         2\r\nab\r\n1\r\nc\r\n0\r\n\r\nHEAD /inspect HTTP/1.1\r\nhost: x\r\n\r\n",
        &["POST", "HEAD"],
    );
    assert!(answers[0].text().contains("\nbody=abc\n"));
    assert_eq!(answers[1].status, 200);
    finish(running);
}
