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
        // `--list --ignored` lists the ignored tests only (nextest asks both ways): none here.
        if !args.iter().any(|a| a == "--ignored") {
            println!("{name}: test");
        }
        return;
    }
    // `--skip NAME` takes the argument after it (as libtest does: `.ci/sanitizers` passes its
    // skip list to every binary); other flags are ignored; a plain argument is a name filter.
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--skip" => skips.extend(words.next()),
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter),
        }
    }
    let skipped = skips.iter().any(|s| name.contains(s.as_str()));
    if skipped || (!filters.is_empty() && !filters.iter().any(|f| name.contains(f))) {
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
