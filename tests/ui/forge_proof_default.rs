// Rule (G1): the proof has no `Default` (nor any other constructor): "assume the server is
// alive" cannot be written.
// Right way: `let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;`
use reqguard::{engines::Embedded, Live};

fn main() {
    let _live: Live<'static, Embedded<&'static str>> = Default::default();
}
