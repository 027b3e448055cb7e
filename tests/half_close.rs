//! stop31, round 31: the half-close opt-in (`Limits::with_half_close`, hyper's
//! `Options::with_half_close`, `serve --half-close`) on both stacks, through `reqguard-demo
//! serve` over real sockets. A client that sends a request and shuts down its write side
//! (`shutdown(SHUT_WR)`, as `nc -N` and some HTTP/1.0 tools do) while its handler works gets its
//! answer with the knob on, then the connection closes; off (the default, hyper's too) its end
//! of input is taken for a client gone and the request ends *client gone*, unanswered.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::io::Read;
use std::time::Duration;

use util::serve::{field, outcome, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// A deferred request (`GET /delay`, 300 ms in its handler), then the client's FIN at once.
fn delayed_then_fin(serve: &Serve) -> StrictClient {
    let mut client = StrictClient::connect(serve.addr);
    client.send(b"GET /delay?ms=300 HTTP/1.1\r\nhost: x\r\n\r\n");
    client.send_fin();
    client
}

#[test]
fn with_half_close_a_request_in_its_handler_at_the_clients_fin_is_answered_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --half-close"));
        let mut client = delayed_then_fin(&serve);
        let answer = client.answer("GET");
        assert_eq!(
            (answer.status, answer.text()),
            (200, "delayed 300 ms"),
            "{stack}"
        );
        // The last answer says it closes, on both stacks (hyper's said nothing before round 32:
        // tests/hyper_v32.rs), and both close once it is written.
        assert!(answer.closes(), "{stack}");
        client.expect_nothing_more(true, Duration::from_secs(10));

        // Nothing in its handler: a half-close is closed as without the knob.
        let mut idle = StrictClient::connect(serve.addr);
        idle.send_fin();
        idle.expect_nothing_more(true, Duration::from_secs(10));

        let json = serve.term_clean(stack);
        assert_eq!(field(&json, "served"), 1.0, "{stack}: {json}");
        assert_eq!(
            (outcome(&json, "completed"), outcome(&json, "client_gone")),
            (1.0, 0.0),
            "{stack}: {json}"
        );
    }
}

#[test]
fn without_half_close_a_request_in_its_handler_at_the_clients_fin_ends_client_gone_on_both_stacks()
{
    for stack in STACKS {
        let serve = Serve::start("", stack);
        let mut client = delayed_then_fin(&serve);
        let mut rest = Vec::new();
        client
            .reader_mut()
            .read_to_end(&mut rest)
            .expect("a clean close");
        assert!(
            rest.is_empty(),
            "{stack}: answered: {:?}",
            String::from_utf8_lossy(&rest)
        );
        let json = serve.term_clean(stack);
        assert_eq!(field(&json, "served"), 0.0, "{stack}: {json}");
        assert_eq!(
            (outcome(&json, "completed"), outcome(&json, "client_gone")),
            (0.0, 1.0),
            "{stack}: {json}"
        );
    }
}

/// With the knob on, a request in its handler at the client's FIN stays bounded as any request:
/// a handler that outlasts the drain is ended by the stop (its connection closed unanswered,
/// the request *deadline aborted*), and the stop ends.
#[test]
fn with_half_close_a_request_outlasting_the_drain_is_ended_by_the_stop_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!("{stack} --half-close --drain-timeout-ms 300 --force-after-ms 100"),
        );
        let mut client = StrictClient::connect(serve.addr);
        client.send(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: x\r\n\r\n");
        client.send_fin();
        util::wait_read_by_server(client.reader_mut().get_ref());
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        let mut rest = Vec::new();
        let _ = client.reader_mut().read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "{stack}: answered: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(
            (
                outcome(&json, "deadline_aborted"),
                outcome(&json, "client_gone")
            ),
            (1.0, 0.0),
            "{stack}: {json}"
        );
    }
}
