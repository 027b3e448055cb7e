//! The floor (`common/floor.rs`: read, count requests, write a fixed `200 hello`; no parsing, no
//! accounting, never closes) as a server of its own, for load runs with outside clients (wrk,
//! h2load) beside `reqguard-demo serve` and plain hyper (docs/benchmarks-history.md section 9e).
//!
//! ```text
//! REQGUARD_FLOOR_SERVE=1 cargo bench --features server --bench floor_server
//! REQGUARD_FLOOR_SERVE=1 REQGUARD_FLOOR_CLOSE=1 cargo bench --features server --bench floor_server   # a connection per request
//! ```
//!
//! With `REQGUARD_FLOOR_CLOSE` set it closes every connection once its answers are written (no
//! linger): the floor of connection churn (`ab` without `-k`, `connection: close`;
//! `benches/load/shapes.py`).
//!
//! Prints `listening on 127.0.0.1:PORT` (a free port) and serves until killed. Without
//! `REQGUARD_FLOOR_SERVE` it prints this hint and exits, so `cargo bench` does not hang on it.

mod common;

use std::io::Write;

use common::floor::Floor;

fn main() {
    if std::env::var_os("REQGUARD_FLOOR_SERVE").is_none() {
        println!("floor_server: set REQGUARD_FLOOR_SERVE=1 to serve (see the file's header)");
        return;
    }
    let floor = if std::env::var_os("REQGUARD_FLOOR_CLOSE").is_some() {
        Floor::start_closing()
    } else {
        Floor::start()
    };
    println!("listening on {}", floor.addr);
    let _ = std::io::stdout().flush();
    // The floor serves on its own thread; this one only keeps the process alive.
    loop {
        std::thread::park();
    }
}
