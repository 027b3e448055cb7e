//! qa-client10, round 10: both stacks as a hostile client sees them: statuses a handler may
//! not send, `Expect: 100-continue` on requests no handler will take. Each test fails on the
//! main it was written against and passes after its fix; every answer is read by the strict
//! client (tests/util/strict.rs: status line, field syntax, one `content-length`, one
//! IMF-fixdate `date`, exact body, nothing after `connection: close` but a clean FIN).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, UPGRADE};
use reqguard::http::{Guarded, Reply, Request, Response, Router, ServerBuilder};
use reqguard::tokio_hyper::HyperServer;
use reqguard::Config;
use util::hyper_thread::HyperThread;
use util::strict::StrictClient;

/// A mio server whose `GET /status?code=N` answers status N (body `x`).
fn mio_status_server() -> reqguard::http::Running {
    fn status(request: &Request<'_>, response: &mut Response<'_>) -> Reply {
        let code = request.query_param("code").and_then(|c| c.parse().ok());
        response.set_status(code.unwrap_or(400));
        response.write(b"x");
        Reply::Now
    }
    ServerBuilder::new()
        .spawn(
            || Guarded::embedded("server", Config::default()),
            |router: &mut Router<'_>| {
                router.route("GET", "/status", status);
            },
        )
        .expect("spawn the server")
}

/// A hyper server whose handler answers every request with the status in its `code` query
/// (`200` without one), `upgrade: websocket` and body `x`, until stopped.
fn hyper_status_server() -> HyperThread {
    HyperThread::spawn(|core| {
        let handler = |_this,
                       request: hyper::Request<hyper::body::Incoming>,
                       bundle: reqguard::tokio_hyper::Bundle| async move {
            let code = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("code="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(200);
            let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"x")));
            *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
            response
                .headers_mut()
                .insert(UPGRADE, HeaderValue::from_static("websocket"));
            Ok::<_, reqguard::tokio_hyper::HandlerError>(bundle.respond(response))
        };
        HyperServer::new(core, handler)
    })
}

