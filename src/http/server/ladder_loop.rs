//! The stop ladder (`src/http/ladder.rs`) as one loop of a group runs it: each step applied
//! to this loop's listener, dispatcher and connections, and recorded.
//!
//! # Invariants
//!
//! 1. Steps are entered in order, each at most once; a forced stop skips straight to
//!    [`Step::Force`] (its drain is begun silently so admission is closed).
//! 2. The listener stays registered and accepting until [`Step::Close`], which the group
//!    orders only once every loop has drained (`group.rs`, invariant 3).
//! 3. Nothing here runs before the group's stop: until then [`EventLoop::ladder_turn`] returns
//!    at its first check, so the request path touches no atomic.

use std::sync::Arc;
use std::time::Instant;

use super::ending::Idle;
use super::{EventLoop, Server, CLOSE_LINGER, STOP_TIMER};
use crate::admit::OutcomeCounts;
use crate::callback::caught;
use crate::http::accounting::{Accounting, StopStatus};
use crate::http::group::Member;
use crate::http::ladder::{HandlerTally, Ladder, Outstanding, Step, StepRecord};
use crate::http::running::Phase;
use crate::ledger::Ledger;

/// One loop's place on the ladder.
pub(crate) struct LoopLadder {
    member: Member,
    plan: Ladder,
    /// The group's stop instant (T0), once this loop has seen it.
    started: Option<Instant>,
    /// The last step entered.
    reached: Option<Step>,
    /// When this loop's drain began (admission closed).
    drain_began: Option<Instant>,
    /// When the abort step ran.
    aborted_at: Option<Instant>,
    /// Told the group this loop has drained.
    drained: bool,
    /// The steps reached, for the report.
    pub(super) records: Vec<StepRecord>,
}

impl LoopLadder {
    fn new(member: Member, plan: Ladder) -> Self {
        LoopLadder {
            member,
            plan,
            started: None,
            reached: None,
            drain_began: None,
            aborted_at: None,
            drained: false,
            records: Vec::new(),
        }
    }
}

impl<'r, A: Accounting> Server<'r, A> {
    /// Makes this server one of a group's loops: it answers health probes and stops by `plan`.
    pub(crate) fn join_group(mut self, member: Member, plan: Ladder) -> Self {
        let event_loop = self.event_loop_mut();
        event_loop.dispatcher.in_group = true;
        event_loop.ladder = Some(Box::new(LoopLadder::new(member, plan)));
        self
    }
}

impl<'r, A: Accounting> EventLoop<'r, A> {
    /// Out of file descriptors with none of this loop's own to free: the group's other loops
    /// free one each (`GroupShared::want_room`). Nothing for a loop alone.
    pub(super) fn ask_group_for_room(&self) {
        if let Some(ladder) = self.ladder.as_deref() {
            ladder.member.shared.want_room();
        }
    }

    /// A stop reached this loop (the group woke it, or a handler asked): start the group's
    /// ladder if nobody has, and enter the unready step once.
    pub(super) fn ladder_stop(&mut self, now: Instant) {
        let Some(ladder) = self.ladder.as_deref_mut() else {
            return;
        };
        if ladder.started.is_some() {
            return;
        }
        ladder.member.shared.stop();
        let t0 = ladder.member.shared.stop_at().unwrap_or(now);
        ladder.started = Some(t0);
        let unready = ladder.plan.unready();
        let forced = ladder.member.shared.force_requested();
        self.dispatcher.unready = true;
        self.dispatcher.keep_alive_off = true;
        self.record(Step::Unready, now, 0);
        if unready.is_zero() && !forced {
            // No unready time: admission closes now, not at the timer's turn. Left to the
            // timer, the events of the rest of this turn and of the next one (a stop from a
            // handler came at the turn's end, its `t0` after the turn's clock: a poll of up to
            // a millisecond) were admitted and served as if unready (QA embed18-2).
            self.enter_drain(now, true);
        } else {
            self.timers.schedule(t0 + unready, STOP_TIMER);
        }
    }

    /// One turn of the ladder, after the loop's events and timers; true when the loop may end.
    /// `buf` is the loop's read buffer (the close step reads what has arrived).
    pub(super) fn ladder_turn(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        let Some(ladder) = self.ladder.as_deref() else {
            return false;
        };
        let Some(t0) = ladder.started else {
            return false; // Not stopping: the only check on the request path.
        };
        let shared = Arc::clone(&ladder.member.shared);
        let (reached, plan) = (ladder.reached, ladder.plan);
        let force = shared.force_requested();
        if reached < Some(Step::Drain) && (force || now >= t0 + plan.unready()) {
            self.enter_drain(now, !force);
        }
        let status = self.poll_drain(now, buf);
        if force && self.reached() < Some(Step::Force) || self.force_due(now) {
            self.enter_force(now, buf, force);
        }
        self.report_drained_once(now, status);
        if shared.close_requested() && !self.ending.closing() {
            self.enter_close(now, buf);
        }
        if self.ending.holds_some() {
            let answered = self.answer_held_behind(now);
            if let Some(record) = self.ladder_mut().records.last_mut() {
                record.answered += answered;
            }
        }
        self.close_done(now)
    }

