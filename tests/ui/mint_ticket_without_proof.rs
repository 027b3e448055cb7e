// Rule (G1): a pending-request ticket can only be minted from the proof, `Live`.
// `PendingTicket` has no public constructor, so `pending_requests += 1` cannot happen before
// the wrapper upgrade.
// Right way: `let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?; let t = live.ticket()?;`
use reqguard::{engines::Heap, Config, PendingTicket, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let _ticket = PendingTicket::new(&core);
}
