//! One test run again alone in a child process (the test binary itself), for a failure that
//! ends the process (an abort) instead of failing a test.
#![allow(dead_code)]

use std::process::Command;

/// Whether this process is the child [`assert_passes_in_child`] started with `var` set.
pub(crate) fn is_child(var: &str) -> bool {
    std::env::var_os(var).is_some()
}

/// Runs the test `path` (its full path in the binary) alone in a child process with `var`
/// set, and fails with the child's exit status and output unless it ran that one test and
/// it passed (a misspelt path would run no test and exit 0).
pub(crate) fn assert_passes_in_child(var: &str, path: &str) {
    let child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", path, "--test-threads=1"])
        .env(var, "1")
        .output()
        .expect("the child test runs");
    let out = String::from_utf8_lossy(&child.stdout);
    // A failing test's panic message is in the child's stdout (libtest prints it there).
    assert!(
        child.status.success(),
        "the child died: {:?}\n{out}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(
        out.contains("test result: ok. 1 passed"),
        "the child ran no test {path}:\n{out}"
    );
}

/// Runs the test `path` alone in a child process with `var` set to `value` (which scenario it
/// plays): its exit code (`None` when a signal ended it, as an abort does) and its stdout then
/// its stderr, for a test that asserts how the child ended.
pub(crate) fn output_in_child(var: &str, value: &str, path: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", path, "--nocapture", "--test-threads=1"])
        .env(var, value)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the child test runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}