    fn ladder(&self) -> &LoopLadder {
        self.ladder.as_deref().expect("a loop of a group")
    }

    fn ladder_mut(&mut self) -> &mut LoopLadder {
        self.ladder.as_deref_mut().expect("a loop of a group")
    }

    fn reached(&self) -> Option<Step> {
        self.ladder().reached
    }

    /// Admission closes, answers close their connections, idle connections close after the
    /// linger; the listener keeps accepting. `record` is false when a forced stop passes
    /// through on its way to the force step.
    fn enter_drain(&mut self, now: Instant, record: bool) {
        if record {
            self.record(Step::Drain, now, 0);
        } else {
            self.ladder_mut().reached = Some(Step::Drain);
        }
        self.ladder_mut().drain_began = Some(now);
        self.dispatcher.begin_stop(now);
        self.control.set_phase(Phase::Stopping);
        let abort_at = now + self.ladder().plan.drain_timeout();
        self.timers.schedule(abort_at, STOP_TIMER);
        let keys: Vec<usize> = self.sockets.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.reschedule(key, now);
        }
    }

    /// Polls the accounting's drain; at the deadline it fires the abort signals of what is
    /// still out, which this records as the abort step (with what was out just before), and
    /// answers each request not whole yet the deadline's `503` + close (`buf`: the loop's read
    /// buffer, to read what has arrived first).
    fn poll_drain(&mut self, now: Instant, buf: &mut [u8]) -> StopStatus {
        let Some(began) = self.ladder().drain_began else {
            return StopStatus::Pending;
        };
        let deadline = began + self.ladder().plan.drain_timeout();
        let aborting = self.reached() == Some(Step::Drain) && now >= deadline;
        let before = aborting.then(|| self.outstanding(now));
        let in_flight = self.dispatcher.in_flight;
        let status = match self.dispatcher.poll_stop(now, in_flight) {
            // The loop's own count rules, as a single server's and a session's: an accounting
            // (the embedder's) that says complete with requests in flight waits for them.
            StopStatus::Complete if in_flight > 0 => StopStatus::Pending,
            status => status,
        };
        let status = match status {
            // The ladder's own deadline rules: an accounting still pending past it (one of
            // the embedder's) is escalated all the same.
            StopStatus::Pending if now >= deadline => StopStatus::Expired { aborted: 0 },
            status => status,
        };
        if let (Some(outstanding), StopStatus::Expired { .. }) = (before, status) {
            self.deadline_hit = true;
            // A request not whole at the deadline gets its `503` now, as the close step gives
            // it when nothing was out (and as hyper's abort step does): the force step, which
            // comes first when something is still out, closed it without a word (QA client27-1).
            let answered = self.answer_unadmitted(now, buf, Idle::Left);
            self.push_record(Step::Abort, now, outstanding, answered);
            self.ladder_mut().aborted_at = Some(now);
            let force_at = now + self.ladder().plan.force_after();
            self.timers.schedule(force_at, STOP_TIMER);
        }
        status
    }

    fn force_due(&self, now: Instant) -> bool {
        let ladder = self.ladder();
        ladder.reached == Some(Step::Abort)
            && ladder
                .aborted_at
                .is_some_and(|at| now >= at + ladder.plan.force_after())
    }

    /// Each request still out ends force-closed (its guards are released and its signal
    /// fires), and the report keeps what was out. Forced (a second signal), every connection
    /// closes now. Reached by the ladder's time, only what is still out ends: a connection
    /// with a request out closes once the answers before it are written, and the answers
    /// already computed on every other connection (a `503` the abort step gave, an answer its
    /// client reads slowly) go out as at the close step, within its linger (at most
    /// [`LINGER_LIMIT`](super::LINGER_LIMIT) after it): the force step closed them all, those answers cut or never
    /// sent (QA client30-1).
    fn enter_force(&mut self, now: Instant, buf: &mut [u8], forced: bool) {
        self.record(Step::Force, now, 0);
        // The deadline was hit if the abort step came first (`poll_drain` says so); forced
        // before it (a second signal), it was not, whatever is in flight: hyper's loops say
        // the same (`HyperReport::drain_deadline_hit`).
        let before = self.outcomes();
        if forced {
            self.force_close_all();
        } else {
            self.end_what_is_out(now, buf);
        }
        let _ = self.dispatcher.poll_stop(now, 0);
        let ended = since(self.outcomes(), before);
        if let Some(record) = self.ladder_mut().records.last_mut() {
            record.ended = ended;
        }
    }

    /// The outcomes counted so far on this loop (none when unaccounted).
    fn outcomes(&mut self) -> OutcomeCounts {
        self.read_ledger(Ledger::outcomes)
    }

    /// `read` of the accounting's ledger, or the default when it has none. `ledger` is the
    /// embedder's code, as the accounting's other calls: one that panics is counted in
    /// `panics` and read as no ledger, so the ladder and the report go on.
    fn read_ledger<R: Default>(&mut self, read: impl FnOnce(&Ledger) -> R) -> R {
        let accounting = &self.dispatcher.accounting;
        match caught(|| accounting.ledger().map(read)) {
            Some(figures) => figures.unwrap_or_default(),
            None => {
                self.dispatcher.stats.panics += 1;
                R::default()
            }
        }
    }

    /// Tells the group once this loop has drained: nothing admitted is out, and every
    /// connection open when the drain began has closed (or is lingering after its last
    /// answer), or the drain deadline has passed (an idle linger longer than the drain does not
    /// hold the group). Connections opened since do not hold it either: the close step answers
    /// them.
    fn report_drained_once(&mut self, now: Instant, status: StopStatus) {
        let ladder = self.ladder();
        let Some(began) = ladder.drain_began else {
            return;
        };
        let forced = ladder.reached >= Some(Step::Force);
        if ladder.drained || !(forced || status == StopStatus::Complete) {
            return;
        }
        let deadline_passed = now >= began + ladder.plan.drain_timeout();
        let old_open = !deadline_passed
            && self
                .sockets
                .iter()
                .any(|(_, s)| s.lingering.is_none() && s.accepted <= began);
        if forced || (self.dispatcher.in_flight == 0 && !old_open) {
            self.ladder_mut().drained = true;
            let member = &self.ladder().member;
            member.shared.report_drained(member.index);
        } else if old_open {
            // An idle connection's linger ends on its own timer; check again then.
            self.timers.schedule(now + CLOSE_LINGER, STOP_TIMER);
        }
    }

    /// The whole group has drained: take what is in the accept queue, close the listener,
    /// then the close a lone server's deadline reaches too ([`EventLoop::begin_close`]: read
    /// what has arrived, answer every connection still open and silent `503` +
    /// `connection: close`, let the answers being written go out).
    fn enter_close(&mut self, now: Instant, buf: &mut [u8]) {
        self.accept_from_backlog(now, false);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let answered = self.begin_close(now, buf, Idle::Answered);
        self.record(Step::Close, now, answered);
    }

    /// What is outstanding on this loop now: admitted requests, guards, connections by state.
    fn outstanding(&mut self, now: Instant) -> Outstanding {
        let mut outstanding = Outstanding {
            in_flight: self.dispatcher.in_flight,
            guards: self.read_ledger(Ledger::report),
            ..Outstanding::default()
        };
        // Grouped by route, so the report's size does not grow with the requests (6,400 in
        // their handlers printed one entry each, ~1 MB per step); one buffer for the names.
        let (mut tally, mut name) = (HandlerTally::default(), String::new());
        for (_, socket) in self.sockets.iter() {
            if socket.lingering.is_none() {
                let (state, age) = socket.http.activity(now);
                outstanding.count(state, age);
                for route in socket.http.routes_in_handler() {
                    name.clear();
                    name.push_str(route.method());
                    name.push(' ');
                    name.push_str(route.path());
                    tally.add(&name, age);
                }
            }
        }
        tally.finish(&mut outstanding);
        outstanding
    }

    fn record(&mut self, step: Step, now: Instant, answered: usize) {
        let outstanding = self.outstanding(now);
        self.push_record(step, now, outstanding, answered);
    }

    fn push_record(&mut self, step: Step, now: Instant, outstanding: Outstanding, answered: usize) {
        let ladder = self.ladder_mut();
        let t0 = ladder.started.unwrap_or(now);
        ladder.reached = Some(step);
        ladder.records.push(StepRecord {
            step,
            at: now.saturating_duration_since(t0),
            outstanding,
            answered,
            ended: OutcomeCounts::default(),
        });
    }
}

/// The outcomes counted between `before` and `after`; none where `after` is lower (an
/// embedder's accounting may answer with another ledger each time).
fn since(after: OutcomeCounts, before: OutcomeCounts) -> OutcomeCounts {
    OutcomeCounts {
        completed: after.completed.saturating_sub(before.completed),
        client_gone: after.client_gone.saturating_sub(before.client_gone),
        deadline_aborted: after
            .deadline_aborted
            .saturating_sub(before.deadline_aborted),
        force_closed: after.force_closed.saturating_sub(before.force_closed),
        dropped: after.dropped.saturating_sub(before.dropped),
    }
}
