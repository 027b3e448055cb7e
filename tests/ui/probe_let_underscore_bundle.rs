// Rule (G8, probe): `let _ = live.admit(..)` drops the bundle at once (outcome Dropped, abort
// fired) and `unused_must_use` does not see it; the recommended
// `#![deny(let_underscore_drop)]` does.
// Right way: `let bundle = live.admit(..)?;`, then `bundle.complete()` when answered.
#![deny(let_underscore_drop)]
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let _ = live.admit(|_| Ok(()));
}
