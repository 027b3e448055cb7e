// Rule (G1): the proof is not `Clone`: one upgrade is one callback's proof, not a token to
// copy into a saved request or a second callback.
// Right way: upgrade again in the next callback (`core.upgrade()`), which can fail there.
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let _copy = live.clone();
}
