// Rule (G5, probe): a drain report comes from the drain. `DrainReport` is `#[non_exhaustive]`,
// so an embedder cannot build one with `complete: true` to claim a drain it never had.
// Right way: `drain.report()`, `drain.poll_deadline(now)`, or `drain.await`.
use reqguard::{DrainReport, OutcomeCounts};

fn main() {
    let _forged = DrainReport {
        complete: true,
        drain_time: None,
        aborted_signals: 0,
        outcomes: OutcomeCounts::default(),
        panicked_listeners: 0,
        panicked_hooks: 0,
        outstanding: Default::default(),
    };
}
