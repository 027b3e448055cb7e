// Rule (G2): every guard is `#[must_use]`. A freshly minted guard that is not bound is dropped
// at the end of the statement, so the work it should keep pending is released at once; under
// `deny(unused_must_use)` that is an error.
// Right way: bind it for as long as the native work runs: `let activity = bundle.activity_ref();`
#![deny(unused_must_use)]
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    bundle.activity_ref();
    bundle.complete();
}