/// RFC 9110 §15.2: a `1xx` is interim, never a request's answer, and a `101` switches to the
/// protocol of the request's `Upgrade` (§7.8: a server MUST NOT switch to one the client did not
/// ask for), which neither stack can do for a handler (no socket is handed over; the hyper
/// adapter does not enable hyper's upgrades). So a handler's `1xx` is a plain `500` on both
/// stacks (without the handler's fields: no `upgrade`), and the connection goes on; on hyper a
/// `2xx` to `CONNECT` (a tunnel, §9.3.6) is a `500` too. Before, the hyper stack wrote a `101`
/// as the handler made it (`upgrade: websocket`, no body) and closed the connection (hyper
/// takes a `101` for an upgrade), and answered `100`, `103`, `199` with a bodiless `500`
/// before closing; the mio stack answered `500` already.
#[test]
fn a_handlers_1xx_is_a_500_and_the_connection_goes_on_on_both_stacks() {
    let mio = mio_status_server();
    let hyper = hyper_status_server();
    let hyper_addr = hyper.addr;
    for (stack, addr) in [("mio", mio.addr()), ("hyper", hyper_addr)] {
        let mut client = StrictClient::connect(addr);
        for code in [101, 100, 103, 199] {
            client.send(
                format!(
                    "GET /status?code={code} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
                )
                .as_bytes(),
            );
            let answer = client.answer("GET");
            assert_eq!(answer.status, 500, "{stack} {code}: {answer:?}");
            assert!(
                answer.field("upgrade").is_none() && !answer.closes(),
                "{stack} {code}: {answer:?}"
            );
            client.send(b"GET /status?code=200 HTTP/1.1\r\nhost: x\r\n\r\n");
            let next = client.answer("GET");
            assert_eq!((next.status, next.text()), (200, "x"), "{stack} {code}");
        }
        client.expect_nothing_more(false, Duration::from_millis(50));
    }
    // CONNECT reaches a hyper handler (the mio router answers it `501` itself).
    let mut client = StrictClient::connect(hyper_addr);
    client.send(b"CONNECT x:80 HTTP/1.1\r\nhost: x:80\r\n\r\n");
    let answer = client.answer("CONNECT");
    assert_eq!(answer.status, 500, "{answer:?}");
    client.send(b"GET /status?code=204 HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(client.answer("GET").status, 204);
    client.expect_nothing_more(false, Duration::from_millis(50));
    let report = hyper.stop();
    assert_eq!(report.leaked, 0, "{report}");
    assert_eq!(
        (report.outcomes.completed, report.outcomes.total()),
        (10, 10),
        "{report}"
    );
    let report = mio.stop().unwrap();
    assert_eq!((report.leaked, report.stats.served), (0, 8), "{report:?}");
}

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// RFC 9110 §10.1.1: a server receiving `Expect: 100-continue` with content to follow MUST
/// "either immediately send a final status code, if that status can be determined by examining
/// just the method, target URI, and header fields, or immediately send a 100 (Continue)". A
/// request no route takes (`404`, `405`, `501`; `413` for a declared length over the limit)
/// is answered at once, with `connection: close` (the client may send its body or not: the
/// server cannot tell which, so it does not read on), and a body the client sends anyway is
/// read and dropped during the close's linger: a clean FIN, not a reset. A routed request
/// still gets its `100` and keeps its connection. Before, both stacks sent `100 Continue` to
/// the `404`, `405` and `501` too (inviting an upload that nothing would read), and answered
/// only after the body arrived.
#[test]
fn expect_100_continue_on_a_request_no_route_takes_gets_its_final_answer_at_once() {
    for stack in STACKS {
        let serve = util::serve::Serve::start("", stack);
        for (method, target, length, status) in [
            ("POST", "/nope", 5, 404),
            ("PUT", "/echo", 5, 405),
            ("FOO", "/echo", 5, 501),
            ("POST", "/echo", 4 * 1024 * 1024, 413),
        ] {
            let mut client = StrictClient::connect(serve.addr);
            client.send(
                format!(
                    "{method} {target} HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\nexpect: 100-continue\r\n\r\n"
                )
                .as_bytes(),
            );
            let answer = client.answer(method);
            assert_eq!(
                answer.status, status,
                "{stack} {method} {target}: {answer:?}"
            );
            assert!(answer.closes(), "{stack} {method} {target}: {answer:?}");
            // A client that sends its body all the same (it did not wait for the answer).
            client.send(b"hello");
            client.expect_nothing_more(true, Duration::ZERO);
        }
        let mut client = StrictClient::connect(serve.addr);
        client.send(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n",
        );
        assert_eq!(client.answer("POST").status, 100, "{stack}");
        client.send(b"hello");
        let answer = client.answer("POST");
        assert_eq!((answer.status, answer.text()), (200, "hello"), "{stack}");
        client.expect_nothing_more(false, Duration::from_millis(50));
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{json}");
    }
}

/// The same rule during the drain: a late request on a kept-alive connection is refused `503`
/// from its head alone (admission is closed), so a client waiting for `100 Continue` gets the
/// `503` at once, with close, and its body (sent anyway) is dropped in the linger. Before, the
/// mio stack sent `100 Continue`, waited for the body, then refused it; the hyper stack
/// refused it at once already (the adapter's refusal reads no body, so hyper sends no `100`).
#[test]
fn expect_100_continue_during_the_drain_gets_the_503_at_once() {
    for stack in STACKS {
        let serve = util::serve::Serve::start(
            "",
            &format!("{stack} --drain-timeout-ms 5000 --idle-linger-ms 20000"),
        );
        // The holder's request holds the drain open while `late` sends into it: read (so
        // admitted) before the stop, and long enough (3 s from its read) for what follows on a
        // loaded machine; the idle linger keeps `late` open as long as that takes.
        let mut holder = StrictClient::connect(serve.addr);
        holder.send(b"GET /delay?ms=3000 HTTP/1.1\r\nhost: x\r\n\r\n");
        util::wait_read_by_server(holder.reader_mut().get_ref());
        let mut late = StrictClient::connect(serve.addr);
        late.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(late.answer("GET").status, 200, "{stack}");
        util::serve::send_signal(serve.child.id(), "TERM");
        // The drain has begun once readiness says 503 (a probe counts in no total).
        util::wait_until("the drain to begin (readiness 503)", || {
            matches!(util::try_get(serve.addr, "/healthz/ready"), Ok((503, _)))
        });
        late.send(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n",
        );
        let answer = late.answer("POST");
        assert_eq!(answer.status, 503, "{stack}: {answer:?}");
        assert!(answer.closes(), "{stack}: {answer:?}");
        late.send(b"hello");
        late.expect_nothing_more(true, Duration::ZERO);
        let held = holder.answer("GET");
        assert_eq!(held.status, 200, "{stack}");
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{json}");
        assert_eq!(util::serve::field(&json, "refused"), 1.0, "{stack}: {json}");
    }
}

/// A loop group's close step answers every connection still open and silent `503` +
/// `connection: close`. A connection accepted in the close step's own turn (from the accept
/// queue) had its request in its socket, unread: it got that `503`, which no count held
/// (`refused` is for requests the server read), so the exit JSON's counts fell short of what
/// clients saw (SIGTERM under load, 32 clients: 20-25 `503`s a run on mio, none on hyper,
/// whose close reads a request first). Now the close step reads what has arrived first: a
/// whole request is refused as a late one is (counted in `refused`), and only a connection
/// that has sent nothing whole gets the blanket `503`. Here the drain's hook (a collection,
/// as an engine's GC at the drain's end) takes 300 ms, in the turn that then enters the close
/// step, and a newcomer's request arrives meanwhile.
#[test]
fn a_request_waiting_in_the_accept_queue_at_the_close_step_is_counted_refused() {
    use reqguard::http::{demo_routes, Ladder, LoopGroup};
    let (in_hook_tx, in_hook) = std::sync::mpsc::channel();
    let running = LoopGroup::new()
        .loops(1)
        .ladder(Ladder::default())
        .spawn(
            move |_| {
                let in_hook = in_hook_tx.clone();
                Guarded::embedded("server", Config::default()).after_drain(move || {
                    in_hook.send(()).unwrap();
                    thread::sleep(Duration::from_millis(300));
                })
            },
            demo_routes,
        )
        .expect("spawn the group");
    let addr = running.addr();
    running.stopper().stop();
    in_hook
        .recv_timeout(util::WAIT_BOUND)
        .expect("the loop is in the drain's hook");
    let mut newcomer = StrictClient::connect(addr);
    newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let answer = newcomer.answer("GET");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.closes(), "{answer:?}");
    newcomer.expect_nothing_more(true, Duration::ZERO);
    let report = running.wait().expect("the group's report");
    let totals = &report.totals;
    assert_eq!((totals.stats.refused, totals.leaked), (1, 0), "{report:?}");
}

