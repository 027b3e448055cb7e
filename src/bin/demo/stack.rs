//! `--stack mio|hyper`: which server the demo runs. mio is the default; hyper needs the `hyper`
//! feature (`cargo run --release --features hyper --bin reqguard-demo -- --stack hyper`).

use std::io;
use std::time::Duration;

#[cfg(feature = "hyper")]
#[path = "hyper_stack.rs"]
mod hyper_stack;

/// How long `serve` keeps an idle kept-alive connection open once the drain begins, on both
/// stacks (`--idle-linger-ms`). A client whose answer was just written sends its next request
/// right then: in the linger that request is refused `503` + `connection: close` and counted;
/// a connection closed at once (0, the default before) met it with EOF, the request lost and
/// counted nowhere (every busy connection under load; tests/probe_load_v10.rs). The same 1 s as
/// `Limits::stop_linger` and the hyper adapter's `Options::stop_linger`.
pub(crate) const IDLE_LINGER: Duration = Duration::from_secs(1);

/// The server stack the demo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stack {
    /// `reqguard::http`, the mio loop (the default).
    Mio,
    /// `reqguard::tokio_hyper`, hyper on tokio's current-thread runtime and a `LocalSet`.
    Hyper,
}

/// Takes `--stack NAME` (anywhere in `args`) out of `args`.
pub(crate) fn take(args: &mut Vec<String>) -> io::Result<Stack> {
    let Some(at) = args.iter().position(|a| a == "--stack") else {
        return Ok(Stack::Mio);
    };
    args.remove(at);
    if at >= args.len() {
        return Err(io::Error::other("--stack needs a value: mio or hyper"));
    }
    match args.remove(at).as_str() {
        "mio" => Ok(Stack::Mio),
        "hyper" => Ok(Stack::Hyper),
        other => Err(io::Error::other(format!(
            "--stack {other:?}: expected mio or hyper"
        ))),
    }
}

/// Runs the story or `serve` on hyper.
pub(crate) fn hyper(args: &[String]) -> io::Result<bool> {
    #[cfg(feature = "hyper")]
    return hyper_stack::main(args);
    #[cfg(not(feature = "hyper"))]
    {
        let _ = args;
        Err(io::Error::other(
            "--stack hyper: this binary was built without the `hyper` feature \
             (cargo run --release --features hyper --bin reqguard-demo -- --stack hyper)",
        ))
    }
}
