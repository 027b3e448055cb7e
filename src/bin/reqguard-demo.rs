//! reqguard-demo: the reference server, and the story of Bun PR 28246 told on loopback.
//!
//! Run the story (a few seconds; prints a report, exits 0 only if nothing leaked):
//!
//! ```text
//! cargo run --release --features server --bin reqguard-demo
//! ```
//!
//! Or serve until SIGINT/SIGTERM, then print one JSON line:
//!
//! ```text
//! cargo run --release --features server --bin reqguard-demo -- serve --addr 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/                       # 200 hello
//! curl -i 'http://127.0.0.1:8080/delay?ms=500'         # 200 after 500 ms (a deferred response)
//! curl -i --data-binary ping http://127.0.0.1:8080/echo # 200 ping
//! curl -i http://127.0.0.1:8080/panic                  # 500, and the server keeps serving
//! ```
//!
//! `--collect-on-stop` downgrades the wrapper at stop and collects it at once (the PR's
//! scenario); without it the wrapper is downgraded and collected when the drain completes.
//! `--loops N` runs N event loops on one port; SIGTERM runs the stop ladder (`--help`).
//!
//! The event loop itself is `reqguard::http::Server::run` (src/http/server.rs), which reads
//! like mio's `examples/tcp_server.rs`.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqguard::http::{
    demo_routes, Guarded, Ladder, Limits, ListenMode, LoopGroup, ServerBuilder, ServerReport,
};
use reqguard::{Config, DowngradePolicy};

/// `--stack hyper`: the same story and `serve` on hyper (src/bin/demo/hyper_stack.rs).
#[path = "demo/client.rs"]
mod client;
#[path = "demo/stack.rs"]
mod stack;

use client::{late_requests, CLIENTS, LATE_CONNECTIONS};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let result = match stack::take(&mut args) {
        Ok(stack::Stack::Mio) => mio_stack(&args),
        Ok(stack::Stack::Hyper) => stack::hyper(&args),
        Err(err) => Err(err),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("reqguard-demo: {err}");
            ExitCode::from(2)
        }
    }
}

/// The mio stack (the default): the story, or `serve`.
fn mio_stack(args: &[String]) -> io::Result<bool> {
    match args.first().map(String::as_str) {
        None => story(),
        Some("serve") if !wants_help(args) => serve(&args[1..]),
        Some("serve" | "-h" | "--help") => {
            println!("{}", USAGE);
            Ok(true)
        }
        Some(other) => Err(io::Error::other(format!(
            "unknown command {other:?}\n{USAGE}"
        ))),
    }
}

/// `-h` or `--help` anywhere: print [`USAGE`] (both stacks).
fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "-h" || a == "--help")
}

const USAGE: &str = "\
usage: reqguard-demo                 run the story and print a report
       reqguard-demo serve [OPTIONS]  serve until SIGTERM/SIGINT, then print one JSON line

