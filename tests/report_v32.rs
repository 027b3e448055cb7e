//! The exit JSON of `reqguard-demo serve` on both stacks (round 32): its size does not grow
//! with the clients (the requests in their handlers are grouped by route), and its counts add up
//! (`served + undelivered + rejected_admitted + aborted` is the outcomes' total).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::time::Duration;

use util::serve::{field, Serve};
use util::{get, Client};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Requests held in their handlers across the stop (`GET /delay?ms=30000`).
const HELD: usize = 200;

/// The JSON of one step (`"step":"abort"`, ...) of the first loop that has it, up to the next.
fn step<'a>(json: &'a str, name: &str) -> &'a str {
    let at = json
        .find(&format!("{{\"step\":\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} step in {json}"));
    let rest = &json[at + 1..];
    &json[at..at + 1 + rest.find("{\"step\":").unwrap_or(rest.len())]
}

/// `util::wait_read_by_server` for many clients at once: one read of `/proc/net/tcp` per look
/// (200 looks each reading the table took longer than the requests' delay under load).
fn all_read_by_server(clients: &[Client]) {
    let ports: Vec<(u16, u16)> = clients
        .iter()
        .map(|c| {
            let s = c.stream();
            (
                s.local_addr().unwrap().port(),
                s.peer_addr().unwrap().port(),
            )
        })
        .collect();
    util::wait_until("the server to read every request", || {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let queues: std::collections::HashMap<(u16, u16), (u64, u64)> = table
            .lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port =
                    |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap(), 16).unwrap();
                let (tx, rx) = f[4].split_once(':').unwrap();
                let hex = |v: &str| u64::from_str_radix(v, 16).unwrap();
                ((port(f[1]), port(f[2])), (hex(tx), hex(rx)))
            })
            .collect();
        ports.iter().all(|&(client, server)| {
            queues
                .get(&(client, server))
                .is_some_and(|&(unsent, _)| unsent == 0)
                && queues
                    .get(&(server, client))
                    .is_some_and(|&(_, unread)| unread == 0)
        })
    });
}

/// 6,400 requests in their handlers printed about 1 MB per step (one entry each, in every
/// step until the force step ended them): a client-driven size. Now each step lists each route
/// once with its count and oldest age (at most `Outstanding::MAX_ROUTES` routes), so the line's
/// size does not depend on how many requests are out. With 200 held: on main the unready,
/// drain, abort and force steps listed 200 entries each (the line ~38 KB); now one each.
#[test]
fn the_exit_json_groups_requests_in_their_handlers_by_route_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!("{stack} --loops 1 --drain-timeout-ms 300 --force-after-ms 100"),
        );
        let held: Vec<Client> = (0..HELD)
            .map(|_| {
                let mut client = Client::connect(serve.addr);
                client.send(b"GET /delay?ms=60000 HTTP/1.1\r\nhost: x\r\n\r\n");
                client
            })
            .collect();
        // Another process: a request read whole is admitted in the turn that reads it.
        all_read_by_server(&held);
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        let abort = step(&json, "abort");
        let grouped =
            format!("\"in_handler\":[{{\"route\":\"GET /delay\",\"count\":{HELD},\"oldest_ms\":");
        assert!(abort.contains(&grouped), "{stack}: {abort}");
        assert!(
            abort.contains("\"in_handler_other\":{\"count\":0,"),
            "{stack}: {abort}"
        );
        assert_eq!(
            abort.matches("\"route\":").count(),
            1,
            "{stack}: one entry for the route: {abort}"
        );
        assert_eq!(field(&json, "deadline_aborted"), HELD as f64, "{stack}");
        // Bounded whatever the number of requests out: 5 steps of one loop, each with its
        // guards by site and one route, are well under 16 KB.
        assert!(
            json.len() < 16 * 1024,
            "{stack}: {} bytes: {json}",
            json.len()
        );
        drop(held);
    }
}

