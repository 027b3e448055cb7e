// Rule (G2/G8, probe): a bundle is `#[must_use]`: one that is not bound ends at the end of the
// statement as `Outcome::Dropped` and fires its abort; under `deny(unused_must_use)` that is an
// error.
// Right way: bind it, hand it to the handler, and end it with `complete()` or `end(outcome)`.
#![deny(unused_must_use)]
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
}
