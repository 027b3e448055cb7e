// Rule (G8): an admitted request ends with exactly one outcome, decided when its bundle ends
// (`complete`, `end`, or a drop). Its guards cannot be moved out one by one, which would end
// the request without an outcome and without firing its abort signal.
// Right way: `bundle.hand_off()` gives the request payload to the engine; the rest stays in the
// bundle until `bundle.complete()`.
use reqguard::{engines::Heap, Admitted, Config, ServerCore};

fn main() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let Admitted { request, activity, context, .. } = bundle;
    drop((request, activity, context));
}
