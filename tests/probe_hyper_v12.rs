//! hyper12: the hyper adapter's open items of round 11, each a test that failed before its fix:
//! a handler's own `content-length` that its streaming body does not match, and pipelining
//! across a stop.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::collections::VecDeque;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, CONTENT_LENGTH};

use reqguard::tokio_hyper::{HandlerError, HyperReport, HyperServer};
use util::bodies::Hinted;
use util::hyper_thread::HyperThread;

/// Serves `GET /bad`, answered with `bad()` under the handler's own `content-length: declared`,
/// and `GET /ok` (a plain streamed `ok`), both sent at once on one connection; returns what the
/// client read until the server closed (or the read timed out) and the report.
fn serve_declared(
    declared: &'static str,
    bad: impl Fn() -> Hinted + Send + 'static,
) -> (String, HyperReport) {
    let server = HyperThread::spawn(move |core| {
        let handler =
            move |_this, request: hyper::Request<_>, bundle: reqguard::tokio_hyper::Bundle| {
                let bad_one = request.uri().path() == "/bad";
                let body = if bad_one {
                    bad()
                } else {
                    Hinted::of(&["ok"], None, true)
                };
                let mut reply = bundle.respond(hyper::Response::new(body));
                if bad_one {
                    reply
                        .headers_mut()
                        .insert(CONTENT_LENGTH, HeaderValue::from_static(declared));
                }
                async move { Ok::<_, HandlerError>(reply) }
            };
        HyperServer::new(core, handler)
    });
    let addr = server.addr;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    stream
        .write_all(b"GET /bad HTTP/1.1\r\nhost: x\r\n\r\nGET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let closed = stream.read_to_end(&mut answer).is_ok() || answer.is_empty();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let report = server.stop();
    (
        format!("{answer}{}", if closed { "<closed>" } else { "<open>" }),
        report,
    )
}

/// A streaming body (no exact `size_hint`: hyper frames the answer by a `content-length` the
/// handler sets itself) that yields fewer or more bytes than that field says: the answer on the
/// wire is not the one the handler made (shorter: cut, hyper closes the connection; longer:
/// hyper wrote the length and dropped the rest, keeping the connection, so the client took a
/// cut answer for a whole one and the next request was served). The request ended *completed*
/// (shorter, or longer ending with its last frame) or *client gone* (longer, hyper dropping the
/// body). Now it ends *dropped* (its signal `Dropped`, as a body failing mid-stream) and the
/// connection closes without a byte past the declared length, and never after the whole
/// declared length: the client reads an answer shorter than its `content-length` then the end,
/// an incomplete answer (RFC 9112 §8), never a cut one that looks whole, and the request behind
/// is not served. An honest stream under its own length completes, the connection kept.
#[test]
fn a_streaming_body_that_does_not_match_its_handlers_content_length_ends_dropped_and_closes() {
    let cases: [(&str, &'static str, &[&'static str], bool); 8] = [
        ("shorter, ends by polling", "10", &["hel", "lo"], false),
        ("shorter, says its end", "10", &["hel", "lo"], true),
        ("empty, ends by polling", "3", &[], false),
        ("longer in its last frame", "3", &["hello"], true),
        (
            "longer in its last frame, ends by polling",
            "3",
            &["hello"],
            false,
        ),
        ("longer in a middle frame", "4", &["hel", "lo", "!"], true),
        (
            "longer by a frame past the length",
            "3",
            &["hel", "lo"],
            false,
        ),
        (
            "longer by a frame past the length, says its end",
            "3",
            &["hel", "lo"],
            true,
        ),
    ];
    for (case, declared, frames, says_end) in cases {
        let (answer, report) = serve_declared(declared, move || Hinted::of(frames, None, says_end));
        let outcomes = report.outcomes;
        assert_eq!(
            (outcomes.dropped, outcomes.total(), report.leaked),
            (1, 1, 0),
            "{case}: {answer:?} {report}"
        );
        assert!(answer.ends_with("<closed>"), "{case}: {answer:?}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{case}: {answer:?}");
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .trim_end_matches("<closed>");
        let declared: usize = declared.parse().unwrap();
        assert!(body.len() < declared, "{case}: {answer:?}");
        assert!(
            answer.contains(&format!("content-length: {declared}\r\n")),
            "{case}: {answer:?}"
        );
    }
    for says_end in [true, false] {
        let (answer, report) =
            serve_declared("5", move || Hinted::of(&["hel", "lo"], None, says_end));
        let outcomes = report.outcomes;
        assert_eq!(
            (outcomes.completed, outcomes.total(), report.leaked),
            (2, 2, 0),
            "honest, says its end {says_end}: {answer:?} {report}"
        );
        assert!(answer.contains("content-length: 5\r\n"), "{answer:?}");
        assert!(
            answer.contains("\r\n\r\nhelloHTTP/1.1 200 OK"),
            "{answer:?}"
        );
        assert!(answer.ends_with("ok\r\n0\r\n\r\n<open>"), "{answer:?}");
    }
    // A field hyper cannot read as a length (a sign, whitespace): hyper wrote no answer over a
    // stream (its encoder needs the length), and wrote `+5` as set beside an exact one. Removed
    // as one that is not a length: the stream goes chunked.
    for declared in ["+5", " 5"] {
        let (answer, report) =
            serve_declared(declared, move || Hinted::of(&["hel", "lo"], None, true));
        assert_eq!(
            (
                report.outcomes.completed,
                report.outcomes.total(),
                report.leaked
            ),
            (2, 2, 0),
            "{declared:?}: {answer:?} {report}"
        );
        assert!(
            answer.contains("\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\nHTTP/1.1 200 OK")
                && !answer.contains("content-length"),
            "{declared:?}: {answer:?}"
        );
    }
}

