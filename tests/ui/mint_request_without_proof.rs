// Rule (G1): a `RequestObject` (Bun's `Request.new()`) can only be minted from the proof.
// The PR's `fetch()` path allocated the request first and checked the wrapper after, leaking
// the request on the rejected-promise path. Here the allocation cannot be written first.
// Right way: `let live = core.upgrade().ok_or(..)?; let request = live.request(existing);`
use reqguard::{engines::Heap, Config, RequestObject, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let existing = String::from("GET /");
    let request = RequestObject::new(existing); // Request.new(existing_request)
    let Some(_live) = core.upgrade() else {
        return; // rejected promise: `request` would leak here
    };
    let _ = RequestObject::hand_off(request);
}