/// The outcome of every admitted request is counted once in the exit JSON's answers, on both
/// stacks: `served + undelivered + rejected_admitted + aborted == outcomes` (each outcome
/// summed), for a run with answers served, a panic, bad input refused before admission, a
/// body refused after it (hyper's routes refuse a declared length past the limit once the
/// request is admitted; mio before), a client gone and a request the deadline aborted. Before,
/// hyper's `413` after admission was in `rejected` (with bad input never admitted) and in the
/// outcomes' `completed`, so `served + undelivered + aborted` came one short of the outcomes.
#[test]
fn the_exit_json_counts_add_up_to_the_outcomes_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!("{stack} --loops 1 --drain-timeout-ms 300 --force-after-ms 100"),
        );
        for _ in 0..3 {
            assert_eq!(get(serve.addr, "/").status, 200, "{stack}");
        }
        assert_eq!(get(serve.addr, "/panic").status, 500, "{stack}");
        // Bad input never admitted: no `host`.
        let mut hostless = Client::connect(serve.addr);
        let answer = hostless.request("GET / HTTP/1.1\r\n\r\n");
        assert_eq!(answer.status, 400, "{stack}");
        // A declared body past `/echo`'s 1 MiB.
        let mut large = Client::connect(serve.addr);
        let answer =
            large.request("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n");
        assert_eq!(answer.status, 413, "{stack}");
        // A client gone with its request in the handler.
        let mut gone = Client::connect(serve.addr);
        gone.send(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: x\r\n\r\n");
        util::wait_read_by_server(gone.stream());
        drop(gone);
        // Whether the server sees it go before the drain deadline or not (*client gone* or
        // *deadline aborted*), it is counted once: the sums below say so either way.
        let mut held = Client::connect(serve.addr);
        held.send(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: x\r\n\r\n");
        util::wait_read_by_server(held.stream());
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        let counted =
            ["served", "undelivered", "rejected_admitted", "aborted"].map(|key| field(&json, key));
        // The totals' outcomes (the top level's `force_closed` counts connections).
        let totals = &json[json.find("\"outcomes\":{").expect("outcomes")..];
        let outcomes = [
            "completed",
            "client_gone",
            "deadline_aborted",
            "force_closed",
            "dropped",
        ]
        .map(|key| field(totals, key));
        assert_eq!(
            counted.iter().sum::<f64>(),
            outcomes.iter().sum::<f64>(),
            "{stack}: served + undelivered + rejected_admitted + aborted = outcomes: {json}"
        );
        // Each kind of request was there.
        assert_eq!(field(&json, "served"), 4.0, "{stack}: {json}");
        assert_eq!(field(&json, "panics"), 1.0, "{stack}: {json}");
        assert_eq!(field(totals, "dropped"), 1.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 2.0, "{stack}: {json}");
        let admitted_413 = if stack == "--stack hyper" { 1.0 } else { 0.0 };
        assert_eq!(
            field(&json, "rejected_admitted"),
            admitted_413,
            "{stack}: {json}"
        );
        assert_eq!(
            field(totals, "client_gone") + field(totals, "deadline_aborted"),
            2.0,
            "{stack}: {json}"
        );
        assert!(field(totals, "deadline_aborted") >= 1.0, "{stack}: {json}");
        assert_eq!(field(&json, "aborted"), 2.0, "{stack}: {json}");
        assert!(held.answer().is_err(), "{stack}: force-closed unanswered");
    }
}

