//! Cargo features, in one place.
//!
//! | feature | what it adds |
//! |---|---|
//! | `leak-check` | records each guard's mint site in release builds too (always on in debug builds) |
//! | `server` | `reqguard::http`: the reference HTTP/1.1 server on a mio loop, and the `reqguard-demo` binary |
//! | `v8` | `engines::V8`: the wrapper as `v8::Global<v8::Object>` / `v8::Weak<v8::Object>` |
//! | `quickjs` | `engines::QuickJs`: the wrapper in QuickJS (rquickjs), upgraded through a JS `WeakRef` |
//! | `hyper` | `reqguard::tokio_hyper`: a `!Send` hyper 1.x service and server on tokio's current-thread runtime and a `LocalSet` (Deno's model); `reqguard-demo --stack hyper`. Pulls in hyper, hyper-util, tokio, http-body-util, bytes, pin-project-lite |
//! | `v8-live-tests` | enables `v8` and the tests that need a live isolate (`tests/engine_v8*.rs`); off in CI, where V8 cannot be linked |
//!
//! `server` is on by default, so the demo and every benchmark run with plain `cargo run` and
//! `cargo bench`. An embedder who brings its own loop and engine depends on reqguard with
//! `default-features = false` and pays for neither mio nor an engine.
//!
//! # Platforms
//!
//! The core (no default features), `leak-check`, `quickjs` and `v8` are plain Rust over their
//! engines and build wherever those do. `server` builds on Unix and on Windows (mio supports
//! both; CI type-checks `x86_64-pc-windows-gnu`), but stopping on SIGINT/SIGTERM
//! ([`Server::handle_signals`](crate::http::Server::handle_signals), the demo's `serve` mode) is
//! Unix-only: elsewhere it returns `ErrorKind::Unsupported` and the server is stopped through
//! its [`StopHandle`](crate::http::StopHandle). Tests, benchmarks and the demo are run on Linux.
