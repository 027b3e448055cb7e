// Rule (G2): a pending-request ticket is not `Clone`: two requests need two tickets, each
// released once. A cloned ticket would release `pending_requests` twice.
// Right way: mint a second ticket from the proof: `live.ticket()?`.
use reqguard::{engines::Heap, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let ticket = core.upgrade().unwrap().ticket().unwrap();
    let _second = ticket.clone();
}
