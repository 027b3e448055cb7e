//! The demo on hyper (`--stack hyper`): the same story and the same `serve` contract as the mio
//! stack, on `reqguard::tokio_hyper` (tokio current-thread runtime + `LocalSet`).
//!
//! ```text
//! cargo run --release --features hyper --bin reqguard-demo -- --stack hyper
//! cargo run --release --features hyper --bin reqguard-demo -- serve --stack hyper --addr 127.0.0.1:8080
//! ```
//!
//! `serve --stack hyper` takes the mio `serve` options: `--addr`, `--collect-on-stop`,
//! `--drain-timeout-ms`, `--idle-timeout-ms` and `--request-timeout-ms` (hyper has one timer for
//! both: the shorter wins), `--max-connections`, `--max-body` (the `/echo` limit), `--max-output`
//! (hyper's buffer limit, at least 8 KiB), `--unready-ms`, `--idle-linger-ms`,
//! `--force-after-ms`, `--half-close`, `--loops N` and `--listen reuseport|shared` (a
//! [`HyperGroup`]: one thread, runtime, `LocalSet` and server core per loop, on the mio group's
//! listeners). As on mio: the port stays open in the drain until every loop has drained,
//! `/healthz/ready` turns 503 at the first signal, `/healthz/live` answers 200, a second signal
//! skips the drain to force, and the exit JSON has the totals and `"loops":[...]`.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use reqguard::engines::Embedded;
use reqguard::engines::Heap;
use reqguard::http::ListenMode;
use reqguard::tokio_hyper::{
    demo_routes, demo_routes_with, Handler, HyperGroup, HyperServer, Options, ECHO_BODY_TIMEOUT,
    MAX_ECHO_BODY,
};
use reqguard::{Config, ServerCore};

use crate::client::{late_requests, load, panic_then_connections_at_stop, LATE_CONNECTIONS};

pub(crate) fn main(args: &[String]) -> io::Result<bool> {
    match args.first().map(String::as_str) {
        None => story(),
        Some("serve") if super::super::wants_help(args) => {
            println!("{}", super::super::USAGE);
            Ok(true)
        }
        Some("serve") => serve(&args[1..]),
        Some(other) => Err(io::Error::other(format!(
            "unknown command {other:?} (--stack hyper runs the story or `serve`)"
        ))),
    }
}

/// `serve --stack hyper`: the flags of the mio `serve`.
struct ServeArgs {
    addr: SocketAddr,
    collect_on_stop: bool,
    options: Options,
    max_body: usize,
    idle_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    loops: usize,
    mode: ListenMode,
}

fn parse(args: &[String]) -> io::Result<ServeArgs> {
    let mut parsed = ServeArgs {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        collect_on_stop: false,
        // The mio `serve` ladder's defaults: the port stays open in the drain, idle connections
        // linger 1 s into it, health routes answer without admission, and the steps name the
        // routes in their handlers and the connections' ages.
        options: Options::default()
            .with_keep_listening(true)
            .with_health_checks(true)
            .with_record_activity(true)
            .with_stop_linger(super::IDLE_LINGER),
        max_body: MAX_ECHO_BODY,
        idle_timeout: None,
        request_timeout: None,
        loops: 1,
        mode: ListenMode::ReusePort,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| io::Error::other(format!("{arg} needs a value")))
        };
        let number = |v: &String| {
            v.parse::<u64>()
                .map_err(|e| io::Error::other(format!("{arg}: {e}")))
        };
        let size = |n: u64| usize::try_from(n).map_err(|e| io::Error::other(format!("{arg}: {e}")));
        let o = parsed.options;
        let ms = |v: &String| number(v).map(Duration::from_millis);
        match arg.as_str() {
            "--addr" => {
                parsed.addr = value()?
                    .parse()
                    .map_err(|e| io::Error::other(format!("--addr: {e}")))?
            }
            "--collect-on-stop" => parsed.collect_on_stop = true,
            "--drain-timeout-ms" => {
                parsed.options = o.with_drain_timeout(Duration::from_millis(number(value()?)?))
            }
            "--idle-timeout-ms" => {
                parsed.idle_timeout = Some(Duration::from_millis(number(value()?)?))
            }
            "--request-timeout-ms" => {
                parsed.request_timeout = Some(Duration::from_millis(number(value()?)?))
            }
            // Knobs out of range are refused by `Options`' check at the spawn (exit 2), as the
            // mio stack's `Limits::validate` refuses them.
            "--max-connections" => {
                parsed.options = o.with_max_connections(size(number(value()?)?)?)
            }
            "--max-body" => parsed.max_body = size(number(value()?)?)?,
            "--max-output" => parsed.options = o.with_max_buffer(size(number(value()?)?)?),
            "--min-send-rate" => parsed.options = o.with_min_send_rate(number(value()?)?),
            "--unready-ms" => parsed.options = o.with_unready(ms(value()?)?),
            "--idle-linger-ms" => parsed.options = o.with_stop_linger(ms(value()?)?),
            "--force-after-ms" => parsed.options = o.with_force_after(ms(value()?)?),
            "--half-close" => parsed.options = o.with_half_close(true),
            // Each loop: a thread with its own runtime, LocalSet and server core.
            "--loops" => parsed.loops = super::super::parse_loops(number(value()?)?)?,
            "--listen" => parsed.mode = super::super::parse_listen(value()?)?,
            other => return Err(io::Error::other(format!("unknown option {other:?}"))),
        }
    }
    // hyper has one timer for an idle connection and a slow request head: the shorter wins.
    let timeouts = [parsed.idle_timeout, parsed.request_timeout];
    if let Some(timeout) = timeouts.into_iter().flatten().min() {
        parsed.options = parsed.options.with_idle_timeout(timeout);
    }
    Ok(parsed)
}

