//! The stop ladder of a loop group: unready, drain, abort, force, then close.
//!
//! ```text
//! stop (SIGTERM)    T0
//!  │ unready        T0 .. T0+unready       /healthz/ready 503, /healthz/live 200, every answer
//!  │                                       `connection: close`, admission open, listeners accept
//!  │ drain          T1 = T0+unready        admission closes: late requests 503 close; in-flight
//!  │                                       requests finish; idle connections close after the linger
//!  │ abort          T2 = T1+drain_timeout  (only if requests are still out) their abort signals fire;
//!  │                                       requests not whole get 503 close
//!  │ force          T3 = T2+force_after    (only if still out) sockets close; outcomes recorded
//!  │ close          every loop drained     listeners close together; idle connections get 503 close;
//!  │                                       each connection lingers until its socket has sent its
//!  │                                       answers (at most 5 s: docs/server.md, step 8)
//!  ▼ exit
//! a second SIGTERM/SIGINT jumps to force at once
//! ```
//!
//! [`Ladder`] is the configuration, set once for the whole group; each loop runs the same
//! timeline from the group's stop instant and records each step it reaches as a [`StepRecord`]
//! in its [`ServerReport::steps`](crate::http::ServerReport::steps).

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use super::limits::MAX_TIMEOUT;
use crate::admit::OutcomeCounts;
use crate::ledger::LeakReport;

/// The stop ladder's timings, configured once for a [`LoopGroup`](crate::http::LoopGroup).
///
/// Setters are named `with_*` and getters are plain (`unready()`), as [`Config`](crate::Config)'s
/// (Rust API guideline C-GETTER); the `get_*` getters of 0.2 are deprecated.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reqguard::http::Ladder;
///
/// let ladder = Ladder::default()
///     .with_unready(Duration::from_secs(5)) // load balancers see /healthz/ready 503 first
///     .with_drain_timeout(Duration::from_secs(20))
///     .with_force_after(Duration::from_secs(2))
///     .with_idle_linger(Duration::from_millis(500)); // idle keep-alive: half a second more
/// assert_eq!(ladder.unready(), Duration::from_secs(5));
/// assert_eq!(ladder.drain_timeout(), Duration::from_secs(20));
/// assert_eq!(ladder.force_after(), Duration::from_secs(2));
/// assert_eq!(ladder.idle_linger(), Duration::from_millis(500));
/// assert_eq!(ladder.total(), Duration::from_secs(27));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ladder {
    unready: Duration,
    drain_timeout: Duration,
    force_after: Duration,
    idle_linger: Duration,
}

impl Default for Ladder {
    /// No unready time, 5 s of drain, 1 s between the abort and the force, idle connections
    /// closed as the drain begins.
    fn default() -> Self {
        Ladder {
            unready: Duration::ZERO,
            drain_timeout: Duration::from_secs(5),
            force_after: Duration::from_secs(1),
            idle_linger: Duration::ZERO,
        }
    }
}

impl Ladder {
    /// How long the group stays unready (readiness 503, keep-alive off, still serving) before
    /// the drain begins. Cover the time a load balancer takes to stop sending.
    pub fn with_unready(mut self, time: Duration) -> Self {
        self.unready = time;
        self
    }

    /// How long the drain waits for in-flight requests before their abort signals fire.
    /// Overrides [`Limits::drain_timeout`](crate::http::Limits::with_drain_timeout).
    pub fn with_drain_timeout(mut self, time: Duration) -> Self {
        self.drain_timeout = time;
        self
    }

    /// How long after the abort the sockets of requests still out are closed.
    pub fn with_force_after(mut self, time: Duration) -> Self {
        self.force_after = time;
        self
    }

    /// How long an idle keep-alive connection stays open once the drain begins (zero: closed
    /// at once). Overrides [`Limits::stop_linger`](crate::http::Limits::with_stop_linger).
    pub fn with_idle_linger(mut self, time: Duration) -> Self {
        self.idle_linger = time;
        self
    }

    /// See [`with_unready`](Ladder::with_unready).
    pub fn unready(&self) -> Duration {
        self.unready
    }

    /// See [`with_drain_timeout`](Ladder::with_drain_timeout).
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// See [`with_force_after`](Ladder::with_force_after).
    pub fn force_after(&self) -> Duration {
        self.force_after
    }

    /// See [`with_idle_linger`](Ladder::with_idle_linger).
    pub fn idle_linger(&self) -> Duration {
        self.idle_linger
    }

