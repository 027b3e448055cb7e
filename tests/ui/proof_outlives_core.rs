// Rule (G1): the proof borrows the server core it came from; it cannot outlive that borrow.
// Dropping (or moving) the core while a `Live` is held does not compile.
// Right way: keep the proof local to the callback; guards (which hold no borrow) may outlive it.
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    drop(core);
    let _ticket = live.ticket();
}
