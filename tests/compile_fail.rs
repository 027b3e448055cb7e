//! The compile-time half of G1 and G2: each file under `tests/ui/` states one rule in its
//! opening comment and must fail to compile for the reason pinned in its `.stderr`.
//!
//! Regenerate the `.stderr` files after a compiler upgrade with
//! `TRYBUILD=overwrite cargo test --test compile_fail`, then read each one.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
