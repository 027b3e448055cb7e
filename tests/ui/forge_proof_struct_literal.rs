// Rule (G1): the proof cannot be forged with a struct literal: its fields are private, so a
// `Live` exists only where `ServerCore::upgrade` succeeded.
// Right way: `let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;`
use reqguard::{engines::Heap, Config, Live, ServerCore};

fn main() {
    let heap = Heap::new();
    let wrapper = heap.alloc("server");
    let core = ServerCore::embedded(wrapper.clone(), Config::default());
    let _live = Live {
        core: &core,
        wrapper,
        _not_send: std::marker::PhantomData,
    };
}
