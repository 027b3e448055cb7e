// Rule (G1): the proof given to `with_live`'s callback cannot leave the callback. The callback
// must accept a `Live` of any lifetime, so storing it outside does not type-check.
// Right way: do the work inside the callback and return what must outlive it (an `Admitted`
// bundle, which holds no borrow), never the proof itself.
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let mut saved = None;
    let _ = core.with_live(|live| {
        saved = Some(live);
    });
    drop(saved);
}
