//! For test binaries without the libtest harness (`harness = false`: a counting global
//! allocator must see no other test's thread): the lines cargo test and nextest read, and the
//! allocation count of a closure.
#![allow(dead_code)]

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc};

/// Runs `test`, named `name`, as libtest would: `--list`, a name filter, and the result lines.
pub(crate) fn main_for(name: &str, test: fn()) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{name}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out");
        return;
    }
    println!("\nrunning 1 test");
    test();
    println!("test {name} ... ok\n");
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

/// Heap allocations (and reallocations) `global` saw while `f` ran.
pub(crate) fn allocations(global: &'static StatsAlloc<System>, f: impl FnOnce()) -> usize {
    let region = Region::new(global);
    f();
    let stats = region.change();
    stats.allocations + stats.reallocations
}