serve options:
  --addr IP:PORT          where to listen (127.0.0.1:8080)
  --loops N               event loops, one thread each, sharing the port (1)
  --listen MODE           reuseport: one SO_REUSEPORT socket per loop (default);
                          shared: one socket every loop polls
  --collect-on-stop       collect the wrapper as the drain begins (the PR's scenario)
  --idle-timeout-ms N     keep-alive idle timeout (5000); also the window of --min-send-rate
  --min-send-rate BYTES   slowest a client may read its answers, bytes/s over each window;
                          slower is disconnected (1024)
  --max-connections N     open connections per loop; more get 503 (1024)
  --request-timeout-ms N  time to send a whole request, head and body; slower gets 408
  --max-body BYTES        largest request body; larger gets 413
  --max-output BYTES      unsent answers buffered per connection before reading pauses
                          (limits: docs/server.md, \"Limits\"; invalid ones are refused at start)
  --half-close            a client that shuts down its write side (nc -N) still gets the
                          answers to its requests in their handler (off: it is taken for gone)
  at start, the open-file soft limit is raised to the hard one (as Go does): a connection
  flood meets --max-connections, not the end of the process's descriptors

the stop ladder, run by the first SIGTERM or SIGINT (a second one skips to force):
  --unready-ms N          unready: GET /healthz/ready answers 503 (200 before), /healthz/live
                          200 until exit, every answer carries connection: close, requests are
                          still served and the port still accepts (0)
  --drain-timeout-ms N    drain: admission closes (late requests 503 + connection: close),
                          in-flight requests get N ms to finish (5000)
  --idle-linger-ms N      during the drain, idle keep-alive connections close after N ms (1000);
                          a request they send meanwhile is refused 503 + connection: close
  --force-after-ms N      abort: at the drain deadline the abort signals of requests still out
                          fire; force: N ms later their sockets close (1000)
  then close: once every loop has drained, the listeners close together and connections
  still open are answered 503 + connection: close. The exit JSON gives each loop's steps.

--stack mio|hyper (anywhere): the server stack, mio (default) or hyper (feature hyper;
  src/bin/demo/hyper_stack.rs lists the serve options it takes). hyper runs --loops N too,
  one tokio current-thread runtime each, and prints the same totals + \"loops\" JSON, each
  loop with its \"steps\" (no routes or reading/writing split there: docs/hyper.md)

exit status: 0 if no guard leaked on any loop, 1 if one did, 2 on a usage or I/O error";

/// What `serve` was asked for.
struct ServeOptions {
    addr: SocketAddr,
    loops: usize,
    mode: ListenMode,
    collect_on_stop: bool,
    limits: Limits,
    ladder: Ladder,
}

fn parse_serve(args: &[String]) -> io::Result<ServeOptions> {
    let mut o = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        loops: 1,
        mode: ListenMode::ReusePort,
        collect_on_stop: false,
        limits: Limits::default(),
        ladder: Ladder::default().with_idle_linger(stack::IDLE_LINGER),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| io::Error::other(format!("{arg} needs a value\n{USAGE}")))
        };
        let number = |v: &String| {
            v.parse::<u64>()
                .map_err(|e| io::Error::other(format!("{arg} {v:?}: {e}")))
        };
        let size = |n: u64| usize::try_from(n).map_err(|e| io::Error::other(format!("{arg}: {e}")));
        let ms = |v: &String| number(v).map(Duration::from_millis);
        match arg.as_str() {
            "--addr" => {
                o.addr = value()?
                    .parse()
                    .map_err(|e| io::Error::other(format!("--addr: {e}")))?
            }
            "--loops" => o.loops = parse_loops(number(value()?)?)?,
            "--listen" => o.mode = parse_listen(value()?)?,
            "--collect-on-stop" => o.collect_on_stop = true,
            "--unready-ms" => o.ladder = o.ladder.with_unready(ms(value()?)?),
            "--drain-timeout-ms" => o.ladder = o.ladder.with_drain_timeout(ms(value()?)?),
            "--force-after-ms" => o.ladder = o.ladder.with_force_after(ms(value()?)?),
            "--idle-linger-ms" => o.ladder = o.ladder.with_idle_linger(ms(value()?)?),
            "--idle-timeout-ms" => o.limits = o.limits.with_idle_timeout(ms(value()?)?),
            "--min-send-rate" => o.limits = o.limits.with_min_send_rate(number(value()?)?),
            "--max-connections" => {
                o.limits = o.limits.with_max_connections(size(number(value()?)?)?)
            }
            "--request-timeout-ms" => o.limits = o.limits.with_request_timeout(ms(value()?)?),
            "--max-body" => o.limits = o.limits.with_max_body(size(number(value()?)?)?),
            "--max-output" => o.limits = o.limits.with_max_output(size(number(value()?)?)?),
            "--half-close" => o.limits = o.limits.with_half_close(true),
            other => {
                return Err(io::Error::other(format!(
                    "unknown option {other:?}\n{USAGE}"
                )))
            }
        }
    }
    Ok(o)
}

/// `--loops N` (both stacks).
fn parse_loops(n: u64) -> io::Result<usize> {
    match n {
        1..=1024 => Ok(n as usize),
        _ => Err(io::Error::other(format!("--loops {n}: expected 1 to 1024"))),
    }
}

/// `--listen MODE` (both stacks).
fn parse_listen(mode: &str) -> io::Result<ListenMode> {
    match mode {
        "reuseport" => Ok(ListenMode::ReusePort),
        "shared" => Ok(ListenMode::Shared),
        other => Err(io::Error::other(format!(
            "--listen {other:?}: expected reuseport or shared"
        ))),
    }
}

