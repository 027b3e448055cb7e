//! qa-client22, round 22: what round 21 left (docs/server.md "Not done"), and what a hostile
//! client sees beyond it, through `reqguard-demo serve` (the process a user runs). Answers are
//! read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use reqguard::tokio_hyper::{Bundle, HandlerError, Options, Reply};
use util::hyper_thread::HyperThread;
use util::serve::{held_until_its_head_is_whole_then_refused, send_signal, Serve};
use util::strict::{expect_clean_eof, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// QA client22-2. A request head in progress on a fresh connection when the stop turns
/// keep-alive off (its first bytes sent before the stop, its end not yet) is kept as one after
/// an answer is, on both stacks: finished before the drain deadline, it is refused `503` +
/// close and counted `refused`, as the mio loops refuse it. Before, hyper took the connection
/// for a silent one (no request answered on it yet) and answered it the close step's `503`
/// about a second after the drain, while its client was still sending its head (2 s into the
/// stop with `serve`'s defaults; mio keeps it to the drain deadline, 5 s): the head finished
/// after that was never read, and the `503` counted as no refusal.
#[test]
fn a_head_begun_on_a_fresh_connection_before_the_stop_is_kept_as_after_an_answer_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!(
                "{stack} --idle-linger-ms 100 --drain-timeout-ms 20000 \
                 --request-timeout-ms 60000 --idle-timeout-ms 60000"
            ),
        );
        let mut idle = StrictClient::connect(serve.addr);
        idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(idle.answer("GET").status, 200, "{stack}");
        let mut fresh = StrictClient::connect(serve.addr);
        fresh.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
        // The server has read it (another process): an answer to a request sent after it on
        // another connection does not say so (on hyper each connection is its own task), and
        // a head unread at the stop leaves `fresh` silent to the server, answered the close
        // step's `503` before its head is whole. `other`'s request is one `served` counts.
        util::wait_read_by_server(fresh.reader_mut().get_ref());
        let mut other = StrictClient::connect(serve.addr);
        other.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        assert_eq!(other.answer("GET").status, 200, "{stack}");
        send_signal(serve.child.id(), "TERM");
        // The stop's keep-alive step has reached the connections once the idle one is closed.
        expect_clean_eof(idle.reader_mut()).unwrap_or_else(|e| panic!("{stack}, idle: {e}"));
        held_until_its_head_is_whole_then_refused(stack, serve, &mut fresh);
    }
}

/// An embedder's own handler that reads the request's body to its end itself (hyper's
/// `Incoming`, as a runtime's `request.text()` does) and answers its length.
async fn read_it_all(
    _this: reqguard::engines::Handle<&'static str>,
    request: Request<Incoming>,
    bundle: Bundle,
) -> Result<Reply<Full<Bytes>>, HandlerError> {
    let body = request.into_body().collect().await?.to_bytes();
    let answer = Bytes::from(format!("read {}", body.len()));
    Ok(bundle.respond(Response::new(Full::new(answer))))
}

/// QA client22-1. After a request with a body read to its end by an embedder's own handler
/// (not a demo route), a head past `max_head` is refused at once (`431`, `414`, `501` +
/// close, counted `rejected`), as after any other request and as the mio loops refuse it,
/// whether it waits for more or the client's FIN follows it at once, sent after the answer or
/// with the body in one write. Before, the adapter,
/// which does not see the `Incoming` the handler reads, took the head's bytes for the body
/// hyper might still read: the head waited for hyper's header timeout (here a minute: the
/// client's read timed out), and with the FIN after it the connection closed unanswered.
#[test]
fn a_head_past_max_head_after_a_body_an_embedders_handler_read_is_refused_at_once() {
    let server = HyperThread::spawn(|core| {
        reqguard::tokio_hyper::HyperServer::new(core, read_it_all)
            .options(Options::default().with_idle_timeout(Duration::from_secs(60)))
    });
    let upload = "b".repeat(30_000);
    let befores = [
        "POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc".to_owned(),
        format!(
            "POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{upload}",
            upload.len()
        ),
        "POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            .to_owned(),
    ];
    let mut rejected = 0;
    let mut served = 0;
    for before in &befores {
        for (head, method, status, text) in &util::heads_past_max_head() {
            for (fin, together) in [(false, false), (true, false), (false, true), (true, true)] {
                let shown = format!("{before:.40?}, {status}, FIN {fin}, one write {together}");
                let mut client = StrictClient::connect(server.addr);
                if together {
                    client.send(format!("{before}{head}").as_bytes());
                } else {
                    client.send(before.as_bytes());
                }
                let first = client.answer("POST");
                assert_eq!((first.status, first.closes()), (200, false), "{shown}");
                assert!(first.text().starts_with("read "), "{shown}: {first:?}");
                served += 1;
                if !together {
                    client.send(head.as_bytes());
                }
                if fin {
                    client.send_fin();
                }
                let refused = client.answer(method);
                assert_eq!(
                    (refused.status, refused.text(), refused.closes()),
                    (*status, *text, true),
                    "{shown}: {refused:?}"
                );
                client.expect_nothing_more(true, Duration::ZERO);
                rejected += 1;
            }
        }
    }
    let report = server.stop();
    assert_eq!(report.leaked, 0, "{report}");
    assert_eq!(
        (report.stats.served, report.stats.rejected),
        (served, rejected),
        "{report}"
    );
}
