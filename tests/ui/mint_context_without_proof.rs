// Rule (G1): a pooled `RequestContext` can only be checked out from the proof, `Live`, and only
// for an admitted request (it takes the request's ticket). It has no public constructor and no
// `Default` (unlike object-pool's public `Reusable::new`), so no context exists before the check.
// Right way: `let ctx = live.context(live.ticket()?)?;` or take the whole bundle with `live.admit(..)`.
use reqguard::RequestContext;

fn main() {
    let _ctx: RequestContext<Vec<u8>> = Default::default();
}