/// A response body paced by a timer: its first frame at once, the rest after `pause`; exact
/// length.
struct Paced {
    frames: VecDeque<Bytes>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    len: u64,
}

impl Paced {
    fn new(frames: &[&'static str], pause: Duration) -> Self {
        Paced {
            frames: frames
                .iter()
                .map(|f| Bytes::from_static(f.as_bytes()))
                .collect(),
            pause: Some(Box::pin(tokio::time::sleep(pause))),
            len: frames.iter().map(|f| f.len() as u64).sum(),
        }
    }
}

impl Body for Paced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let first = self.len == self.frames.iter().map(|f| f.len() as u64).sum::<u64>();
        if !first {
            if let Some(pause) = &mut self.pause {
                std::task::ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
        }
        Poll::Ready(self.frames.pop_front().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// Serves `GET /slow` (its answer's head and first frame at once, the rest `pause` later, after
/// its handler waited `think`) and `GET /ok`, with no linger at the stop (its graceful shutdown
/// at once); the client sends `requests` in one write, the stop comes `stop_after` later, and
/// the client reads every answer strictly until the end. Returns the answers and the report.
fn across_a_stop(
    requests: &'static [u8],
    think: Duration,
    pause: Duration,
    stop_after: Duration,
) -> (Vec<util::strict::Strict>, HyperReport) {
    let mut server = HyperThread::spawn(move |core| {
        let handler =
            move |_this, request: hyper::Request<_>, bundle: reqguard::tokio_hyper::Bundle| {
                let slow = request.uri().path() == "/slow";
                async move {
                    let body = if slow {
                        tokio::time::sleep(think).await;
                        Paced::new(&["a", "b"], pause)
                    } else {
                        Paced::new(&["ok"], Duration::ZERO)
                    };
                    Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
                }
            };
        let options = reqguard::tokio_hyper::Options::default().with_stop_linger(Duration::ZERO);
        HyperServer::new(core, handler).options(options)
    });
    let addr = server.addr;
    let mut client = util::strict::StrictClient::connect(addr);
    client.send(requests);
    thread::sleep(stop_after);
    server.begin_stop();
    let mut answers = Vec::new();
    loop {
        let answer = util::strict::read_for(client.reader_mut(), "GET");
        match answer {
            Ok(answer) => {
                let closes = answer.closes();
                answers.push(answer);
                if closes {
                    break;
                }
            }
            Err(_) => break, // the end (or a broken answer: the caller sees what it got)
        }
    }
    client.expect_nothing_more(true, Duration::ZERO);
    (answers, server.stop())
}

/// RFC 9112 §9.6 and the mio server (docs/server.md, "answers computed before stop are all
/// sent, the last with close"): a stop that finds an answer already on its way (its head
/// written without `connection: close`) with a request pipelined behind it. hyper's graceful
/// shutdown turned keep-alive off at once, so hyper closed the connection after that answer
/// without reading the request behind: the client met the end of input with a request sent,
/// unanswered and counted nowhere, after an answer that had not said `close` (qa-client11: 16
/// pipelined uploads, SIGTERM, 10 answered, 6 not). Now keep-alive goes off only once the
/// answer on its way has gone (its body ended and the socket took it): the request behind is
/// read and refused `503` + close, as on mio, and counted `refused`. An answer made after the
/// stop says `close` itself, and the request behind it is not started (not counted, as the
/// `close` tells the client).
#[test]
fn pipelining_across_a_stop_answers_every_request_started_and_refuses_the_next() {
    let pipelined: &[u8] =
        b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET /ok HTTP/1.1\r\nhost: x\r\n\r\n";
    // The answer's head and first frame are out when the stop comes.
    let (answers, report) = across_a_stop(
        pipelined,
        Duration::ZERO,
        Duration::from_millis(400),
        Duration::from_millis(150),
    );
    let seen: Vec<_> = answers.iter().map(|a| (a.status, a.closes())).collect();
    assert_eq!(seen, [(200, false), (503, true)], "{answers:?} {report}");
    assert_eq!(answers[0].text(), "ab");
    let stats = report.stats;
    assert_eq!(
        (
            stats.served,
            stats.refused,
            report.outcomes.completed,
            report.outcomes.total(),
            report.leaked
        ),
        (1, 1, 1, 1, 0),
        "{report}"
    );
    // The answer is made after the stop: it says close, and the request behind is not started.
    let (answers, report) = across_a_stop(
        pipelined,
        Duration::from_millis(400),
        Duration::ZERO,
        Duration::from_millis(150),
    );
    let seen: Vec<_> = answers.iter().map(|a| (a.status, a.closes())).collect();
    assert_eq!(seen, [(200, true)], "{answers:?} {report}");
    let stats = report.stats;
    assert_eq!(
        (
            stats.served,
            stats.refused,
            report.outcomes.completed,
            report.leaked
        ),
        (1, 0, 1, 0),
        "{report}"
    );
}

/// RFC 9110 §15.5, §15.6: a server SHOULD send an explanation with a `4xx` or `5xx` (except to
/// `HEAD`), and §8.3 its `content-type`. The demo routes on hyper answered `400`, `404`, `405`,
/// `413` and `501` with an empty body, the adapter's `500` had no `content-type`, `413` said
/// hyper's `Payload Too Large` (RFC 9110: `Content Too Large`), and the adapter's own texts
/// (`service unavailable`, `not ready`) were not the mio server's. The two stacks now give the
/// same answer, field for field but `date`, to each request below.
#[test]
fn error_answers_are_the_same_on_both_stacks() {
    use util::serve::Serve;
    use util::strict::{Strict, StrictClient};
    let requests: [(&str, &[u8]); 13] = [
        ("GET", b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("HEAD", b"HEAD /nope HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("DELETE", b"DELETE / HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("HEAD", b"HEAD /echo HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("GET", b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("FOO", b"FOO / HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("OPTIONS", b"OPTIONS /nope HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("GET", b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("HEAD", b"HEAD /panic HTTP/1.1\r\nhost: x\r\n\r\n"),
        (
            "POST",
            b"POST /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        ),
        (
            "POST",
            b"POST /nope HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
        ),
        (
            "POST",
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999\r\n\r\n",
        ),
        (
            "POST",
            b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        ),
    ];
    let answers = |stack: &str| -> Vec<Strict> {
        let serve = Serve::start("", stack);
        let answers = requests
            .iter()
            .map(|(method, request)| {
                let mut client = StrictClient::connect(serve.addr);
                client.send(request);
                let mut answer = client.answer(method);
                answer.fields.retain(|(name, _)| name != "date");
                answer.fields.sort();
                answer
            })
            .collect();
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        answers
    };
    let mio = answers("--stack mio");
    let hyper = answers("--stack hyper");
    for ((mio, hyper), (_, request)) in mio.iter().zip(&hyper).zip(&requests) {
        let request = String::from_utf8_lossy(request);
        assert_eq!(mio, hyper, "{request:?}");
        if mio.status >= 400 && !request.starts_with("HEAD") {
            assert_eq!(mio.field("content-type"), Some("text/plain"), "{request:?}");
            assert!(!mio.body.is_empty(), "{request:?}");
        }
    }
}
