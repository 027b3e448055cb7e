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
//!
//! The event loop itself is `reqguard::http::Server::run` (src/http/server.rs), which reads
//! like mio's `examples/tcp_server.rs`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, ServerBuilder, ServerReport};
use reqguard::{Config, DowngradePolicy};

/// Client threads generating load in the story.
const CLIENTS: usize = 4;
/// How long the load runs, and the most requests each client sends.
const LOAD_TIME: Duration = Duration::from_millis(1500);
const LOAD_MAX_PER_CLIENT: usize = 200_000;
/// Kept-alive connections still open when the server stops (the PR's scenario).
const LATE_CONNECTIONS: usize = 4;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => story(),
        Some("serve") => serve(&args[1..]),
        Some("-h" | "--help") => {
            println!("{}", USAGE);
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(io::Error::other(format!(
            "unknown command {other:?}\n{USAGE}"
        ))),
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

const USAGE: &str = "usage: reqguard-demo                 run the story and print a report
       reqguard-demo serve --addr 127.0.0.1:PORT [--collect-on-stop] [--drain-timeout-ms N]
                                  [--idle-timeout-ms N] [--max-connections N]
                                  [--request-timeout-ms N] [--max-body BYTES] [--max-output BYTES]
       (limits: docs/server.md, \"Limits\"; invalid ones are refused at start)";

/// `serve`: run until SIGINT or SIGTERM, then print one JSON line. True if nothing leaked.
fn serve(args: &[String]) -> io::Result<bool> {
    let mut addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut collect_on_stop = false;
    let mut limits = Limits::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| io::Error::other(format!("{arg} needs a value\n{USAGE}")))
        };
        let number = |v: &String| {
            v.parse::<u64>()
                .map_err(|e| io::Error::other(format!("{arg}: {e}")))
        };
        let size = |n: u64| usize::try_from(n).map_err(|e| io::Error::other(format!("{arg}: {e}")));
        match arg.as_str() {
            "--addr" => {
                addr = value()?
                    .parse()
                    .map_err(|e| io::Error::other(format!("--addr: {e}")))?
            }
            "--collect-on-stop" => collect_on_stop = true,
            "--drain-timeout-ms" => {
                limits = limits.drain_timeout(Duration::from_millis(number(value()?)?))
            }
            "--idle-timeout-ms" => {
                limits = limits.idle_timeout(Duration::from_millis(number(value()?)?))
            }
            "--max-connections" => limits = limits.max_connections(size(number(value()?)?)?),
            "--request-timeout-ms" => {
                limits = limits.request_timeout(Duration::from_millis(number(value()?)?))
            }
            "--max-body" => limits = limits.max_body(size(number(value()?)?)?),
            "--max-output" => limits = limits.max_output(size(number(value()?)?)?),
            other => {
                return Err(io::Error::other(format!(
                    "unknown option {other:?}\n{USAGE}"
                )))
            }
        }
    }
    let policy = if collect_on_stop {
        DowngradePolicy::OnStop
    } else {
        DowngradePolicy::OnDrain
    };
    quiet_intended_panics(true);
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let accounting = Guarded::embedded("reqguard-demo", Config::default().downgrade(policy));
    let report = ServerBuilder::new()
        .addr(addr)
        .limits(limits)
        .handle_signals(true)
        .serve(&router, accounting, |addr, _stop| {
            println!("listening on {addr}");
        })?;
    println!("{}", report.to_json());
    if report.leaked > 0 {
        eprintln!("{}", report.leaks);
    }
    Ok(report.leaked == 0)
}

