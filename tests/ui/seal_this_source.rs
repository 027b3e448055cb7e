// Rule (G1, round 27): only the crate's server reads a request's `this` through
// `Accounting::this_source`, within the handler's call (`Request::this`); its parameter is of a
// type no one outside the crate can name nor make (as `end_here`'s: tests/ui/seal_end_here.rs),
// so an embedder can neither call it nor override it to hand a handler another `this`.
// Right way: `Accounting::this` (what the handler gets, when it asks), `Request::this` in the
// handler.
use reqguard::http::Guarded;
use reqguard::Config;

fn main() {
    let guarded = Guarded::embedded("one", Config::default());
    // The token cannot be made from its path: the module that holds it is private.
    let asked = reqguard::http::accounting::seal::ThisAsked::new();
    let _ = reqguard::http::Accounting::this_source(&guarded, asked);
}
