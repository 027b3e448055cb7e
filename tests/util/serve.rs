//! The demo's `serve` as a user runs it, for tests/server_serve.rs and tests/hyper_serve.rs: a
//! separate process started through `sh -c` (so a `ulimit` can go first), stopped by a signal,
//! read back as its JSON line; `curl`; fields of that JSON line.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::strict::StrictClient;
use super::Client;

/// The demo binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_reqguard-demo");

/// A `reqguard-demo serve` process.
pub struct Serve {
    pub child: Child,
    pub stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
}

impl Serve {
    /// Starts `serve --addr 127.0.0.1:0 ARGS` (`--stack hyper` may be among them) after `prefix`
    /// in the shell, and waits for its `listening on ADDR` line.
    pub fn start(prefix: &str, args: &str) -> Serve {
        let script = format!("{prefix} exec '{BIN}' serve --addr 127.0.0.1:0 {args}");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn reqguard-demo serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("expected `listening on ADDR`, got {line:?}"))
            .parse()
            .expect("an address");
        Serve {
            child,
            stdout,
            addr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs `meanwhile` with the server paused (`SIGSTOP`, every thread stopped), then lets it
    /// go on (`SIGCONT`): what `meanwhile` sends and connects waits in the kernel, and the
    /// server's loop finds all of it in one poll of its reactor. A panic in `meanwhile` leaves
    /// it paused (`Drop` kills it).
    pub fn while_paused<T>(&self, meanwhile: impl FnOnce() -> T) -> T {
        let pid = self.child.id();
        send_signal(pid, "STOP");
        // `kill` returns before the stop takes hold.
        super::wait_until("every thread of the server stopped", || {
            all_threads_stopped(pid)
        });
        let kept = meanwhile();
        send_signal(pid, "CONT");
        kept
    }

    /// Sends `signal` and returns (the JSON line, whether the exit status was 0).
    pub fn signal_and_wait(mut self, signal: &str) -> (String, bool) {
        send_signal(self.child.id(), signal);
        self.json_and_status()
    }

    /// Sends `SIGTERM`, waits for the exit and asserts a clean one: status 0 and nothing
    /// `leaked` in the exit JSON, which it returns. `what` names the case in the failures.
    pub fn term_clean(self, what: &str) -> String {
        let (json, ok) = self.signal_and_wait("TERM");
        assert!(ok, "{what}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{what}: {json}");
        json
    }

    /// Reads the JSON line and waits for the exit: (the line, whether the status was 0).
    pub fn json_and_status(&mut self) -> (String, bool) {
        let mut json = String::new();
        self.stdout.read_line(&mut json).expect("the JSON line");
        let status = self.child.wait().expect("wait for serve");
        (json.trim().to_string(), status.success())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // Only if a test failed half-way: the process is ours, by pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each of `clients` (a request's method, its connection) sent a request not whole: `serve` is
/// stopped (SIGTERM) and each must read the drain deadline's `503` + `connection: close` (after
/// a `100 Continue`, if its request asked for one), then a clean FIN, all within `within` of the
/// stop (before the force step).
pub fn each_gets_the_deadlines_503(
    serve: &Serve,
    clients: &mut [(&str, StrictClient)],
    within: Duration,
    stack: &str,
) {
    send_signal(serve.child.id(), "TERM");
    let stopped = Instant::now();
    for (i, (method, client)) in clients.iter_mut().enumerate() {
        let mut answer = client.answer(method);
        if answer.status == 100 {
            answer = client.answer(method);
        }
        assert_eq!(
            (answer.status, answer.closes()),
            (503, true),
            "{stack}, request {i}: {answer:?}"
        );
        client.expect_nothing_more(true, Duration::ZERO);
    }
    let answered = stopped.elapsed();
    assert!(
        answered < within,
        "{stack}: answered {answered:?} after the stop"
    );
}

/// Sends `signal` (`INT`, `TERM`) to our own child `pid`, with the shell's builtin `kill`.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status()
        .expect("run sh");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Whether every thread of process `pid` is in the stopped state (`T` in /proc's stat): a
/// `SIGSTOP` has taken hold (`kill` returns before it does).
pub fn all_threads_stopped(pid: u32) -> bool {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .map(|task| task.unwrap().path().join("stat"))
        .all(|stat| {
            let stat = std::fs::read_to_string(stat).unwrap_or_default();
            // `pid (comm) S ...`: the state is the first field after the last `)`.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('T') || state.starts_with('t')
        })
}

/// Closes `stream` with a reset (`SO_LINGER` zero).
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// The number after the first `"key":` in a JSON object.
pub fn field(json: &str, key: &str) -> f64 {
    let start = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].parse().unwrap()
}

/// The field `key` of the exit JSON's `"outcomes":{...}` (the totals' come first: the first
/// `outcomes` object is the whole server's).
pub fn outcome(json: &str, key: &str) -> f64 {
    let outcomes = &json[json.find("\"outcomes\":").expect("outcomes")..];
    field(outcomes, key)
}

/// The `answered` of each loop's close step in `serve`'s exit JSON, summed.
pub fn close_steps_answered(json: &str) -> f64 {
    steps_answered(json, "close")
}

/// The `answered` of each loop's `step` (`abort`, `close`) in `serve`'s exit JSON, summed.
pub fn steps_answered(json: &str, step: &str) -> f64 {
    json.match_indices(&format!("{{\"step\":\"{step}\""))
        .map(|(at, _)| {
            let rest = &json[at..];
            let value = &rest[rest.find("\"answered\":").expect("answered") + 11..];
            let end = value
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(value.len());
            value[..end].parse::<f64>().expect("a count")
        })
        .sum()
}

/// Each loop's object in a group's JSON line (inside `"loops":[...]`), as text: from one
/// `{"served":` to the next.
pub fn loop_objects(json: &str) -> Vec<&str> {
    let loops = &json[json.find("\"loops\":[").expect("a loops list")..];
    let starts: Vec<usize> = loops
        .match_indices("{\"served\":")
        .map(|(at, _)| at)
        .collect();
    let ends = starts.iter().skip(1).copied().chain([loops.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&a, b)| &loops[a..b])
        .collect()
}

/// `"key":N` of every loop's object.
pub fn per_loop(json: &str, key: &str) -> Vec<f64> {
    loop_objects(json).iter().map(|o| field(o, key)).collect()
}

pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Whether curl is installed; prints why a test is skipped if not.
pub fn have_curl() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: curl is not installed (.ci/run installs it)");
    }
    found
}

/// Out of descriptors (the caller's `ulimit -n 32`), 60 slow heads hold every descriptor and
/// queue in the backlog ahead of a newcomer: `serve` (started by the caller) must evict the
/// slowest (`408`, closed at once: its descriptor is what is short) and serve the newcomer
/// while the other slow heads still wait: before their request timeout (the callers' 30 s),
/// which alone would free descriptors without an eviction (the newcomer waits 20 s at most).
/// Checks the evicted ones read their `408`, the others nothing yet, and the count in the exit
/// JSON; returns that JSON. For both stacks: tests/probe_http_v6.rs, tests/probe_hyper_v7.rs.
/// No wall-clock bound: the order of the events is the behaviour (an eviction is not timed).
pub fn slow_heads_out_of_descriptors(serve: Serve) -> String {
    let slow: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut stream = TcpStream::connect(serve.addr).expect("the kernel backlog accepts");
            stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
            stream
        })
        .collect();
    // Older than the 100 ms a connection must have held its slot to be evicted.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let stream = TcpStream::connect(serve.addr).expect("the kernel backlog accepts");
    let mut newcomer = Client::from_stream(stream, Duration::from_secs(20));
    newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let answer = newcomer.answer();
    assert!(
        answer.as_ref().is_ok_and(|a| a.status == 200),
        "after {:?}: {answer:?}",
        started.elapsed()
    );
    // Each evicted slow head reads its `408` (written before the close); the others were still
    // waiting: the newcomer was served before any slow head's request timeout, so the room it
    // got was an eviction's (the exit JSON counts each). Read once the server has exited, not
    // 20 ms each while it runs (the loop goes on evicting for the heads still queued behind the
    // newcomer: a `408` written after its read was counted waiting, and the JSON's count was one
    // more): every eviction is done, and what each connection got is all there, its `408` first
    // if it was evicted (an eviction without one, a bare close, leaves the counts apart), else
    // the stop's answer, its close or a reset.
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
    let (mut waiting, mut answered) = (0, 0);
    for stream in slow {
        let mut client = Client::from_stream(stream, super::READ_TIMEOUT);
        match client.answer() {
            Ok(answer) if answer.status == 408 => {
                assert!(answer.closes(), "{answer:?}");
                answered += 1;
            }
            Ok(_) | Err(_) => waiting += 1,
        }
    }
    assert_eq!(
        field(&json, "connections_evicted"),
        f64::from(answered),
        "{json}"
    );
    assert!(
        answered >= 1 && waiting >= 1,
        "{answered} answered, {waiting} waiting"
    );
    assert_eq!(field(&json, "leaked"), 0.0, "{json}");
    json
}

