//! QA load round 10: what the load runs (wrk, ab, h2load and Python clients beside plain hyper and
//! the raw floor; /work/notes/qa-load10.md, docs/benchmarks-history.md section 9e) found, each over
//! real sockets, small and bounded.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use util::serve::{field, send_signal, Serve};
use util::Client;

/// SIGTERM under keep-alive load with `serve`'s default ladder: every busy connection lost one
/// request (32 of 32 clients per run, both stacks, `--loops 1` and `2`; EOF, no answer, counted
/// nowhere). A connection idle at the drain's start (its answer written, the client's next
/// request on the way) was closed at once (`--idle-linger-ms 0`), so the request the client
/// sent next met a closed socket. `serve` now lets idle connections linger 1 s into the drain
/// (as `Limits::stop_linger` and the hyper adapter's `Options` do): a request sent then is
/// refused `503` + `connection: close`, and counted in `refused`.
#[test]
fn a_kept_alive_client_sending_just_after_sigterm_is_refused_not_dropped_on_both_stacks() {
    const CLIENTS: usize = 4;
    for stack in ["--stack mio", "--stack hyper"] {
        let mut serve = Serve::start("", stack);
        let mut clients: Vec<Client> = (0..CLIENTS)
            .map(|_| {
                let mut client = Client::connect(serve.addr);
                client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
                assert_eq!(client.answer().expect("before the stop").status, 200);
                client
            })
            .collect();
        send_signal(serve.child.id(), "TERM");
        wait_for_the_drain(&serve);
        // Each kept-alive client sends its next request now that the drain has begun, all
        // before any answer is read: they must come within the idle linger (1 s from the
        // drain's start), which a request and answer at a time spent on a loaded machine.
        for client in &mut clients {
            client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        }
        let answers: Vec<_> = clients
            .iter_mut()
            .map(|client| client.answer().map(|a| (a.status, a.closes())))
            .collect();
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Ok(answer) => assert_eq!(*answer, (503, true), "{stack}: client {i}"),
                Err(e) => panic!("{stack}: client {i}'s request got no answer ({e}): {json}"),
            }
        }
        // The probe's 503 and each client's: all refused, all counted.
        assert_eq!(
            field(&json, "refused"),
            (CLIENTS + 1) as f64,
            "{stack}: {json}"
        );
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// Waits until a new connection's `GET /` is refused `503`: the drain has begun (the port
/// stays open in it). Bounded by [`util::WAIT_BOUND`] (5 s before: a loaded machine can take
/// longer to run `kill` and handle the signal).
fn wait_for_the_drain(serve: &Serve) {
    util::wait_until("the drain to begin (a new request refused 503)", || {
        let mut probe = Client::connect(serve.addr);
        probe.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        matches!(probe.answer(), Ok(answer) if answer.status == 503)
    });
}
