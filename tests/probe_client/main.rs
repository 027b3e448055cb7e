//! The hostile-client probes of rounds 8 to 30 (`tests/probe_client/vN.rs`, one module per
//! round), built as one test binary: each file was a binary of its own, and each compiled and
//! linked hyper, tokio and QuickJS again (docs/reliability.md, "CI time"). Run one round with
//! `cargo test --features server,quickjs,hyper --test probe_client v20::`.

#[cfg(feature = "hyper")]
#[allow(dead_code)]
#[path = "../util/local_set.rs"]
mod local_set;
#[allow(dead_code)]
#[path = "../util/quiet.rs"]
mod quiet;
#[path = "../util/mod.rs"]
mod util;

mod v10;
mod v11;
mod v12;
mod v14;
mod v15;
mod v16;
mod v17;
mod v18;
mod v19;
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
mod v8;
mod v9;
