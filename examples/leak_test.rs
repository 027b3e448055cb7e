//! Leak-checking your own code: `Ledger::assert_quiescent` in an embedder's unit tests, and
//! what its failure says.
//!
//! ```sh
//! cargo run --example leak_test     # prints the failure message of a leaking handler
//! cargo test --example leak_test    # the unit tests an embedder would write
//! ```
//!
//! Types rule out the PR's early-return leaks, but safe Rust can still leak: `mem::forget`, an
//! `Rc` cycle, a guard parked in a map that is never cleared. The ledger counts every guard and,
//! in debug builds (or with the `leak-check` feature), records where each was minted, so a
//! failing test names the line that took what was never given back.

use std::collections::HashMap;

use reqguard::engines::{Embedded, Heap};
use reqguard::{Admitted, Config, Refusal, ServerCore};

type Core = ServerCore<Embedded<&'static str>, Vec<u8>>;

/// An embedder's request table: requests whose response is still being written.
#[derive(Default)]
struct Responses {
    open: HashMap<u32, Admitted<Vec<u8>, &'static str>>,
}

impl Responses {
    fn on_request(&mut self, core: &Core, id: u32) -> Result<(), Refusal> {
        let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
        let bundle = live.admit(|_ctx| Ok("GET /"))?;
        self.open.insert(id, bundle);
        Ok(())
    }

    /// The bug under test: a response that fails to write is forgotten, not removed.
    fn on_write_error(&mut self, id: u32, buggy: bool) {
        if let Some(bundle) = self.open.remove(&id) {
            if buggy {
                std::mem::forget(bundle); // the ledger still counts it
            } else {
                bundle.end(reqguard::Outcome::ClientGone); // the connection is gone
            }
        }
    }
}

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded_with_context(heap.alloc("server"), Config::default());
    let mut responses = Responses::default();
    responses.on_request(&core, 1).expect("admitted");
    responses.on_write_error(1, true);

    // What a failing test prints: the ledger's report, with each guard's mint site. (The panic
    // hook is silenced so the message is printed once, below.)
    std::panic::set_hook(Box::new(|_| {}));
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        core.ledger().assert_quiescent();
    }));
    drop(std::panic::take_hook());
    let message = failure.expect_err("the forgotten bundle must fail the check");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    println!("assert_quiescent() panicked with:\n{text}");
    assert!(text.contains("was never released"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test an embedder writes: every path through its own code ends quiescent.
    #[test]
    fn a_write_error_releases_the_request() {
        let heap = Heap::new();
        let core = ServerCore::embedded_with_context(heap.alloc("server"), Config::default());
        let mut responses = Responses::default();
        responses.on_request(&core, 1).unwrap();
        responses.on_write_error(1, false);
        core.ledger().assert_quiescent();
    }

    /// And the check fails when the code leaks, naming the mint site.
    #[test]
    #[should_panic(expected = "was never released")]
    fn a_forgotten_request_fails_the_check() {
        let heap = Heap::new();
        let core = ServerCore::embedded_with_context(heap.alloc("server"), Config::default());
        let mut responses = Responses::default();
        responses.on_request(&core, 1).unwrap();
        responses.on_write_error(1, true);
        core.ledger().assert_quiescent();
    }
}
