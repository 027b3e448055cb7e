// Rule (G1/G2): guards belong to the event loop's thread (their counters are plain cells, not
// atomics), so a guard cannot be sent to another thread.
// Right way: finish the request on the loop's thread; send only plain data (bytes, a status)
// to a worker and drop the guard when the answer comes back.
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let ticket = core.upgrade().unwrap().ticket().unwrap();
    std::thread::spawn(move || drop(ticket));
}