/// The story: load, stop with kept-alive connections open, collect, late requests, drain.
fn story() -> io::Result<bool> {
    quiet_intended_panics(false);
    println!("reqguard-demo: Bun PR 28246 on a mio loop, told on loopback\n");

    // The wrapper (the server's JS object) lives on the embedded heap. It is downgraded at
    // stop and collected right away: the PR's scenario, where the collector may finalize it
    // while kept-alive connections still deliver requests.
    let limits = Limits::default()
        .stop_linger(Duration::from_secs(5))
        .drain_timeout(Duration::from_secs(5));
    let config = Config::default().downgrade(DowngradePolicy::OnStop);
    let running = ServerBuilder::new().limits(limits).spawn(
        move || Guarded::embedded("reqguard-demo", config),
        demo_routes,
    )?;
    let addr = running.addr();
    println!("1. server listening on {addr} (wrapper held strongly)");

    // Load: client threads on kept-alive connections, for a bounded time and count.
    let started = Instant::now();
    let loaders: Vec<_> = (0..CLIENTS)
        .map(|i| thread::spawn(move || load(addr, i)))
        .collect();
    let mut sent = 0;
    for loader in loaders {
        sent += loader.join().expect("a load thread panicked")?;
    }
    let load_time = started.elapsed();
    let rate = sent as f64 / load_time.as_secs_f64();
    println!(
        "2. load: {CLIENTS} clients sent {sent} requests in {:.2} s over keep-alive: {:.0} req/s",
        load_time.as_secs_f64(),
        rate
    );

    // A handler panics: 500, and the loop keeps serving.
    let mut panicky = Client::connect(addr)?;
    let status = panicky.request("GET /panic HTTP/1.1\r\n\r\n")?.0;
    let after = panicky.request("GET / HTTP/1.1\r\n\r\n")?.0;
    println!("3. GET /panic answered {status}; the next request on the same connection {after}");
    drop(panicky);

    // Kept-alive connections that will still be open at stop, and one request in flight.
    let mut late = Vec::new();
    for _ in 0..LATE_CONNECTIONS {
        let mut client = Client::connect(addr)?;
        client.request("GET / HTTP/1.1\r\n\r\n")?;
        late.push(client);
    }
    let mut in_flight = Client::connect(addr)?;
    in_flight.send("GET /delay?ms=300 HTTP/1.1\r\n\r\n")?;
    // Its bytes were sent before this probe connected, so once the probe is answered the loop
    // has admitted the delayed request too.
    Client::connect(addr)?.request("GET / HTTP/1.1\r\nconnection: close\r\n\r\n")?;
    println!(
        "4. {LATE_CONNECTIONS} kept-alive connections idle, 1 request in flight (GET /delay?ms=300)"
    );

    // Stop: the listener closes, the wrapper is downgraded and collected at once.
    let stop = running.stop_handle();
    let stopping = Instant::now();
    if !stop.stop_and_wait(Duration::from_secs(5)) {
        return Err(io::Error::other("the server did not begin its stop"));
    }
    println!("5. server.stop(): listener closed, wrapper downgraded and collected (finalized)");

    // The PR's crash: requests on the kept-alive connections after the wrapper is gone.
    let mut answers = Vec::new();
    for client in &mut late {
        let (status, close) = client.request("GET / HTTP/1.1\r\n\r\n")?;
        answers.push(format!("{status}{}", if close { " close" } else { "" }));
    }
    println!(
        "6. late requests on kept-alive connections: [{}]",
        answers.join(", ")
    );
    println!(
        "   (Bun unwrapped the null wrapper here: a segfault at 0x0; here the upgrade fails and"
    );
    println!("   the request is refused before anything is taken)");

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
    println!(
        "\n{}",
        if ok {
            "ok: every late request refused with 503, nothing leaked"
        } else {
            "FAILED: see above"
        }
    );
    Ok(ok)
}

fn print_report(report: &ServerReport, rate: f64) {
    println!("report");
    println!("{report}");
    println!("  req/s      {rate:>8.0}   over loopback, {CLIENTS} client threads");
    if let Some(pool) = report.pool {
        println!(
            "  pool       {:>8}   contexts at most in use at once ({} spilled)",
            pool.high_water, pool.spills
        );
    }
}

/// One client thread: keep-alive requests for [`LOAD_TIME`] or at most [`LOAD_MAX_PER_CLIENT`].
fn load(addr: SocketAddr, index: usize) -> io::Result<usize> {
    let mut client = Client::connect(addr)?;
    let until = Instant::now() + LOAD_TIME;
    let mut sent = 0;
    while sent < LOAD_MAX_PER_CLIENT && Instant::now() < until {
        let request = match (sent + index) % 4 {
            0 => "POST /echo HTTP/1.1\r\ncontent-length: 4\r\n\r\nping",
            _ => "GET / HTTP/1.1\r\n\r\n",
        };
        let (status, _) = client.request(request)?;
        if status != 200 {
            return Err(io::Error::other(format!("load got {status}")));
        }
        sent += 1;
    }
    Ok(sent)
}

/// The intended `GET /panic` prints one line (`serve`) or nothing (the story); any other
/// panic prints as usual.
fn quiet_intended_panics(one_line: bool) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        match info.payload().downcast_ref::<&str>() {
            Some(message) if message.contains("on purpose") => {
                if one_line {
                    eprintln!("handler panicked, answered 500: {message}");
                }
            }
            _ => default(info),
        }
    }));
}

/// A minimal blocking HTTP/1.1 client for the story.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `request`, reads the answer: its status and whether it says `connection: close`.
    fn request(&mut self, request: &str) -> io::Result<(u16, bool)> {
        self.send(request)?;
        self.answer()
    }

    fn send(&mut self, request: &str) -> io::Result<()> {
        self.reader.get_mut().write_all(request.as_bytes())
    }

    /// Reads one answer: its status and whether it says `connection: close`.
    fn answer(&mut self) -> io::Result<(u16, bool)> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut close) = (0, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.trim().eq_ignore_ascii_case("close");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, close))
    }
}
