// Rule (G4): the refusal path consumes the guard handed to it. A saved request that already
// owns its ticket is given back with `Refusal::consume(saved)`; after that it cannot be
// dispatched as well (the PR's `onSavedRequest` answered 503 and still held everything).
// Right way: either refuse (`return refusal.consume(saved)`) or serve (`live.context(saved)`),
// never both.
use reqguard::{engines::Heap, Config, Refusal, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let saved = live.ticket().unwrap();
    let refusal = Refusal::WRAPPER_FINALIZED.consume(saved);
    let _context = live.context(saved);
    let _ = refusal;
}
