//! The demo's `serve` as a user runs it, for tests/server_serve.rs and tests/hyper_serve.rs: a
//! separate process started through `sh -c` (so a `ulimit` can go first), stopped by a signal,
//! read back as its JSON line; `curl`; fields of that JSON line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

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

    /// Sends `signal` and returns (the JSON line, whether the exit status was 0).
    pub fn signal_and_wait(mut self, signal: &str) -> (String, bool) {
        send_signal(self.child.id(), signal);
        self.json_and_status()
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

/// Sends `signal` (`INT`, `TERM`) to our own child `pid`, with the shell's builtin `kill`.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status()
        .expect("run sh");
    assert!(sent.success(), "kill -{signal} {pid}");
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
