//! qa-client8, round 8: `serve` on both stacks (`--stack mio`, `--stack hyper`) as a hostile
//! client sees it: framing mutations, versions, request-target forms. Each test fails on the
//! main it was written against and passes after its fix; every answer is read by the strict
//! client (tests/util/strict.rs: status line, field syntax, one `content-length`, one
//! IMF-fixdate `date`, exact body, nothing after `connection: close` but a clean FIN).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

use util::serve::Serve;
use util::strict::{Strict, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Sends `request` on a new connection and reads its one answer (to `method`) strictly,
/// which must close the connection cleanly.
fn closing_answer(serve: &Serve, method: &str, request: &[u8]) -> Strict {
    let mut client = StrictClient::connect(serve.addr);
    client.send(request);
    let answer = client.answer(method);
    assert!(answer.closes(), "{answer:?}");
    client.expect_nothing_more(true, Duration::ZERO);
    answer
}

/// Sends `request` then a pipelined `GET /` on one connection; both must be answered,
/// strictly and in order, and the connection kept.
fn answered_then_get(serve: &Serve, method: &str, request: &[u8]) -> Strict {
    let mut client = StrictClient::connect(serve.addr);
    client.send(request);
    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let answer = client.answer(method);
    let next = client.answer("GET");
    assert_eq!((next.status, next.text()), (200, "hello"), "{next:?}");
    client.expect_nothing_more(false, Duration::from_millis(50));
    answer
}

fn stop_clean(serve: Serve) {
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
}

/// RFC 9112 §6.1: "A server that receives a request message with a transfer coding it does
/// not understand SHOULD respond with 501 (Not Implemented)." `gzip, chunked` is framed (its
/// final coding is `chunked`) but coded in a way neither stack decodes. Before, both stacks
/// answered `400`, the answer for a body whose length cannot be known (which `gzip` alone,
/// or `chunked, gzip`, still gets: a MUST of §6.3).
#[test]
fn a_transfer_coding_before_chunked_is_501_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for (method, coding) in [
            ("POST", "gzip, chunked"),
            ("POST", "x-custom,chunked"),
            ("HEAD", "br, chunked"),
        ] {
            let request = format!(
                "{method} /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: {coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            );
            let answer = closing_answer(&serve, method, request.as_bytes());
            assert_eq!(answer.status, 501, "{stack} {coding}: {answer:?}");
        }
        for coding in ["gzip", "chunked, gzip", "chunked, chunked"] {
            let request = format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: {coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            );
            let answer = closing_answer(&serve, "POST", request.as_bytes());
            assert_eq!(answer.status, 400, "{stack} {coding}: {answer:?}");
        }
        stop_clean(serve);
    }
}

/// RFC 9110 §5.6.1: "a recipient MUST parse and ignore a reasonable number of empty list
/// elements". `Transfer-Encoding: chunked,` is `chunked`. Before, the mio stack answered
/// `400` and closed. (hyper's own parser refuses a list whose last element is empty before
/// the adapter sees it, so on that stack only the leading empty element, `, chunked`, is
/// read as `chunked`: docs/hyper.md.)
#[test]
fn empty_elements_in_transfer_encoding_are_ignored() {
    for (stack, codings) in [
        (
            "--stack mio",
            &["chunked,", " , chunked", "chunked , ,"][..],
        ),
        ("--stack hyper", &[", chunked", " ,, chunked"][..]),
    ] {
        let serve = Serve::start("", stack);
        for coding in codings {
            let request = format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: {coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            );
            let answer = answered_then_get(&serve, "POST", request.as_bytes());
            assert_eq!(
                (answer.status, answer.text()),
                (200, "abc"),
                "{stack} {coding:?}"
            );
        }
        stop_clean(serve);
    }
}

/// RFC 9110 §2.5: a recipient of a higher minor version of a major version it implements
/// "SHOULD process the message as if it were in the highest minor version within that major
/// version to which the recipient is conformant"; §6.2: the answer says `HTTP/1.1`. A major
/// version the server does not implement may get `505` (§15.6.6), which says what is wrong
/// where `400` does not. Before, the mio stack answered `400` to `HTTP/1.2` and `HTTP/2.0`
/// alike. (hyper's parser answers both `400` before the adapter sees them: docs/hyper.md.)
#[test]
fn http_1_2_is_served_as_http_1_1_and_another_major_version_gets_505() {
    let serve = Serve::start("", "--stack mio");
    let answer = answered_then_get(
        &serve,
        "POST",
        b"POST /echo HTTP/1.2\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi",
    );
    assert_eq!((answer.status, answer.text()), (200, "hi"), "{answer:?}");
    assert_eq!(answer.version, "HTTP/1.1");
    let head = answered_then_get(&serve, "HEAD", b"HEAD / HTTP/1.9\r\nhost: x\r\n\r\n");
    assert_eq!(head.status, 200, "{head:?}");
    for request in [
        &b"GET / HTTP/2.0\r\nhost: x\r\n\r\n"[..],
        b"GET / HTTP/3.0\r\nhost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let answer = closing_answer(&serve, "GET", request);
        assert_eq!(answer.status, 505, "{answer:?}");
        // RFC 9110 §15.6.6: it SHOULD say why, and which versions the server supports.
        assert!(answer.text().contains("HTTP/1.1"), "{answer:?}");
    }
    for request in [
        &b"GET / HTTP/1.x\r\nhost: x\r\n\r\n"[..],
        b"GET / HTTP/12.0\r\nhost: x\r\n\r\n",
    ] {
        assert_eq!(closing_answer(&serve, "GET", request).status, 400);
    }
    stop_clean(serve);
}

