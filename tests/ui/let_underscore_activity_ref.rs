// Rule (hole 8 of issue 9): `let _ = guard;` drops the guard at once and `unused_must_use` does
// not see it. An activity ref comes only from an admitted bundle, which keeps its own ref, so
// such a mint is useless rather than harmful; `#![deny(let_underscore_drop)]` (recommended in
// the crate docs) turns it into an error, as it does for every other guard.
// Right way: `let activity = bundle.activity_ref();`, held while the native work runs.
#![deny(let_underscore_drop)]
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    let _ = bundle.activity_ref();
    let _ = live.ticket();
    bundle.complete();
}
