//! The hostile-embedder probes of rounds 8 to 33 (`tests/probe_embed/vN.rs`, one module per
//! round), built as one test binary: each file was a binary of its own, and each compiled and
//! linked hyper, tokio and QuickJS again (docs/reliability.md, "CI time"). Run one round with
//! `cargo test --features server,quickjs,hyper --test probe_embed v20::`. `hooks_v30` is
//! round 30's probe of the panic holes of hooks (it was tests/probe_hooks_v30.rs). A probe
//! that needs a process of its own (it sets a resource limit or handles signals) stays a file
//! of its own in tests/; one that runs a test again in a child process (tests/util/child.rs)
//! names that test by its path in this binary (`v30::...`, `hooks_v30::child`).

#[cfg(feature = "server")]
#[path = "../util/accountings.rs"]
mod accountings;
#[path = "../util/child.rs"]
mod child;
#[path = "../util/drops.rs"]
mod drops;
#[cfg(feature = "server")]
#[allow(dead_code)]
#[path = "../util/handlers.rs"]
mod handlers;
#[cfg(feature = "hyper")]
#[allow(dead_code)]
#[path = "../util/local_set.rs"]
mod local_set;
#[allow(dead_code)]
#[path = "../util/quiet.rs"]
mod quiet;
#[path = "../util/reentrant_engine.rs"]
mod reentrant_engine;
#[path = "../util/mod.rs"]
mod util;

mod hooks_v30;
#[cfg(all(feature = "server", feature = "hyper"))]
mod lending;
#[cfg(feature = "hyper")]
mod one_request;
mod v10;
mod v11;
mod v12;
mod v13;
mod v14;
mod v14b;
mod v15;
mod v17;
mod v19;
mod v19b;
mod v20;
mod v21;
mod v22;
mod v23;
mod v24;
mod v25;
mod v26;
mod v27;
mod v28;
mod v29;
mod v30;
mod v32;
mod v33;
mod v8;
mod v9;