    /// The longest a stop can take before the force step: unready + drain + force-after. Set
    /// Kubernetes' `terminationGracePeriodSeconds` above it.
    pub fn total(&self) -> Duration {
        self.unready
            .saturating_add(self.drain_timeout)
            .saturating_add(self.force_after)
    }

    /// Checks that every step's time is at most [`MAX_TIMEOUT`] (one year): longer is a
    /// mistake, and far longer would overflow the loop's clock arithmetic.
    /// [`LoopGroup::spawn`](crate::http::LoopGroup::spawn) refuses a ladder that fails it.
    ///
    /// # Errors
    ///
    /// A message naming the first step over the limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use reqguard::http::Ladder;
    ///
    /// assert!(Ladder::default().validate().is_ok());
    /// let err = Ladder::default().with_unready(Duration::MAX).validate().unwrap_err();
    /// assert!(err.contains("unready"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        for (name, time) in [
            ("unready", self.unready),
            ("drain_timeout", self.drain_timeout),
            ("force_after", self.force_after),
            ("idle_linger", self.idle_linger),
        ] {
            if time > MAX_TIMEOUT {
                return Err(format!("invalid Ladder: {name} is over one year"));
            }
        }
        Ok(())
    }
}

// The 0.2 names of the getters, kept one release (deprecated): each forwards to its plain name
// (C-GETTER).
impl Ladder {
    /// Renamed [`unready`](Ladder::unready).
    #[deprecated(since = "0.3.0", note = "renamed `unready`: C-GETTER")]
    pub fn get_unready(&self) -> Duration {
        self.unready()
    }

    /// Renamed [`drain_timeout`](Ladder::drain_timeout).
    #[deprecated(since = "0.3.0", note = "renamed `drain_timeout`: C-GETTER")]
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout()
    }

    /// Renamed [`force_after`](Ladder::force_after).
    #[deprecated(since = "0.3.0", note = "renamed `force_after`: C-GETTER")]
    pub fn get_force_after(&self) -> Duration {
        self.force_after()
    }

    /// Renamed [`idle_linger`](Ladder::idle_linger).
    #[deprecated(since = "0.3.0", note = "renamed `idle_linger`: C-GETTER")]
    pub fn get_idle_linger(&self) -> Duration {
        self.idle_linger()
    }
}

/// A step of the ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Readiness answers 503 and every answer closes its connection; requests are still served.
    Unready,
    /// Admission is closed; in-flight requests finish; idle connections close.
    Drain,
    /// The drain deadline passed with requests out: their abort signals fired, and each
    /// request not whole yet (a head in progress, a body still coming) was answered `503` close.
    Abort,
    /// Sockets of requests still out were closed (a second signal comes straight here).
    Force,
    /// The whole group drained: listeners closed, connections still open answered 503 close.
    Close,
}

impl Step {
    /// The step's name in reports: `unready`, `drain`, `abort`, `force`, `close`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Unready => "unready",
            Step::Drain => "drain",
            Step::Abort => "abort",
            Step::Force => "force",
            Step::Close => "close",
        }
    }
}

/// What a connection was doing when a step began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ConnState {
    /// Waiting for the next request (kept alive, or new and silent).
    Idle,
    /// Part of a request has arrived.
    Reading,
    /// A request is admitted and its handler has not answered (a deferred response).
    InHandler,
    /// An answer is being written.
    Writing,
}

impl ConnState {
    /// Every state, in report order.
    pub const ALL: [ConnState; 4] = [
        ConnState::Idle,
        ConnState::Reading,
        ConnState::InHandler,
        ConnState::Writing,
    ];

    /// The state's name in reports: `idle`, `reading`, `in_handler`, `writing`.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Idle => "idle",
            ConnState::Reading => "reading",
            ConnState::InHandler => "in_handler",
            ConnState::Writing => "writing",
        }
    }
}

/// Connections in one [`ConnState`] when a step began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCount {
    /// How many.
    pub count: usize,
    /// The longest any of them had been in that state (since its last input or answer).
    pub oldest: Duration,
}