/// What the mio server refuses from the head and the hyper stack served (the adapter now
/// refuses it too, before admission, as docs/hyper.md's checks): an absolute-form target whose
/// scheme is neither `http` nor `https` (RFC 9110 §4.2: the target names no resource of this
/// server's; mio `400`, hyper routed `GET ftp://a/` by its path, `200`), and more than 64
/// header fields (mio's parser's limit, `431`; hyper's own is 100). Both close. The schemes'
/// case is not significant (RFC 3986 §3.1), and 64 fields are served.
#[test]
fn a_foreign_scheme_and_a_65th_field_are_refused_on_both_stacks() {
    let fields = |n: usize| -> String { (0..n).map(|i| format!("x-{i}: a\r\n")).collect() };
    for stack in STACKS {
        let serve = util::serve::Serve::start("", stack);
        for (request, status) in [
            ("GET ftp://a/ HTTP/1.1\r\nhost: a\r\n\r\n".to_string(), 400),
            ("GET wss://a/ HTTP/1.1\r\nhost: a\r\n\r\n".to_string(), 400),
            (
                format!("GET / HTTP/1.1\r\nhost: x\r\n{}\r\n", fields(64)),
                431,
            ),
        ] {
            let mut client = StrictClient::connect(serve.addr);
            client.send(request.as_bytes());
            client.send(b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n");
            let answer = client.answer("GET");
            assert_eq!(answer.status, status, "{stack} {request:.40?}: {answer:?}");
            assert!(answer.closes(), "{stack}: {answer:?}");
            client.expect_nothing_more(true, Duration::ZERO);
        }
        let mut client = StrictClient::connect(serve.addr);
        for request in [
            "GET HTTP://a/ HTTP/1.1\r\nhost: a\r\n\r\n".to_string(),
            "GET Https://a/ HTTP/1.1\r\nhost: a\r\n\r\n".to_string(),
            format!("GET / HTTP/1.1\r\nhost: x\r\n{}\r\n", fields(63)),
        ] {
            client.send(request.as_bytes());
            let answer = client.answer("GET");
            assert_eq!((answer.status, answer.text()), (200, "hello"), "{stack}");
        }
        client.expect_nothing_more(false, Duration::from_millis(50));
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{json}");
    }
}

/// At the connection limit, a connection idle since its answer for at least 100 ms is evicted
/// for a newcomer (docs/server.md, "Accept"). On the hyper stack the scan, reading no clock per
/// request, dated a request's end by the first scan that saw it: after a burst that filled
/// every slot with kept-alive connections, the first newcomer (300 ms after the last answer)
/// was refused `503`, every slot "just active" (mio served it). `serve --stack hyper` keeps
/// each connection's activity record (`Options::record_activity`, when its last request was
/// answered): the scan now takes that time, so the newcomer is served as on mio.
#[test]
fn after_a_burst_fills_every_slot_the_next_newcomer_is_served_on_both_stacks() {
    for stack in STACKS {
        let serve = util::serve::Serve::start("", &format!("{stack} --max-connections 4"));
        let mut burst: Vec<StrictClient> = (0..4)
            .map(|_| {
                let mut client = StrictClient::connect(serve.addr);
                client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
                assert_eq!(client.answer("GET").status, 200, "{stack}");
                client
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        let mut newcomer = StrictClient::connect(serve.addr);
        newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let answer = newcomer.answer("GET");
        assert_eq!(
            (answer.status, answer.text()),
            (200, "hello"),
            "{stack}: {answer:?}"
        );
        // One of the burst was closed for it (no answer: it was idle), the others kept.
        let mut closed = 0;
        for client in &mut burst {
            client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
            match util::strict::read_for(client.reader_mut(), "GET") {
                Ok(answer) => assert_eq!(answer.status, 200, "{stack}"),
                Err(_) => closed += 1,
            }
        }
        assert_eq!(closed, 1, "{stack}");
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{json}");
        assert_eq!(
            util::serve::field(&json, "connections_evicted"),
            1.0,
            "{stack}: {json}"
        );
    }
}

/// `serve`'s health probe paths are resources on both stacks (docs/server.md: RFC 9110 §9.3.2,
/// §9.3.7, §15.5.6): `HEAD` is answered as `GET` is (its fields, no body), `OPTIONS` is `204`
/// with `allow: GET, HEAD`, another method the server knows is `405` with that `allow`, an
/// unknown one `501`; a text answer says `content-type: text/plain`. Before, the hyper stack
/// answered only `GET` there: `HEAD`, `OPTIONS` and `POST` were `404` (a `GET` `200` with a
/// `HEAD` `404` on the same resource), and its probe answers had no `content-type`.
#[test]
fn health_probe_paths_answer_head_options_and_other_methods_alike_on_both_stacks() {
    for stack in STACKS {
        let serve = util::serve::Serve::start("", stack);
        let mut client = StrictClient::connect(serve.addr);
        for (method, path, status, allow, text) in [
            ("GET", "/healthz/live", 200, None, "live"),
            ("HEAD", "/healthz/live", 200, None, ""),
            ("HEAD", "/healthz/ready", 200, None, ""),
            ("OPTIONS", "/healthz/ready", 204, Some("GET, HEAD"), ""),
            ("POST", "/healthz/live", 405, Some("GET, HEAD"), ""),
            ("DELETE", "/healthz/ready", 405, Some("GET, HEAD"), ""),
            ("BREW", "/healthz/live", 501, None, ""),
        ] {
            client.send(
                format!("{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
                    .as_bytes(),
            );
            let answer = client.answer(method);
            assert_eq!(answer.status, status, "{stack} {method} {path}: {answer:?}");
            assert_eq!(answer.field("allow"), allow, "{stack} {method} {path}");
            if status == 200 {
                assert_eq!(answer.text(), text, "{stack} {method} {path}");
                let length = path.len() - "/healthz/".len(); // `live`, `ready`
                let length = length.to_string();
                assert_eq!(
                    answer.field("content-length"),
                    Some(&*length),
                    "{stack} {method}"
                );
                assert_eq!(
                    answer.field("content-type"),
                    Some("text/plain"),
                    "{stack} {method} {path}"
                );
            }
        }
        client.expect_nothing_more(false, Duration::from_millis(50));
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{json}");
    }
}

/// A client that resets its connection (RST) in the middle of a request body: it reads
/// nothing, so no answer may be counted for it. On mio the request was never admitted (its body
/// not whole): no count. On hyper it was admitted at its head, and the demo's routes answered
/// the body's error `400`: counted `rejected`, its outcome *completed* (the answer written to a
/// dead socket). Now a body that fails because the connection did ends the request *client
/// gone* (its signal fired, counted in `aborted`), with no answer counted.
#[test]
fn a_reset_mid_body_is_counted_as_a_client_gone_not_an_answer() {
    for stack in STACKS {
        let serve = util::serve::Serve::start("", stack);
        for target in ["/echo", "/nope"] {
            let stream = std::net::TcpStream::connect(serve.addr).unwrap();
            let mut writer = &stream;
            std::io::Write::write_all(
                &mut writer,
                format!("POST {target} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            std::io::Write::write_all(&mut writer, &[b'x'; 50]).unwrap();
            // The head and the 50 bytes read (the route waits for the rest) before the reset:
            // a reset met with the head unread can end the connection before its request is.
            util::wait_read_by_server(&stream);
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(stream); // RST
        }
        thread::sleep(Duration::from_millis(100));
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{json}");
        let field = |key| util::serve::field(&json, key);
        assert_eq!(
            (field("served"), field("rejected")),
            (0.0, 0.0),
            "{stack}: {json}"
        );
        let aborted = if stack.contains("hyper") { 2.0 } else { 0.0 };
        assert_eq!(field("aborted"), aborted, "{stack}: {json}");
    }
}
