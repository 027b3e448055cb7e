//! The exit JSON's keys both HTTP stacks print first, written in one place so that a script
//! reads either stack's line alike (`served`, `refused`, `aborted`, `leaked`, `drain_ms`, ...).

use std::fmt::Write;

/// The counts every stack's exit JSON starts with, in their order.
pub(crate) struct CommonCounts {
    pub(crate) served: u64,
    pub(crate) refused: u64,
    pub(crate) aborted: u64,
    pub(crate) leaked: usize,
    pub(crate) drain_ms: f64,
    pub(crate) rejected: u64,
    pub(crate) panics: u64,
    pub(crate) refused_finalized: u64,
    pub(crate) refused_stopped: u64,
    pub(crate) connections: u64,
    pub(crate) connections_refused: u64,
    pub(crate) connections_evicted: u64,
    pub(crate) accept_backoffs: u64,
    pub(crate) force_closed: u64,
    pub(crate) drain_deadline_hit: bool,
    /// Answers a close dropped undelivered (`Stats::undelivered`, `HyperStats::undelivered`).
    pub(crate) undelivered: u64,
}

impl CommonCounts {
    /// `{"served":N,...,"drain_deadline_hit":B,"undelivered":N` with no closing brace: the stack appends its
    /// own keys, the outcomes and the steps, then closes it.
    pub(crate) fn open_json(&self) -> String {
        let mut json = String::with_capacity(400);
        let _ = write!(
            json,
            "{{\"served\":{},\"refused\":{},\"aborted\":{},\"leaked\":{},\"drain_ms\":{:.3},\
             \"rejected\":{},\"panics\":{},\"refused_finalized\":{},\"refused_stopped\":{},\
             \"connections\":{},\"connections_refused\":{},\"connections_evicted\":{},\
             \"accept_backoffs\":{},\"force_closed\":{},\"drain_deadline_hit\":{},\"undelivered\":{}",
            self.served,
            self.refused,
            self.aborted,
            self.leaked,
            self.drain_ms,
            self.rejected,
            self.panics,
            self.refused_finalized,
            self.refused_stopped,
            self.connections,
            self.connections_refused,
            self.connections_evicted,
            self.accept_backoffs,
            self.force_closed,
            self.drain_deadline_hit,
            self.undelivered,
        );
        json
    }
}
