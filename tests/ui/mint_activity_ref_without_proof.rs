// Rule (G1): an abort-signal activity ref (`pendingActivityRef()`) can only be minted from the
// proof. Holding a signal is not enough: user code may keep an `AbortSignal` long after the
// server's wrapper is gone, and a ref taken then would keep native work "pending" forever.
// Right way: `let activity = bundle.activity_ref();` on a request admitted through the proof.
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let signal = core.upgrade().unwrap().signal(); // kept by user code
    let _activity = signal.activity_ref(); // the signal cannot vouch for the server
}