/// RFC 9112 §3.2.3, §3.2.4: the authority-form is only used for CONNECT, the asterisk-form
/// only for a server-wide OPTIONS. The mio stack answers any other use `400` + close
/// (docs/server.md, "Bad input"). Before, the hyper stack routed `GET *` and `GET host:80`
/// as paths (`404`, connection kept).
#[test]
fn target_forms_their_method_does_not_take_are_400_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for (method, target) in [
            ("GET", "*"),
            ("HEAD", "*"),
            ("DELETE", "*"),
            ("GET", "example.com:80"),
            ("OPTIONS", "example.com:80"),
            ("OPTIONS", "*x"),
        ] {
            let request = format!("{method} {target} HTTP/1.1\r\nhost: x\r\n\r\n");
            let answer = closing_answer(&serve, method, request.as_bytes());
            assert_eq!(answer.status, 400, "{stack} {method} {target}: {answer:?}");
        }
        let star = answered_then_get(&serve, "OPTIONS", b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(star.status, 204, "{stack}: {star:?}");
        stop_clean(serve);
    }
}

/// RFC 9112 §3.2.3: CONNECT takes the authority-form alone (`host:port`), and RFC 9110 §9.3.6
/// requires its port (there is no default). A CONNECT with another target (`/`, `*`, an
/// absolute-form one) or no port is a malformed request: `400` + close, as a form another
/// method does not take is (above), checked before the method is found unimplemented (`501`,
/// RFC 9110 §9.1, for a well-formed CONNECT: this server tunnels nothing). Before, `CONNECT /`
/// and `CONNECT http://x/` were `501` on hyper, `CONNECT *` and `CONNECT x` `501` on mio.
#[test]
fn connect_takes_the_authority_form_with_a_port_alone_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for target in ["/", "/x?y", "*", "http://x/", "x", "x:", "x:99999", "[::1]"] {
            let request = format!("CONNECT {target} HTTP/1.1\r\nhost: x\r\n\r\n");
            let answer = closing_answer(&serve, "CONNECT", request.as_bytes());
            assert_eq!(answer.status, 400, "{stack} CONNECT {target}: {answer:?}");
        }
        for target in ["x:443", "[::1]:443"] {
            let request = format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n");
            let answer = answered_then_get(&serve, "CONNECT", request.as_bytes());
            assert_eq!(answer.status, 501, "{stack} CONNECT {target}: {answer:?}");
        }
        stop_clean(serve);
    }
}

/// RFC 9110 §6.2: "A server SHOULD send a response version equal to the highest version to
/// which the server is conformant that has a major version less than or equal to the one
/// received in the request": `HTTP/1.1` to an HTTP/1.0 request, its persistence said in
/// `connection` (`keep-alive` when asked, else `close` and FIN). Before, the mio stack
/// answered `HTTP/1.0`. (hyper answers an HTTP/1.0 request `HTTP/1.0` itself: docs/hyper.md.)
#[test]
fn answers_to_http_1_0_requests_say_http_1_1() {
    let serve = Serve::start("", "--stack mio");
    let mut client = StrictClient::connect(serve.addr);
    client.send(
        b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n\
          HEAD /nope HTTP/1.0\r\nconnection: keep-alive\r\n\r\n\
          POST /echo HTTP/1.0\r\ncontent-length: 2\r\n\r\nhi",
    );
    for (method, status, connection) in [
        ("GET", 200, "keep-alive"),
        ("HEAD", 404, "keep-alive"),
        ("POST", 200, "close"),
    ] {
        let answer = client.answer(method);
        assert_eq!(
            (
                answer.version.as_str(),
                answer.status,
                answer.field("connection")
            ),
            ("HTTP/1.1", status, Some(connection)),
            "{answer:?}"
        );
    }
    client.expect_nothing_more(true, Duration::ZERO);
    stop_clean(serve);
}

/// A chunked body whose trailer section begins with a bare LF (`0\r\n\n`, RFC 9112 §7.1 allows
/// CRLF only) is a framing error: `400` + close. Before, the hyper stack read the section up
/// to the next CRLF CRLF and took the LF for its end (hyper's decoder, then httparse), so the
/// request pipelined behind it was swallowed as trailers: the `POST` answered `200`, the
/// `GET` never, its client waiting until the idle timeout (a proxy that ends the body at the
/// bare LF would forward that `GET` to a server that never sees it: a desync). The mio stack
/// answered `400` + close already.
#[test]
fn a_trailer_section_beginning_with_a_bare_lf_swallows_no_request() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for route in ["/echo", "/nope"] {
            let request = format!(
                "POST {route} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                 3\r\nabc\r\n0\r\n\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"
            );
            let answer = closing_answer(&serve, "POST", request.as_bytes());
            // mio refuses the framing before routing; hyper's routes read the body first.
            let expected: &[u16] = if route == "/echo" {
                &[400]
            } else {
                &[400, 404]
            };
            assert!(
                expected.contains(&answer.status),
                "{stack} {route}: {answer:?}"
            );
        }
        stop_clean(serve);
    }
}