/// Serves until SIGINT or SIGTERM (a second one forces), then prints one JSON line: the
/// totals and `"loops":[...]`, as the mio stack prints them. True if nothing leaked on any loop.
fn serve(args: &[String]) -> io::Result<bool> {
    let args = parse(args)?;
    super::super::raise_open_file_limit();
    super::super::quiet_intended_panics(true);
    let (collect_on_stop, options) = (args.collect_on_stop, args.options);
    let (max_body, request_timeout) = (
        args.max_body,
        args.request_timeout.unwrap_or(ECHO_BODY_TIMEOUT),
    );
    // A health probe's body is read within the routes' limits, as the mio loop reads it.
    let options = options
        .with_probe_max_body(max_body)
        .with_probe_body_timeout(request_timeout);
    let group = HyperGroup::new()
        .addr(args.addr)
        .loops(args.loops)
        .listen_mode(args.mode)
        .spawn(move |_loop| {
            let routes = demo_routes_with(max_body, request_timeout);
            demo_server(collect_on_stop, routes).options(options)
        })?;
    let (stop, force) = (group.stopper(), group.stopper());
    let report = super::super::wait_watched(
        group.addr(),
        move || stop.stop(),
        move || force.force(),
        || group.wait(),
    )?;
    super::super::say(report.to_json());
    for (index, report) in report.loops.iter().enumerate() {
        if let Some(found) = &report.deadline {
            // What was still out when the deadline (or the second signal) ended the drain.
            eprintln!("loop {index}: drain ended early: {found}");
        }
        if report.leaked > 0 {
            eprintln!("loop {index}: {}", report.leaks);
        }
    }
    Ok(report.is_clean())
}

/// The demo routes on a fresh heap; the wrapper is collected at stop (`collect_on_stop`, the
/// PR's scenario) or when the drain completes.
fn demo_server<H: Handler<Embedded<&'static str>>>(
    collect_on_stop: bool,
    routes: H,
) -> HyperServer<Embedded<&'static str>, (), H> {
    let heap = Heap::new();
    let policy = super::super::downgrade_policy(collect_on_stop);
    let core = ServerCore::embedded(
        heap.alloc("reqguard-demo"),
        Config::default().with_downgrade(policy),
    );
    let (on_stop, on_drain) = (heap.clone(), heap);
    HyperServer::new(core, routes)
        .after_stop(move || {
            if collect_on_stop {
                on_stop.collect();
            }
        })
        .after_drain(move || {
            on_drain.collect();
        })
}

/// The story on hyper: load, a panic, stop with kept-alive connections open and the wrapper
/// collected, late requests, drain.
fn story() -> io::Result<bool> {
    super::super::quiet_intended_panics(false);
    println!(
        "reqguard-demo: Bun PR 28246 on hyper (tokio current-thread + LocalSet), on loopback\n"
    );
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = thread::spawn(move || {
        let options = Options::default()
            .with_stop_linger(Duration::from_secs(5))
            .with_drain_timeout(Duration::from_secs(5));
        reqguard::tokio_hyper::run(
            demo_server(true, demo_routes()).options(options),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            |addr| addr_tx.send(addr).expect("the story waits for the address"),
            async {
                let _ = stop_rx.await;
            },
        )
    });
    let addr = addr_rx
        .recv()
        .map_err(|_| io::Error::other("the server did not start"))?;
    println!("1. server listening on {addr} (wrapper held strongly)");

    let rate = load(addr)?;
    let ((status, after), mut late, mut in_flight) = panic_then_connections_at_stop(addr)?;

    let stopping = Instant::now();
    let _ = stop_tx.send(());
    wait_for_listener_close(addr)?;
    println!("5. stop: listener closed, admission closed, wrapper downgraded and collected");

    let answers = late_requests(&mut late)?;
    let (delayed, delayed_close) = in_flight.answer()?;
    println!(
        "7. the in-flight request finished during the drain: {delayed}{}",
        if delayed_close { " close" } else { "" }
    );
    drop((late, in_flight));
    let report = server
        .join()
        .map_err(|_| io::Error::other("the server thread panicked"))??;
    println!(
        "8. drained (last ticket released and last connection closed); serve returned {:.0} ms after stop\n",
        stopping.elapsed().as_secs_f64() * 1e3
    );
    super::super::print_report_and_rate(&report, rate);
    let ok = report.leaked == 0
        && report.stats.refused_finalized == LATE_CONNECTIONS as u64
        && answers.iter().all(|a| a == "503 close")
        && (delayed, delayed_close) == (200, true)
        && (status, after) == (500, 200)
        && report.outcomes.total() == report.stats.served;
    Ok(super::super::verdict(
        ok,
        "every late request refused with 503, one outcome per request, nothing leaked",
    ))
}

fn wait_for_listener_close(addr: SocketAddr) -> io::Result<()> {
    let until = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        if Instant::now() > until {
            return Err(io::Error::other("the listener did not close"));
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}