/// Raises the process's open-file soft limit to its hard limit, as Go's runtime does for every
/// program: many systems start processes at a soft 1,024, below one loop's default
/// `max_connections`, so a connection flood would run the server out of descriptors (`EMFILE`)
/// before its connection limit, where eviction and `503` keep the server serving. Best effort:
/// a limit that cannot be raised stays as it was. Returns the soft limit before and after.
#[cfg(unix)]
pub(crate) fn raise_open_file_limit() -> Option<(u64, u64)> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit.current?, limit.maximum?);
    if soft >= hard {
        return Some((soft, soft));
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    let after = if setrlimit(Resource::Nofile, raised).is_ok() {
        hard
    } else {
        soft
    };
    Some((soft, after))
}

#[cfg(not(unix))]
pub(crate) fn raise_open_file_limit() -> Option<(u64, u64)> {
    None
}

/// `serve`: run until SIGINT or SIGTERM, then print one JSON line. True if nothing leaked.
fn serve(args: &[String]) -> io::Result<bool> {
    let o = parse_serve(args)?;
    raise_open_file_limit();
    let policy = downgrade_policy(o.collect_on_stop);
    quiet_intended_panics(true);
    let group = LoopGroup::new()
        .addr(o.addr)
        .loops(o.loops)
        .listen_mode(o.mode)
        .limits(o.limits)
        .ladder(o.ladder)
        .spawn(
            move |_loop| {
                Guarded::embedded("reqguard-demo", Config::default().with_downgrade(policy))
            },
            demo_routes,
        )?;
    let (stop, force) = (group.stopper(), group.stopper());
    let report = wait_watched(
        group.addr(),
        move || stop.stop(),
        move || force.force(),
        || group.wait(),
    )?;
    say(report.to_json());
    for (index, loop_report) in report.loops.iter().enumerate() {
        if loop_report.leaked > 0 {
            eprintln!("loop {index}: {}", loop_report.leaks);
        }
    }
    Ok(report.is_clean())
}

/// The wrapper's downgrade for `--collect-on-stop` (both stacks): at stop, else when the drain
/// completes.
fn downgrade_policy(collect_on_stop: bool) -> DowngradePolicy {
    if collect_on_stop {
        DowngradePolicy::OnStop
    } else {
        DowngradePolicy::OnDrain
    }
}

/// Prints one line of `serve`'s output (both stacks). A reader that has gone away (a closed
/// pipe) must not turn a clean stop into a panic at exit (`println!` panics on `EPIPE`): the
/// line is given up, stderr says so, and the exit code still tells whether the run was clean.
fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(err) = writeln!(io::stdout().lock(), "{line}") {
        eprintln!("reqguard-demo: stdout: {err}: a line was not printed");
    }
}

/// `serve` on both stacks: watches SIGINT and SIGTERM (the first calls `stop`, a later one
/// `force`) before it prints `listening on`, so a signal right after that line stops the
/// server rather than kill it; then waits for the report and removes the handlers.
fn wait_watched<R>(
    addr: SocketAddr,
    stop: impl Fn() + Send + 'static,
    force: impl Fn() + Send + 'static,
    wait: impl FnOnce() -> io::Result<R>,
) -> io::Result<R> {
    let unwatch = watch_signals(move |first| if first { stop() } else { force() })?;
    say(format_args!("listening on {addr}"));
    let report = wait();
    unwatch();
    report
}

/// Calls `on_signal(true)` at the first SIGTERM or SIGINT (start the group's ladder) and
/// `on_signal(false)` at each later one (skip to force). Returns what removes the handlers.
/// Both stacks' `serve` use it.
#[cfg(unix)]
fn watch_signals(mut on_signal: impl FnMut(bool) + Send + 'static) -> io::Result<impl FnOnce()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        for (count, _signal) in signals.forever().enumerate() {
            on_signal(count == 0);
        }
    });
    Ok(move || {
        handle.close();
        let _ = watcher.join();
    })
}

/// Signals are Unix-only here; elsewhere `serve` cannot be stopped gracefully.
#[cfg(not(unix))]
fn watch_signals(_on_signal: impl FnMut(bool) + Send + 'static) -> io::Result<impl FnOnce()> {
    Err::<fn(), _>(io::Error::new(
        io::ErrorKind::Unsupported,
        "serve stops on SIGTERM/SIGINT, which this platform does not have",
    ))
}