/// On the hyper adapter the route in a step's `in_handler` is the client's path, so clients
/// choose how many routes there are and how long each is: a step lists at most
/// `Outstanding::MAX_ROUTES` of them (the most requests first), each cut to
/// `Outstanding::MAX_ROUTE_LEN` bytes, and sums the requests on the others in
/// `in_handler_other`. 18 paths of 300 bytes and 3 requests on one more: 16 routes, the one with
/// 3 first, 3 requests on the others. On main each request was one entry, its path whole.
#[test]
fn a_hyper_step_lists_at_most_max_routes_each_cut_to_max_route_len() {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use reqguard::engines::Handle;
    use reqguard::http::{Outstanding, Step};
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Options, Reply};
    use util::hyper_thread::HyperThread;

    /// Holds every request in its handler until the stop's force step ends it.
    async fn held(
        _this: Handle<&'static str>,
        _request: hyper::Request<Incoming>,
        _bundle: Bundle,
    ) -> Result<Reply<Full<Bytes>>, HandlerError> {
        std::future::pending().await
    }

    let server = HyperThread::spawn(|core| {
        let options = Options::default()
            .with_record_activity(true)
            .with_drain_timeout(Duration::from_millis(200))
            .with_force_after(Duration::from_millis(50));
        HyperServer::new(core, held).options(options)
    });
    let long = "a".repeat(300);
    let mut paths: Vec<String> = (0..18).map(|i| format!("/r{i:02}/{long}")).collect();
    paths.extend(["/common".to_string(), "/common".into(), "/common".into()]);
    let clients: Vec<Client> = paths
        .iter()
        .map(|path| {
            let mut client = Client::connect(server.addr);
            client.send(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes());
            client
        })
        .collect();
    for client in &clients {
        util::wait_read_by_server(client.stream());
    }
    let report = server.stop();
    let abort = report
        .steps
        .iter()
        .find(|s| s.step == Step::Abort)
        .unwrap_or_else(|| panic!("an abort step: {report}"));
    let o = &abort.outstanding;
    assert_eq!(o.in_flight, 21, "{report}");
    assert_eq!(o.in_handler.len(), Outstanding::MAX_ROUTES, "{report}");
    assert_eq!(
        (o.in_handler[0].route.as_str(), o.in_handler[0].count),
        ("GET /common", 3)
    );
    for group in &o.in_handler {
        assert!(group.route.len() <= Outstanding::MAX_ROUTE_LEN, "{group:?}");
    }
    assert_eq!(o.in_handler_other.count, 21 - 3 - 15, "{report}");
    assert_eq!(o.requests_in_handler(), 21);
    // The bound docs/server.md states for a step record ("about 4 KB"), routes at their longest.
    let json = abort.to_json();
    assert!(json.len() < 4096, "{} bytes: {json}", json.len());
    drop(clients);
}

/// The loop's response buffer (where every handler writes its body) kept the capacity of the
/// largest answer it ever made for the rest of the run: one 512 KiB answer, then small ones,
/// and half a megabyte stayed held per loop. Now, over 64 KiB, it is given back to 16 KiB once
/// no answer needed it for a second (`Stats::response_buffer`, `response_buffer_shrinks`). A
/// `HEAD` to the large route grows it as much (the handler writes the body; none goes out):
/// given back alike. The wait is an event: the connection's idle timeout (1.5 s after its last
/// answer) comes after the buffer's timer (1 s after the large answer), and the loop fires its
/// timers in order, so once the server has closed the connection the buffer has been looked at.
#[test]
fn the_response_buffer_is_given_back_after_one_large_answer() {
    use reqguard::http::{Guarded, Limits, Reply, Request, Response, Router, ServerBuilder};
    use reqguard::Config;
    use util::strict::StrictClient;

    const LARGE: usize = 512 * 1024;
    fn routes(router: &mut Router<'_>) {
        router.route(
            "GET",
            "/large",
            |_: &Request<'_>, res: &mut Response<'_>| {
                res.write(&[b'x'; LARGE]);
                Reply::Now
            },
        );
        router.route(
            "GET",
            "/small",
            |_: &Request<'_>, res: &mut Response<'_>| {
                res.write(b"small");
                Reply::Now
            },
        );
    }
    for method in ["GET", "HEAD"] {
        let limits = Limits::default().with_idle_timeout(Duration::from_millis(1500));
        let running = ServerBuilder::new()
            .limits(limits)
            .spawn(|| Guarded::embedded("server", Config::default()), routes)
            .expect("spawn");
        let mut client = StrictClient::connect(running.addr());
        client.send(format!("{method} /large HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes());
        let answer = client.answer(method);
        assert_eq!(answer.status, 200, "{method}");
        let expected = if method == "GET" { LARGE } else { 0 };
        assert_eq!(answer.body.len(), expected, "{method}");
        client.send(b"GET /small HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(client.answer("GET").status, 200, "{method}");
        // The idle timeout closes it, after the buffer's timer has fired.
        client.expect_nothing_more(true, Duration::ZERO);
        let report = running.stop().expect("the report");
        assert_eq!(
            report.stats.response_buffer_shrinks, 1,
            "{method}: {report}"
        );
        assert!(
            report.stats.response_buffer <= 16 * 1024,
            "{method}: {} bytes held",
            report.stats.response_buffer
        );
    }
}
