//! router32, round 32 (qa-embed32's findings): a route whose method is not a token (empty, a
//! space, CR/LF) answers no request, as `Router::route`'s docs say; a path whose routes all have
//! such a method is a path with no route: `404` (and `Router::allow` `None`). On 734d0df it was a
//! known path: `405` with an empty `allow` field (`204` with an empty `allow` to `OPTIONS`),
//! `allow` `Some("")`. And `Session::try_new` refuses the limits a server refuses, with the
//! server's error. Both tests fail on 734d0df (the first on its statuses; the second does not
//! build there: no `try_new`) and pass after.
#![cfg(feature = "server")]

mod util;

use std::io;
use std::time::Duration;

use reqguard::http::{
    Limits, LimitsError, Reply, Request, Response, Router, Routes, ServerBuilder, Session,
    Unaccounted,
};
use util::strict::StrictClient;

fn ok(_: &Request<'_>, res: &mut Response<'_>) -> Reply {
    res.write(b"ok");
    Reply::Now
}

fn routes(router: &mut Router<'_>) {
    router.route("", "/empty", ok);
    router.route("PO ST", "/space", ok);
    router.route("GET\r\nx-injected: 1", "/crlf", ok);
    // A path with a token route beside the others: `405` naming the token only.
    router.route("", "/mixed", ok);
    router.route("POST", "/mixed", ok);
}

#[test]
fn a_path_whose_only_routes_have_invalid_methods_is_404_over_a_socket() {
    let running = ServerBuilder::new()
        .spawn(Unaccounted::new, routes)
        .expect("spawn the server");
    let mut client = StrictClient::connect(running.addr());
    let asked: [(&str, &str, u16, Option<&str>); 8] = [
        ("GET", "/empty", 404, None),
        ("OPTIONS", "/empty", 404, None),
        ("PUT", "/space", 404, None),
        ("OPTIONS", "/space", 404, None),
        ("GET", "/crlf", 404, None),
        ("OPTIONS", "/crlf", 404, None),
        ("PUT", "/mixed", 405, Some("POST")),
        ("OPTIONS", "/mixed", 204, Some("POST")),
    ];
    let mut batch = String::new();
    for (method, path, ..) in asked {
        batch += &format!("{method} {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    }
    client.send(batch.as_bytes());
    for (method, path, status, allow) in asked {
        let answer = client.answer(method);
        assert_eq!(
            (answer.status, answer.field("allow")),
            (status, allow),
            "{method} {path}: {answer:?}"
        );
        assert_eq!(answer.field("x-injected"), None);
        assert!(!answer.closes(), "{method} {path}");
    }
    client.expect_nothing_more(false, Duration::from_millis(50));
    running.stop().expect("the server's report");

    let routes_store = Routes::new();
    let mut router = Router::new(&routes_store);
    routes(&mut router);
    for path in ["/empty", "/space", "/crlf"] {
        assert_eq!(router.allow(path), None, "{path}");
    }
    assert_eq!(router.allow("/mixed"), Some("POST"));
    assert_eq!(router.allow("*"), Some("POST"));
    assert!(!router.knows("PO ST"));
}

/// `Session::try_new` refuses what `Server::bind` refuses (`max_head` 0 made a session that
/// answered every request `501`), with the same error; valid limits serve as `Session::new`'s.
#[test]
fn session_try_new_refuses_the_limits_a_server_refuses() {
    let routes_store = Routes::new();
    let mut router = Router::new(&routes_store);
    router.route("GET", "/", ok);
    let bad = Limits::default().with_max_head(0);
    let err = Session::try_new(&router, Unaccounted::new(), bad).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<LimitsError>())
        .expect("a LimitsError inside");
    assert_eq!(inner.knob(), "max_head");
    // The server's own error for the same limits.
    let server_err = ServerBuilder::new()
        .limits(bad)
        .spawn(Unaccounted::new, |r: &mut Router<'_>| {
            r.route("GET", "/", ok);
        })
        .unwrap_err();
    assert_eq!(server_err.kind(), err.kind());
    assert_eq!(server_err.to_string(), err.to_string());

    let mut session = Session::try_new(&router, Unaccounted::new(), Limits::default())
        .expect("default limits are valid");
    session.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let out = String::from_utf8(session.take_output()).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.ends_with("\r\n\r\nok"),
        "{out:?}"
    );
}