/// What was outstanding on one loop when a step began.
///
/// Its size is bounded whatever the clients do: counts, guards by kind and mint site (sites are
/// places in the code), four connection states, and at most [`Outstanding::MAX_ROUTES`] routes
/// of at most [`Outstanding::MAX_ROUTE_LEN`] bytes each in [`in_handler`](Outstanding::in_handler),
/// the requests on any other route summed in
/// [`in_handler_other`](Outstanding::in_handler_other).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outstanding {
    /// Admitted requests not yet ended.
    pub in_flight: usize,
    /// Guards out, by kind and mint site (sites in debug and `leak-check` builds).
    pub guards: LeakReport,
    /// Open connections by state, indexed like [`ConnState::ALL`].
    pub connections: [StateCount; 4],
    /// The requests still in their handler (deferred answers), grouped by route: one
    /// [`HandlerRoute`] per route with its count and oldest age, the routes with the most
    /// requests first (then the oldest, then by name), at most [`Outstanding::MAX_ROUTES`].
    pub in_handler: Vec<HandlerRoute>,
    /// The requests in their handler on the routes past the first
    /// [`MAX_ROUTES`](Outstanding::MAX_ROUTES): how many, and the oldest age among them.
    pub in_handler_other: StateCount,
}

/// The requests still in their handler on one route when a step began.
///
/// Before 0.3 the report listed each request (`HandlerRequest { route, age }`), so its size
/// grew with the clients: 6,400 requests in their handlers printed about 1 MB per step.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerRoute {
    /// The route, as `METHOD /path` (`GET /delay`), cut to at most
    /// [`Outstanding::MAX_ROUTE_LEN`] bytes (on the hyper adapter the path is the client's).
    pub route: String,
    /// How many requests on this route were in their handler.
    pub count: usize,
    /// The longest any of them had waited (since its connection's last input).
    pub oldest: Duration,
}

/// The 0.2 name of [`HandlerRoute`], which now groups the requests of a route: `age` is
/// [`HandlerRoute::oldest`], and [`HandlerRoute::count`] says how many.
#[deprecated(
    since = "0.3.0",
    note = "in-handler requests are grouped by route: `HandlerRoute` (`count`, `oldest`)"
)]
pub type HandlerRequest = HandlerRoute;

/// Groups the requests in their handler by route as a step is recorded (both stacks):
/// memory for the routes seen, only while the step is recorded.
#[derive(Default)]
pub(crate) struct HandlerTally {
    routes: HashMap<String, StateCount>,
}

impl HandlerTally {
    /// One request in its handler on `route` (cut to [`Outstanding::MAX_ROUTE_LEN`]), waiting
    /// for `age`. Allocates only for a route not seen yet.
    pub(crate) fn add(&mut self, route: &str, age: Duration) {
        let route = cut(route, Outstanding::MAX_ROUTE_LEN);
        let group = match self.routes.get_mut(route) {
            Some(group) => group,
            None => self.routes.entry(route.to_owned()).or_default(),
        };
        group.count += 1;
        group.oldest = group.oldest.max(age);
    }

