//! qa-client31, round 31: what a hostile client sees through `reqguard-demo serve` (the process
//! a user runs) beyond rounds 8 to 30. Answers are read by the strict client
//! (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use util::serve::{field, Serve, BIN};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["mio", "hyper"];

/// `serve --stack STACK` on an ephemeral port with its stderr a pipe that nothing reads (a
/// harness that reads it at exit, a supervisor that has stalled): what the server writes there
/// stays in the pipe, 64 KiB by default on Linux (pipe(7)), and a write past that blocks.
fn serve_with_stderr_unread(stack: &str) -> (Serve, std::process::ChildStderr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--stack", stack])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reqguard-demo serve");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("expected `listening on ADDR`, got {line:?}"))
        .parse()
        .expect("an address");
    let serve = Serve {
        child,
        stdout,
        addr,
    };
    (serve, stderr)
}

/// A client that sends `GET /panic` again and again cannot fill the server's stderr and stop
/// its loop (QA client31-1). The demo's panic hook wrote one line per intended panic, on the
/// loop's thread: with stderr a pipe nobody drained, the 872nd `GET /panic` blocked the loop in
/// `write(2)` on both stacks, so that client, every other client and the SIGTERM went
/// unanswered (the read below timed out). Now the first one is printed and the exit JSON's
/// `panics` counts them all: 2,000 lines would be 150 KB, over twice the pipe's 64 KiB.
#[test]
fn a_client_cannot_block_the_loop_by_filling_stderr_on_either_stack() {
    const PANICS: usize = 2_000;
    for stack in STACKS {
        let (serve, _stderr_unread) = serve_with_stderr_unread(stack);
        let mut client = StrictClient::connect(serve.addr);
        for n in 0..PANICS {
            client.send(b"GET /panic HTTP/1.1\r\nhost: a\r\n\r\n");
            let answer = client.answer("GET");
            assert_eq!(
                answer.status, 500,
                "{stack}: GET /panic number {n}: {answer:?}"
            );
            assert_eq!(answer.body.len(), "Internal Server Error".len(), "{stack}");
        }
        let mut other = StrictClient::connect(serve.addr);
        other.send(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        let answer = other.answer("GET");
        assert_eq!((answer.status, answer.text()), (200, "hello"), "{stack}");
        let (json, clean) = serve.signal_and_wait("TERM");
        assert!(clean, "{stack}: {json}");
        assert_eq!(field(&json, "panics"), PANICS as f64, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}
