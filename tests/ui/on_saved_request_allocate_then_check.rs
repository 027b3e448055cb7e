// Rule (G1, the PR's `onSavedRequest` bug): the liveness check must come before the request's
// resources are taken. Bun's fix called `prepareJsRequestContext` (pending_requests += 1, a pool
// slot, an AbortSignal ref, a Request) and only then `tryGetJSValue()`; its 503 path leaked all
// four and `server.stop()` never resolved. Written against reqguard, the allocation has nothing
// to be minted from: only `Live` can admit.
// Right way: `let live = core.upgrade().ok_or(..)?;` first, then `live.admit(..)`; a saved
// request that already owns a guard gives it back with `Refusal::consume`.
use reqguard::{engines::Embedded, Refusal, ServerCore};

fn on_saved_request(core: &ServerCore<Embedded<&'static str>, Vec<u8>>) -> Result<u16, Refusal> {
    let bundle = core.admit(|_ctx| Ok("GET /saved"))?; // prepareJsRequestContext
    let _live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?; // tryGetJSValue() orelse 503
    drop(bundle);
    Ok(200)
}

fn main() {
    let heap = reqguard::engines::Heap::new();
    let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("s"), Default::default());
    let _ = on_saved_request(&core);
}