/// Out of descriptors (the caller's `ulimit -n 32`), with every connection the server holds
/// busy in a handler, `serve` (started by the caller, either stack) must pause its accepts, not
/// spin (under 50 ticks/s of CPU over a second), and serve a newcomer once the clients go;
/// `accept_backoffs` counts the pauses. For tests/server_serve.rs and tests/hyper_serve.rs.
///
/// Every client's requests wait in its socket before the server accepts it: `GET /`, then one
/// that stays in its handler until its client goes (a connection the loop may not evict to
/// make room; a body on its way is evicted once it arrives slower than 1 KiB/s:
/// probe_client::v9). Sent one client at a time to a running server, a client a loaded machine
/// held back for 100 ms after its accept was a silent head at the descriptor limit, rightly
/// evicted with `408` (`out_of_descriptors_the_slowest_head_makes_room_for_a_newcomer`), and
/// the test's next write met the close: BrokenPipe (hyper: 6 of 6 runs at load average 18).
pub fn out_of_descriptors_pauses_then_recovers(serve: Serve) -> String {
    let mut clients: Vec<TcpStream> = serve.while_paused(|| {
        (0..48)
            .map(|_| {
                let mut stream =
                    TcpStream::connect(serve.addr).expect("the kernel backlog accepts");
                stream
                    .write_all(
                        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n\
                          GET /delay?ms=60000 HTTP/1.1\r\nhost: x\r\n\r\n",
                    )
                    .expect("the kernel buffers the requests");
                stream
            })
            .collect()
    });
    // The event the rest needs: the server has filled its descriptor table (it accepts until
    // `EMFILE`). Then each connection it holds is answered (10 s: on a loaded machine the
    // answers come late; the wait is only paid for the first one still in the backlog).
    // Connections are accepted in order, so the first one left unanswered ends the count.
    let pid = serve.child.id();
    super::wait_until("the server to run out of descriptors", || {
        open_descriptors(pid) >= descriptor_limit(pid)
    });
    let mut served = 0;
    for stream in &clients {
        let mut client = Client::from_stream(stream.try_clone().unwrap(), Duration::from_secs(10));
        if client.answer().is_err() {
            break;
        }
        served += 1;
    }
    assert!(served > 0 && served < clients.len(), "served {served}");

    // While out of descriptors, the loop must not spin: sample its CPU time over a second.
    let (cpu0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let ticks_per_s = (cpu_ticks(pid) - cpu0) as f64 / t0.elapsed().as_secs_f64();
    assert!(
        ticks_per_s < 50.0,
        "{ticks_per_s} ticks/s of CPU: the loop spins"
    );

    // Descriptors come back as the clients go (their requests end, client gone): the server
    // accepts again.
    clients.clear();
    super::wait_until("a new connection to be served", || {
        let Ok(stream) = TcpStream::connect(serve.addr) else {
            return false;
        };
        let mut client = Client::from_stream(stream, Duration::from_secs(2));
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        client.answer().is_ok_and(|a| a.status == 200)
    });
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
    assert!(field(&json, "accept_backoffs") >= 1.0, "{json}");
    assert_eq!(field(&json, "leaked"), 0.0, "{json}");
    json
}

/// The descriptors `pid` has open.
pub fn open_descriptors(pid: u32) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd");
    fds.count()
}

