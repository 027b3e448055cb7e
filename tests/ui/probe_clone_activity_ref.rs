// Rule (G2, probe): an activity ref is not `Clone`: a copy would release the signal's pending
// activity twice. Another ref is minted, and counted, from the bundle.
// Right way: `let second = bundle.activity_ref();`
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let first = bundle.activity_ref();
    let _second = first.clone();
    bundle.complete();
}
