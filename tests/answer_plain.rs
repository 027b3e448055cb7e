//! perf21, round 21: the common answer told by one load. A `Response` that nothing but its
//! body was set on (`200`, `text/plain`, no `allow`, no close, no stop) holds no settings
//! (`None`, one store to make), is written by the common way without comparing its status,
//! content type and `allow`, and its close and stop are not asked; the first setter called
//! makes the settings from the defaults. These pin that each setter alone still has its
//! effect on the wire (and on the server), on both accountings, pipelined behind and ahead of
//! plain answers in one read. They pass on main too (no behaviour changes). Against the
//! round's first version (a `plain` flag that each setter cleared), each failed when one
//! setter's clear was removed: a `set_status(150)` was written `200`, not `500`; a
//! `set_status(404)` `200`; a `set_content_type` `text/plain`; `close_connection` and
//! `stop_server` were not heard (the stop test then gave up waiting after 10 s).
#![cfg(feature = "server")]

mod util;

use std::time::Duration;

use reqguard::http::{
    Accounting, Guarded, Reply, Request, Response, Router, ServerBuilder, Unaccounted,
};
use reqguard::Config;
use util::strict::StrictClient;

fn plain(_: &Request<'_>, res: &mut Response<'_>) -> Reply {
    res.write(b"plain");
    Reply::Now
}

fn routes(router: &mut Router<'_>) {
    router.route("GET", "/plain", plain);
    router.route("GET", "/ok", |_: &Request<'_>, res: &mut Response<'_>| {
        res.set_status(200);
        res.write(b"ok");
        Reply::Now
    });
    router.route(
        "GET",
        "/created",
        |_: &Request<'_>, res: &mut Response<'_>| {
            res.set_status(201);
            res.write(b"created");
            Reply::Now
        },
    );
    router.route(
        "GET",
        "/missing",
        |_: &Request<'_>, res: &mut Response<'_>| {
            res.set_status(404);
            res.write(b"missing");
            Reply::Now
        },
    );
    // Out of range: the server's `settle` makes it a `500`.
    router.route(
        "GET",
        "/informational",
        |_: &Request<'_>, res: &mut Response<'_>| {
            res.set_status(150);
            res.write(b"interim");
            Reply::Now
        },
    );
    router.route("GET", "/html", |_: &Request<'_>, res: &mut Response<'_>| {
        res.set_content_type("text/html");
        res.write(b"<p>html</p>");
        Reply::Now
    });
    router.route("GET", "/text", |_: &Request<'_>, res: &mut Response<'_>| {
        res.set_content_type("text/plain");
        res.write(b"text");
        Reply::Now
    });
    // Not a field value: a plain `500`, whatever was written.
    router.route(
        "GET",
        "/injected",
        |_: &Request<'_>, res: &mut Response<'_>| {
            res.set_content_type("text/plain\r\nx-injected: 1");
            res.write(b"injected");
            Reply::Now
        },
    );
    router.route(
        "GET",
        "/close",
        |_: &Request<'_>, res: &mut Response<'_>| {
            res.close_connection();
            res.write(b"bye");
            Reply::Now
        },
    );
    router.route("GET", "/stop", |_: &Request<'_>, res: &mut Response<'_>| {
        res.stop_server();
        res.write(b"stopping");
        Reply::Now
    });
}

/// What each path answers: status, content type, body, and whether it closes.
const EXPECTED: [(&str, u16, &str, &str, bool); 9] = [
    ("/plain", 200, "text/plain", "plain", false),
    ("/ok", 200, "text/plain", "ok", false),
    ("/created", 201, "text/plain", "created", false),
    ("/missing", 404, "text/plain", "missing", false),
    (
        "/informational",
        500,
        "text/plain",
        "Internal Server Error",
        false,
    ),
    ("/html", 200, "text/html", "<p>html</p>", false),
    ("/text", 200, "text/plain", "text", false),
    (
        "/injected",
        500,
        "text/plain",
        "Internal Server Error",
        false,
    ),
    ("/close", 200, "text/plain", "bye", true),
];

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n")
}

/// Every path of [`EXPECTED`] but the last, each between two plain requests, in one write
/// (one read on the server: one `Response` after another in the same pass), then `/close`:
/// each answer is the one its setter asks for, read by the strict client, and the plain
/// answers around them are plain.
fn each_setter_is_heard_between_plain_answers<A: Accounting + 'static>(
    accounting: impl FnOnce() -> A + Send + 'static,
) {
    let running = ServerBuilder::new()
        .spawn(accounting, routes)
        .expect("spawn the server");
    let mut client = StrictClient::connect(running.addr());
    let mut batch = String::new();
    for (path, ..) in EXPECTED {
        batch += &get("/plain");
        batch += &get(path);
    }
    client.send(batch.as_bytes());
    for (path, status, content_type, body, closes) in EXPECTED {
        let before = client.answer("GET");
        assert_eq!(
            (before.status, before.field("content-type"), before.text()),
            (200, Some("text/plain"), "plain"),
            "the plain answer before {path}"
        );
        assert!(!before.closes(), "the plain answer before {path}");
        let answer = client.answer("GET");
        assert_eq!(
            (answer.status, answer.field("content-type"), answer.text()),
            (status, Some(content_type), body),
            "{path}"
        );
        assert_eq!(answer.closes(), closes, "{path}");
        assert_eq!(answer.field("x-injected"), None, "{path}");
    }
    // Nothing after the `connection: close` answer, then a clean FIN.
    client.expect_nothing_more(true, Duration::from_secs(5));
    let report = running.stop().expect("the server's report");
    assert_eq!(report.stats.served, 2 * EXPECTED.len() as u64);
    assert_eq!(report.stats.panics, 0);
}

#[test]
fn each_setter_is_heard_between_plain_answers_guarded() {
    each_setter_is_heard_between_plain_answers(|| Guarded::embedded("server", Config::default()));
}

#[test]
fn each_setter_is_heard_between_plain_answers_unaccounted() {
    each_setter_is_heard_between_plain_answers(Unaccounted::new);
}

/// `stop_server` alone (nothing else set on its response) stops the server: the answers
/// already computed go out, and the server's thread ends on its own (no stop from outside).
fn stop_server_alone_stops_the_server<A: Accounting + 'static>(
    accounting: impl FnOnce() -> A + Send + 'static,
) {
    let running = ServerBuilder::new()
        .spawn(accounting, routes)
        .expect("spawn the server");
    let mut client = StrictClient::connect(running.addr());
    client.send(format!("{}{}", get("/plain"), get("/stop")).as_bytes());
    let first = client.answer("GET");
    assert_eq!((first.status, first.text()), (200, "plain"));
    let stop = client.answer("GET");
    assert_eq!((stop.status, stop.text()), (200, "stopping"));
    let stop_handle = running.stop_handle();
    util::wait_until("the server to stop on its own", || {
        stop_handle.is_stopping()
    });
    let report = running.join().expect("the server stopped on its own");
    assert_eq!(report.stats.served, 2);
}

#[test]
fn stop_server_alone_stops_the_server_guarded() {
    stop_server_alone_stops_the_server(|| Guarded::embedded("server", Config::default()));
}

#[test]
fn stop_server_alone_stops_the_server_unaccounted() {
    stop_server_alone_stops_the_server(Unaccounted::new);
}
