//! For test binaries without the libtest harness (`harness = false`: a counting global
//! allocator must see no other test's thread): the lines cargo test and nextest read, and the
//! allocation count of a closure.
#![allow(dead_code)]

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc};

/// Runs `test`, named `name`, as libtest would: `--list`, a name filter, and the result lines.
pub(crate) fn main_for(name: &str, test: fn()) {
    main_for_each(&[(name, test)]);
}

/// Runs each `(name, test)` in turn on the main thread, as libtest would: `--list` (what
/// nextest reads; `--list --ignored` lists none), name filters, `--skip`, and the result lines.
pub(crate) fn main_for_each(tests: &[(&str, fn())]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in tests {
                println!("{name}: test");
            }
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
    let chosen: Vec<&(&str, fn())> = tests
        .iter()
        .filter(|(name, _)| {
            !skips.iter().any(|s| name.contains(s.as_str()))
                && (filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        })
        .collect();
    let filtered_out = tests.len() - chosen.len();
    println!(
        "\nrunning {} test{}",
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" }
    );
    for (name, test) in &chosen {
        test();
        println!("test {name} ... ok");
    }
    println!(
        "\ntest result: ok. {} passed; 0 failed; 0 ignored; 0 measured; {filtered_out} filtered out",
        chosen.len()
    );
}

/// Heap allocations (and reallocations) `global` saw while `f` ran.
pub(crate) fn allocations(global: &'static StatsAlloc<System>, f: impl FnOnce()) -> usize {
    let region = Region::new(global);
    f();
    let stats = region.change();
    stats.allocations + stats.reallocations
}
