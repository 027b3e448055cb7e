//! The report of a loop group: every loop's [`ServerReport`] and their sum.

use std::fmt;
use std::time::Duration;

use super::dispatch::Stats;
use super::report::ServerReport;
use crate::admit::OutcomeCounts;
use crate::ledger::{LeakReport, LeakSite};
use crate::pool::PoolMetrics;

/// What a loop group did: one [`ServerReport`] per loop, and `totals`, their sum.
///
/// Counts add up (`totals.stats.served` is the sum of every loop's), `drain_time` and `uptime`
/// are the longest of the loops (no `drain_time` if a loop's drain never completed),
/// `drain_deadline_hit` is true if it was on any loop, and
/// `totals.steps` is empty (each loop records its own steps).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupReport {
    /// The sum over every loop.
    pub totals: ServerReport,
    /// Each loop's own report, by loop index.
    pub loops: Vec<ServerReport>,
}

impl GroupReport {
    pub(crate) fn merge(loops: Vec<ServerReport>) -> Self {
        GroupReport {
            totals: sum_loops(&loops),
            loops,
        }
    }

    /// Whether nothing leaked on any loop (what `serve`'s exit status says).
    pub fn is_clean(&self) -> bool {
        self.loops.iter().all(|r| r.leaked == 0)
    }

    /// One JSON line: the totals' fields (as [`ServerReport::to_json`]), then `"loops":[...]`
    /// with one object per loop, each with its `"steps"`.
    pub fn to_json(&self) -> String {
        json_with_loops(
            self.totals.to_json(),
            self.loops.iter().map(ServerReport::to_json),
        )
    }
}

/// One loop's report as a group sums and prints it: what both stacks' group reports
/// ([`GroupReport`], the hyper adapter's `HyperGroupReport`) share, so that the merge and the
/// text are one piece of code for both.
pub(crate) trait LoopReport: fmt::Display {
    /// The sum's start: every count zero, no drain time, no steps.
    fn zero() -> Self;
    /// Adds `report` into this sum. Each stack's `add` names every field of its report, so a
    /// field added to the report cannot be left out of the sum without a compile error.
    fn add(&mut self, report: &Self);
    /// The drain time: from stop to the last admitted request ending, `None` if it never did.
    fn drain_time(&self) -> &Option<Duration>;
    /// The drain time, to set the sum's.
    fn drain_time_mut(&mut self) -> &mut Option<Duration>;
    /// What the group's text prints after this loop's report (nothing unless a stack says).
    fn write_loop_tail(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// The group's totals: every loop's report added, and the drain time the longest of theirs
/// (none if a loop's drain never completed).
pub(crate) fn sum_loops<R: LoopReport>(loops: &[R]) -> R {
    let mut totals = R::zero();
    for report in loops {
        totals.add(report);
    }
    let longest = longest_drain(totals.drain_time(), loops.iter().map(|r| *r.drain_time()));
    *totals.drain_time_mut() = longest;
    totals
}

/// The group's text: a heading, the totals, then each loop's report (and its tail).
pub(crate) fn write_group<R: LoopReport>(
    f: &mut fmt::Formatter<'_>,
    totals: &R,
    loops: &[R],
) -> fmt::Result {
    writeln!(f, "all {} loops", loops.len())?;
    write!(f, "{totals}")?;
    for (i, report) in loops.iter().enumerate() {
        write!(f, "\nloop {i}\n{report}")?;
        report.write_loop_tail(f)?;
    }
    Ok(())
}

impl LoopReport for ServerReport {
    fn zero() -> Self {
        ServerReport {
            stats: Stats::default(),
            leaked: 0,
            leaks: LeakReport::default(),
            drain_time: None,
            drain_deadline_hit: false,
            force_closed: 0,
            pool: None,
            uptime: Duration::ZERO,
            steps: Vec::new(),
            outcomes: OutcomeCounts::default(),
        }
    }

    fn add(&mut self, report: &Self) {
        let ServerReport {
            stats,
            leaked,
            leaks,
            drain_time,
            drain_deadline_hit,
            force_closed,
            pool,
            uptime,
            steps: _, // per loop only
            outcomes,
        } = report;
        add_stats(&mut self.stats, stats);
        // An embedder's accounting reports these: absurd figures saturate, never overflow.
        self.leaked = self.leaked.saturating_add(*leaked);
        self.leaks = merge_leaks(&self.leaks, leaks);
        self.drain_time = self.drain_time.max(*drain_time);
        self.drain_deadline_hit |= drain_deadline_hit;
        self.force_closed += force_closed;
        self.pool = match (self.pool, pool) {
            (Some(a), Some(b)) => Some(add_pool(a, b)),
            (a, b) => a.or(*b),
        };
        self.uptime = self.uptime.max(*uptime);
        self.outcomes += *outcomes;
    }

    fn drain_time(&self) -> &Option<Duration> {
        &self.drain_time
    }

    fn drain_time_mut(&mut self) -> &mut Option<Duration> {
        &mut self.drain_time
    }

    /// Each loop's stop steps (the totals have none).
    fn write_loop_tail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            write!(f, "\n  step {step}")?;
        }
        Ok(())
    }
}