/// The soft limit on `pid`'s open descriptors (`ulimit -n`).
pub fn descriptor_limit(pid: u32) -> usize {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let soft = line["Max open files".len()..].split_whitespace().next();
    soft.and_then(|n| n.parse().ok()).expect("a number")
}

/// utime + stime of `pid`, in clock ticks (usually 100 per second).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The tail of the stop probes QA client22-2 and client23-3: `fresh`, a head begun but not
/// ended at the stop, gets nothing for 2.5 s; once it sends the head's end it is refused `503`
/// and closed; the run then ends with `served` 2, `refused` 1, `rejected` 0 and `leaked` 0.
pub fn held_until_its_head_is_whole_then_refused(
    stack: &str,
    mut serve: Serve,
    fresh: &mut StrictClient,
) {
    // hyper's close step answered it a second after the drain: nothing comes here.
    let stream = fresh.reader_mut().get_ref();
    stream
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = stream.peek(&mut byte);
    assert!(
        early
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{stack}: answered before its head was whole: {early:?}"
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fresh.send(b"\r\n");
    let refused = fresh.answer("GET");
    assert_eq!(
        (refused.status, refused.closes()),
        (503, true),
        "{stack}: {refused:?}"
    );
    fresh.expect_nothing_more(true, Duration::ZERO);
    let (json, ok) = serve.json_and_status();
    assert!(ok, "{stack}: {json}");
    assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    assert_eq!(field(&json, "served"), 2.0, "{stack}: {json}");
    assert_eq!(field(&json, "refused"), 1.0, "{stack}: {json}");
    assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
}
