// Rule (C-GETTER, round 27): `Limits`, `Ladder` and `Options` set a knob with `with_<knob>` and
// read it with the plain name, as `Config` does. A setter call left over from 0.2 does not
// compile (the plain name is the getter now), so no knob is silently left at its default.
// Right way: `Limits::default().with_max_body(1 << 20)`; read it back with `limits.max_body()`.
use reqguard::http::Limits;

fn main() {
    let _limits = Limits::default().max_body(1 << 20);
}