/// The story: load, stop with kept-alive connections open, collect, late requests, drain.
fn story() -> io::Result<bool> {
    quiet_intended_panics(false);
    println!("reqguard-demo: Bun PR 28246 on a mio loop, told on loopback\n");

    // The wrapper (the server's JS object) lives on the embedded heap. It is downgraded at
    // stop and collected right away: the PR's scenario, where the collector may finalize it
    // while kept-alive connections still deliver requests.
    let limits = Limits::default()
        .with_stop_linger(Duration::from_secs(5))
        .with_drain_timeout(Duration::from_secs(5));
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let running = ServerBuilder::new().limits(limits).spawn(
        move || Guarded::embedded("reqguard-demo", config),
        demo_routes,
    )?;
    let addr = running.addr();
    println!("1. server listening on {addr} (wrapper held strongly)");

    // Load: client threads on kept-alive connections, for a bounded time and count.
    let rate = client::load(addr)?;

    // A handler panics (500, and the loop keeps serving); kept-alive connections that will
    // still be open at stop, and one request in flight.
    let ((status, after), mut late, mut in_flight) = client::panic_then_connections_at_stop(addr)?;

    // Stop: the listener closes, the wrapper is downgraded and collected at once.
    let stop = running.stop_handle();
    let stopping = Instant::now();
    if !stop.stop_and_wait(Duration::from_secs(5)) {
        return Err(io::Error::other("the server did not begin its stop"));
    }
    println!("5. server.stop(): listener closed, wrapper downgraded and collected (finalized)");

    // The PR's crash: requests on the kept-alive connections after the wrapper is gone.
    let answers = late_requests(&mut late)?;

    let delayed = in_flight.answer()?.0;
    println!("7. the in-flight request finished during the drain: {delayed}");
    drop((late, in_flight)); // the clients hang up; the loop ends when its last connection closes
    let report = running.join()?;
    println!(
        "8. drained; server loop ended {:.0} ms after stop\n",
        stopping.elapsed().as_secs_f64() * 1e3
    );

    print_report(&report, rate);
    let ok = report.leaked == 0
        && report.stats.refused_finalized == LATE_CONNECTIONS as u64
        && answers.iter().all(|a| a == "503 close")
        && delayed == 200
        && status == 500
        && after == 200;
    Ok(verdict(
        ok,
        "every late request refused with 503, nothing leaked",
    ))
}

/// The story's last line on both stacks: `ok: ` and what held, or `FAILED`. Returns `ok`.
fn verdict(ok: bool, held: &str) -> bool {
    if ok {
        println!("\nok: {held}");
    } else {
        println!("\nFAILED: see above");
    }
    ok
}

fn print_report(report: &ServerReport, rate: f64) {
    print_report_and_rate(report, rate);
    if let Some(pool) = report.pool {
        println!(
            "  pool       {:>8}   contexts at most in use at once ({} spilled)",
            pool.high_water, pool.spills
        );
    }
}

/// The story's report on both stacks, and the load's rate under it.
fn print_report_and_rate(report: &impl std::fmt::Display, rate: f64) {
    println!("report");
    println!("{report}");
    println!("  req/s      {rate:>8.0}   over loopback, {CLIENTS} client threads");
}

/// The intended `GET /panic` prints one line, for the first of them only (`serve`), or nothing
/// (the story); any other panic prints as usual. One line per request let a client fill
/// stderr: written on the loop's thread, a pipe that its reader drains only at exit (a test
/// harness, a supervisor) filled after about 870 of them and blocked the loop in `write(2)`,
/// every client and the stop with it, on both stacks (QA client31-1). The exit JSON's `panics`
/// counts them all.
fn quiet_intended_panics(one_line: bool) {
    let default = std::panic::take_hook();
    let printed = AtomicBool::new(!one_line);
    std::panic::set_hook(Box::new(move |info| {
        match info.payload().downcast_ref::<&str>() {
            Some(message) if message.contains("on purpose") => {
                if !printed.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "handler panicked, answered 500: {message} \
                         (later ones are counted in the exit JSON's panics, not printed)"
                    );
                }
            }
            _ => default(info),
        }
    }));
}