/// A group's drain time: the longest of its loops' (`longest`), or none if a loop's drain
/// never completed (a guard leaked there): the group's last ticket was never released.
fn longest_drain(
    longest: &Option<Duration>,
    mut loops: impl Iterator<Item = Option<Duration>>,
) -> Option<Duration> {
    if loops.any(|drain| drain.is_none()) {
        return None;
    }
    *longest
}

/// The group JSON shape (the hyper group prints it too): the totals' object, then
/// `"loops":[...]` with one object per loop.
pub(crate) fn json_with_loops(totals: String, loops: impl Iterator<Item = String>) -> String {
    let mut json = totals;
    json.pop(); // the closing brace
    json.push_str(",\"loops\":[");
    for (i, report) in loops.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&report);
    }
    json.push_str("]}");
    json
}

fn add_stats(total: &mut Stats, s: &Stats) {
    let Stats {
        connections,
        connections_refused,
        connections_evicted,
        accept_backoffs,
        served,
        undelivered,
        refused,
        refused_finalized,
        refused_stopped,
        rejected,
        panics,
        aborted,
        buffered_high_water,
        head_bytes_parsed,
        body_bytes_read_in_place,
        body_bytes_lent,
        response_buffer,
        response_buffer_shrinks,
    } = *s;
    total.connections += connections;
    total.connections_refused += connections_refused;
    total.connections_evicted += connections_evicted;
    total.accept_backoffs += accept_backoffs;
    total.served += served;
    total.undelivered += undelivered;
    total.refused += refused;
    total.refused_finalized += refused_finalized;
    total.refused_stopped += refused_stopped;
    total.rejected += rejected;
    total.panics += panics;
    total.aborted += aborted;
    total.head_bytes_parsed += head_bytes_parsed;
    total.body_bytes_read_in_place += body_bytes_read_in_place;
    total.body_bytes_lent += body_bytes_lent;
    total.response_buffer += response_buffer;
    total.response_buffer_shrinks += response_buffer_shrinks;
    // Per connection, so the group's is the largest of the loops'.
    total.buffered_high_water = total.buffered_high_water.max(buffered_high_water);
}

pub(crate) fn add_pool(a: PoolMetrics, b: &PoolMetrics) -> PoolMetrics {
    let PoolMetrics {
        capacity,
        in_use,
        high_water,
        allocated,
        spills,
        refusals,
        recycle_panics,
    } = *b;
    PoolMetrics {
        capacity: a.capacity.saturating_add(capacity),
        in_use: a.in_use.saturating_add(in_use),
        // Each loop's own high-water mark; their sum bounds the group's.
        high_water: a.high_water.saturating_add(high_water),
        allocated: a.allocated.saturating_add(allocated),
        spills: a.spills.saturating_add(spills),
        refusals: a.refusals.saturating_add(refusals),
        recycle_panics: a.recycle_panics.saturating_add(recycle_panics),
    }
}

pub(crate) fn merge_leaks(a: &LeakReport, b: &LeakReport) -> LeakReport {
    let mut sites: Vec<LeakSite> = a.sites().to_vec();
    for site in b.sites() {
        match sites
            .iter_mut()
            .find(|s| s.kind == site.kind && s.location == site.location)
        {
            Some(same) => same.count += site.count,
            None => sites.push(*site),
        }
    }
    LeakReport::new(sites)
}

impl fmt::Display for GroupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_group(f, &self.totals, &self.loops)
    }
}
