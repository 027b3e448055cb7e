// Rule (hole 1 of issue 9): an activity ref is taken from an admitted request's bundle, never
// from a proof and a signal. A proof of server `a` and a signal of server `b` (stopped, its
// wrapper collected) cannot mint a ref counted in `b`'s ledger that `b`'s drain never sees.
// Right way: `let activity = bundle.activity_ref();` on a bundle from `Live::admit`.
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let a = ServerCore::embedded(heap.alloc("a"), Config::default());
    let b = ServerCore::embedded(heap.alloc("b"), Config::default());
    let signal_of_b = b.upgrade().unwrap().signal();
    let _activity = a.upgrade().unwrap().activity_ref(&signal_of_b);
}
