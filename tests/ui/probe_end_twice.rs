// Rule (G8, probe): a request ends exactly once. `complete` and `end` consume the bundle, so a
// second ending (complete, then end with another outcome) does not compile.
// Right way: decide once: `bundle.complete()` when the answer is written, otherwise
// `bundle.end(outcome)`, or let it drop (Outcome::Dropped).
use reqguard::{engines::Heap, Config, Outcome, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    bundle.complete();
    bundle.end(Outcome::ClientGone);
}
