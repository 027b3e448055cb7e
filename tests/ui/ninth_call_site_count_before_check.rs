// Rule (G1, the review's ninth call site): `onNodeHTTPRequestWithUpgradeCtx` did
// `pending_requests += 1` (onPendingRequest) before `js_value.tryGet()`, so an early 503 would
// have left the count up and the drain stuck. The counter is a ticket, and a ticket can only be
// minted from the proof: the increment cannot come before the check.
// Right way: `let live = core.upgrade().ok_or(..)?; let ticket = live.ticket()?;`
use reqguard::{engines::Embedded, Refusal, ServerCore};

fn on_node_http_request_with_upgrade_ctx(
    core: &ServerCore<Embedded<&'static str>>,
) -> Result<u16, Refusal> {
    let ticket = core.ticket()?; // this.onPendingRequest()
    let _this = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?; // js_value.tryGet()
    drop(ticket);
    Ok(200)
}

fn main() {
    let heap = reqguard::engines::Heap::new();
    let core = ServerCore::embedded(heap.alloc("s"), Default::default());
    let _ = on_node_http_request_with_upgrade_ctx(&core);
}
