// Rule (G1): the proof cannot cross threads: another thread could mint guards on counters the
// event loop owns while the loop finalizes the wrapper. `Live` is `!Send` by a marker field,
// whatever the engine's handles are.
// Right way: upgrade on the loop's thread, in the callback that needs the proof.
use reqguard::{engines::Heap, Config, Live, ServerCore};

fn hand_to_worker<T: Send>(_: T) {}

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live: Live<'_, _> = core.upgrade().unwrap();
    hand_to_worker(live);
}