    /// The groups into `outstanding`: the [`Outstanding::MAX_ROUTES`] with the most requests
    /// (then the oldest, then by name), the rest summed in `in_handler_other`.
    pub(crate) fn finish(self, outstanding: &mut Outstanding) {
        let mut routes: Vec<HandlerRoute> = self
            .routes
            .into_iter()
            .map(|(route, c)| HandlerRoute {
                route,
                count: c.count,
                oldest: c.oldest,
            })
            .collect();
        routes.sort_by(|a, b| {
            (b.count, b.oldest)
                .cmp(&(a.count, a.oldest))
                .then_with(|| a.route.cmp(&b.route))
        });
        let keep = routes.len().min(Outstanding::MAX_ROUTES);
        let other = &mut outstanding.in_handler_other;
        for rest in routes.drain(keep..) {
            other.count += rest.count;
            other.oldest = other.oldest.max(rest.oldest);
        }
        outstanding.in_handler = routes;
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Outstanding {
    /// At most this many routes in [`in_handler`](Outstanding::in_handler) (the others are
    /// summed in [`in_handler_other`](Outstanding::in_handler_other)).
    pub const MAX_ROUTES: usize = 16;

    /// A route in [`in_handler`](Outstanding::in_handler) is cut to at most this many bytes.
    pub const MAX_ROUTE_LEN: usize = 128;

    /// The requests in their handler, on every route.
    pub fn requests_in_handler(&self) -> usize {
        self.in_handler.iter().map(|r| r.count).sum::<usize>() + self.in_handler_other.count
    }

    /// The connections in `state`.
    pub fn connections_in(&self, state: ConnState) -> StateCount {
        self.connections[state as usize]
    }

    /// Open connections in all.
    pub fn open_connections(&self) -> usize {
        self.connections.iter().map(|c| c.count).sum()
    }

    pub(crate) fn count(&mut self, state: ConnState, age: Duration) {
        let slot = &mut self.connections[state as usize];
        slot.count += 1;
        slot.oldest = slot.oldest.max(age);
    }
}

/// One step a loop reached: when, and what was outstanding as it began.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepRecord {
    /// Which step.
    pub step: Step,
    /// When it began, from the group's stop.
    pub at: Duration,
    /// What was outstanding as it began.
    pub outstanding: Outstanding,
    /// Connections answered `503` with `connection: close` by this step itself: the abort
    /// step's answer to requests not whole at the deadline, the close step's to connections
    /// still open and silent or not whole; zero for the other steps.
    pub answered: usize,
    /// How the requests this step ended ended (the force step: each request still out, as
    /// `force_closed`, or `deadline_aborted` when the abort step reached it first; zero for
    /// the other steps).
    pub ended: OutcomeCounts,
}

impl StepRecord {
    /// The record as one JSON object.
    pub fn to_json(&self) -> String {
        let o = &self.outstanding;
        let mut json = format!(
            "{{\"step\":\"{}\",\"at_ms\":{:.3},\"in_flight\":{},\"answered\":{},\"guards\":[",
            self.step.name(),
            self.at.as_secs_f64() * 1e3,
            o.in_flight,
            self.answered,
        );
        for (i, site) in o.guards.sites().iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let at = site
                .location
                .map_or(String::new(), |l| format!("{}:{}", l.file(), l.line()));
            let _ = write!(
                json,
                "{comma}{{\"kind\":\"{}\",\"site\":\"{}\",\"count\":{}}}",
                site.kind.noun(1),
                at.replace('\\', "/"),
                site.count
            );
        }
        json.push_str("],\"in_handler\":[");
        for (i, group) in o.in_handler.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let route: String = group
                .route
                .chars()
                .map(|c| match c {
                    '\\' | '"' => '_',
                    c if c.is_control() => '_',
                    c => c,
                })
                .collect();
            let _ = write!(
                json,
                "{comma}{{\"route\":\"{route}\",\"count\":{},\"oldest_ms\":{:.3}}}",
                group.count,
                group.oldest.as_secs_f64() * 1e3
            );
        }
        let other = o.in_handler_other;
        let _ = write!(
            json,
            "],\"in_handler_other\":{{\"count\":{},\"oldest_ms\":{:.3}}},\"connections\":{{",
            other.count,
            other.oldest.as_secs_f64() * 1e3
        );
        for (i, state) in ConnState::ALL.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let c = o.connections_in(*state);
            let _ = write!(
                json,
                "{comma}\"{}\":{{\"count\":{},\"oldest_ms\":{:.3}}}",
                state.name(),
                c.count,
                c.oldest.as_secs_f64() * 1e3
            );
        }
        let _ = write!(json, "}},\"ended\":{}}}", self.ended.to_json());
        json
    }
}

impl fmt::Display for StepRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.outstanding;
        write!(
            f,
            "{:<8} at {:>9.3} ms: {} in flight",
            self.step.name(),
            self.at.as_secs_f64() * 1e3,
            o.in_flight
        )?;
        for state in ConnState::ALL {
            let c = o.connections_in(state);
            if c.count > 0 {
                write!(
                    f,
                    ", {} {} (oldest {:.0} ms)",
                    c.count,
                    state.name(),
                    c.oldest.as_secs_f64() * 1e3
                )?;
            }
        }
        if self.answered > 0 {
            write!(f, ", {} answered 503 close", self.answered)?;
        }
        if self.ended != OutcomeCounts::default() {
            write!(f, "; ended: {}", self.ended)?;
        }
        for group in &o.in_handler {
            write!(
                f,
                "\n           {} {} in its handler, the oldest for {:.0} ms",
                group.count,
                group.route,
                group.oldest.as_secs_f64() * 1e3
            )?;
        }
        let other = o.in_handler_other;
        if other.count > 0 {
            write!(
                f,
                "\n           {} on other routes in their handler, the oldest for {:.0} ms",
                other.count,
                other.oldest.as_secs_f64() * 1e3
            )?;
        }
        for site in o.guards.sites() {
            write!(
                f,
                "\n           {} {} out",
                site.count,
                site.kind.noun(site.count)
            )?;
            if let Some(at) = site.location {
                write!(f, ", minted at {}:{}", at.file(), at.line())?;
            }
        }
        Ok(())
    }
}
