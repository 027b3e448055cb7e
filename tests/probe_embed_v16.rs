//! QA probes, round 16, of the public API as a hostile or careless embedder uses it: a mio
//! server that never runs (its signals cannot be registered, its `ready` callback panics)
//! holding an accounting whose `Drop` panics, two `Guarded` hooks whose captures' `Drop`
//! panics, the hyper adapter's stop forced before its unready phase and a handler that answers
//! with another request's bundle, and both stacks' exit JSON key by key. Public API only. Each test that found a bug failed on `main` before its fix
//! (the test's doc says so); the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

#[path = "util/child.rs"]
mod child;
#[path = "util/drops.rs"]
mod drops;
#[path = "util/local_set.rs"]
mod local_set;
#[path = "util/quiet.rs"]
mod quiet;
mod util;

use std::time::Duration;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

const CHILD: &str = "REQGUARD_PROBE_V16_CHILD";

mod mio_embed {
    use super::*;
    use reqguard::http::{demo_routes, Accounting, Guarded, Router, Routes, ServerBuilder};
    use reqguard::Config;

    /// An accounting of the embedder's whose drain hook captured a value whose `Drop` panics.
    fn holding_a_panicking_drop() -> impl Accounting {
        let kept = drops::PanicsOnDrop;
        Guarded::embedded("server", Config::default()).after_drain(move || {
            let _kept = &kept;
        })
    }

    /// The lowest `n` file descriptor numbers not open in this process.
    fn lowest_free_fds(n: usize) -> Vec<u64> {
        let open: Vec<u64> = std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        (0..).filter(|fd| !open.contains(fd)).take(n).collect()
    }

    /// QA embed16-1. `ServerBuilder::serve` with `handle_signals(true)` whose signals cannot
    /// be registered (`# Errors`: "if the server cannot ... register its signals"; here the
    /// process is out of file descriptors once the server has its listener, poll and waker)
    /// returned its error through a `?` that dropped the server, and its accounting,
    /// uncaught: the accounting's panicking `Drop` escaped `serve` instead of the error (the
    /// case of QA embed15-5, one step later). Now `serve` returns the error. In a child: the
    /// descriptor limit is the process's.
    #[test]
    fn a_server_whose_signals_cannot_be_registered_returns_its_error() {
        if !child::is_child(CHILD) {
            child::assert_passes_in_child(
                CHILD,
                "mio_embed::a_server_whose_signals_cannot_be_registered_returns_its_error",
            );
            return;
        }
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = holding_a_panicking_drop();
        // The listener, the poll and its waker take the three lowest free descriptors; the
        // signal pipe finds none.
        let third = lowest_free_fds(3)[2];
        let limit = rustix::process::Rlimit {
            current: Some(third + 1),
            maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ServerBuilder::new()
                .handle_signals(true)
                .serve(&router, accounting, |_, stop| stop.stop())
        }));
        let Ok(served) = served else {
            std::mem::forget(served); // the escaped payload: not dropped here
            panic!("a drop's panic escaped serve");
        };
        let error = served.expect_err("the signals were registered");
        assert_eq!(error.raw_os_error(), Some(24), "EMFILE expected: {error}");
    }

    /// QA embed16-1. `ServerBuilder::serve` whose `ready` callback (the embedder's) panics:
    /// the panic unwound past the server, which dropped its accounting while unwinding, and
    /// that accounting's `Drop` panicked too: the process aborted ("panic in a destructor
    /// during cleanup"; the child died of SIGABRT). Now the server is dropped caught and the
    /// callback's own panic reaches the caller.
    #[test]
    fn a_ready_callback_that_panics_leaves_the_accounting_dropped_caught() {
        if !child::is_child(CHILD) {
            child::assert_passes_in_child(
                CHILD,
                "mio_embed::a_ready_callback_that_panics_leaves_the_accounting_dropped_caught",
            );
            return;
        }
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ServerBuilder::new().serve(&router, holding_a_panicking_drop(), |_, _| {
                std::panic::panic_any("the ready callback")
            })
        }));
        let payload = served
            .map(drop)
            .expect_err("ready's panic reaches the caller");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the ready callback"),
            "the caller gets ready's own panic"
        );
    }
}

mod hyper_embed {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::http::Step;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperReport, HyperServer, Options};

    /// Serves a `hello` server with `options` on this thread until `stop` or `force`, bounded.
    fn serve_until(
        options: Options,
        stop: impl std::future::Future<Output = ()>,
        force: impl std::future::Future<Output = ()>,
    ) -> HyperReport {
        let heap = reqguard::engines::Heap::new();
        let core =
            reqguard::ServerCore::embedded(heap.alloc("server"), reqguard::Config::default());
        let server = HyperServer::new(core, hello).options(options);
        local_set::block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let serving = server.serve_with_force(listener, stop, force);
            tokio::time::timeout(HANG, serving)
                .await
                .expect("the forced server stopped")
        })
    }

    /// QA embed16-2. A hyper server with `Options::unready` forced before its unready phase
    /// began (`serve_with_force`'s force alone, or with the stop): docs/hyper.md says a force
    /// "skips straight to the force-close"; the report's steps said the server went unready
    /// (a step at 0 ms it never spent: the force ended it at once). Now the unready step is
    /// not entered (as a step the stop does not need is not, docs/server.md); the drain step
    /// is the stop's first, as with no unready time.
    #[test]
    fn a_force_before_the_unready_phase_skips_it() {
        let unready = Options::default().with_unready(Duration::from_secs(3600));
        let forces_alone = serve_until(unready, std::future::pending(), std::future::ready(()));
        let forces_with_the_stop =
            serve_until(unready, std::future::ready(()), std::future::ready(()));
        let group = reqguard::tokio_hyper::HyperGroup::new()
            .loops(2)
            .spawn(move |_| {
                let heap = reqguard::engines::Heap::new();
                let core = reqguard::ServerCore::embedded(
                    heap.alloc("server"),
                    reqguard::Config::default(),
                );
                HyperServer::new(core, hello).options(unready)
            })
            .expect("the group serves");
        group.stopper().force();
        let forced_group = util::bounded::within(HANG, move || group.wait())
            .expect("the forced group stopped")
            .expect("the group's report");
        let reports = [forces_alone, forces_with_the_stop]
            .into_iter()
            .chain(forced_group.loops);
        for report in reports {
            let steps: Vec<Step> = report.steps.iter().map(|s| s.step).collect();
            assert!(report.forced, "{report}");
            assert!(!steps.contains(&Step::Unready), "{steps:?}");
            assert_eq!(steps.first(), Some(&Step::Drain), "{steps:?}");
        }
    }

    pub(super) async fn hello(
        _this: reqguard::engines::Handle<&'static str>,
        _request: hyper::Request<hyper::body::Incoming>,
        bundle: Bundle,
    ) -> Result<reqguard::tokio_hyper::Reply<Full<Bytes>>, HandlerError> {
        let body = Full::new(Bytes::from_static(b"hello"));
        Ok(bundle.respond(hyper::Response::new(body)))
    }
}

mod hyper_swap {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Options, Reply};
    use std::cell::RefCell;
    use std::rc::Rc;
    use util::bounded;
    use util::hyper_thread::HyperThread;

    /// QA embed16-3 (docs/hyper.md, "Counting"). A handler that answers with *another*
    /// request's bundle (a runtime whose `Response` was built from the wrong `Request` object)
    /// while its own is handed to a task of its own, later aborted by the drain deadline: its
    /// request was counted `served` (the answer's head) and in `HyperReport::aborted()` (its
    /// own bundle's outcome, *deadline aborted*): `served` 2, `aborted()` 1 for 2 requests. Now
    /// the dispatch sees the answer's bundle is not its own and counts that abort in
    /// `aborted_after_head`. The request that lent its bundle failed (`500`), and ends
    /// *completed* with the other's body.
    #[test]
    fn an_answer_with_another_requests_bundle_is_counted_once() {
        quiet::quiet_panics();
        let server = HyperThread::spawn(move |core| {
            let lent: Rc<RefCell<Option<Bundle>>> = Rc::default();
            let swaps = move |_this, request: hyper::Request<_>, bundle: Bundle| {
                let lent = Rc::clone(&lent);
                let lends = request.uri().path() == "/lend";
                async move {
                    if lends {
                        *lent.borrow_mut() = Some(bundle);
                        return Err::<Reply<Full<Bytes>>, HandlerError>("lent its bundle".into());
                    }
                    tokio::task::spawn_local(async move {
                        bundle.aborted().await;
                        drop(bundle);
                    });
                    let other = lent.borrow_mut().take().expect("lent first");
                    let body = Full::new(Bytes::from_static(b"another's"));
                    Ok(other.respond(hyper::Response::new(body)))
                }
            };
            HyperServer::new(core, swaps)
                .options(Options::default().with_drain_timeout(Duration::from_millis(100)))
        });
        assert_eq!(util::get(server.addr, "/lend").status, 500);
        assert_eq!(util::get(server.addr, "/swap").status, 200);
        let report = bounded::within(HANG, move || server.stop()).expect("the stop hung");
        let (stats, outcomes) = (&report.stats, &report.outcomes);
        assert_eq!(
            (
                outcomes.total(),
                outcomes.completed,
                outcomes.deadline_aborted
            ),
            (2, 1, 1),
            "{report}"
        );
        assert_eq!(
            stats.served + stats.undelivered + report.aborted(),
            outcomes.total(),
            "one request counted twice\n{report}"
        );
    }
}

mod exit_json {
    use super::*;
    use reqguard::http::Limits;
    use util::hyper_thread::HyperThread;

    /// The keys of a JSON object's top level, in order (no value of these reports holds a
    /// quote or a brace inside a string).
    fn top_level_keys(json: &str) -> Vec<&str> {
        let (mut keys, mut depth, mut at) = (Vec::new(), 0, 0);
        while let Some(offset) = json[at..].find(['{', '}', '[', ']', '"']) {
            let i = at + offset;
            at = i + 1;
            match json.as_bytes()[i] {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {
                    let end = at + json[at..].find('"').expect("a closing quote");
                    if depth == 1 && json[end + 1..].starts_with(':') {
                        keys.push(&json[at..end]);
                    }
                    at = end + 1;
                }
            }
        }
        keys
    }

    /// The keys both stacks' exit JSON starts with, in order (`src/report_json.rs`).
    const COMMON: [&str; 17] = [
        "served",
        "refused",
        "aborted",
        "leaked",
        "drain_ms",
        "rejected",
        "panics",
        "refused_finalized",
        "refused_stopped",
        "connections",
        "connections_refused",
        "connections_evicted",
        "accept_backoffs",
        "force_closed",
        "drain_deadline_hit",
        "undelivered",
        "rejected_admitted", // since round 32: the identity's term (docs/server.md)
    ];

    /// The exit JSON of both stacks, key by key, as docs/hyper.md describes it: the same
    /// keys first, in the same order (a script reads either stack's line alike); then the
    /// mio server's `buffered_high_water` (the hyper adapter does not see hyper's buffers),
    /// or the hyper-only counts `failed`, `answered_after_abort`, `aborted_after_head`,
    /// `unanswered_not_aborted` (since round 22); then
    /// `outcomes`; the hyper line then says `"stack":"hyper"` and gives its stop's `steps`
    /// (a single mio server runs no ladder: no steps). Before, docs/hyper.md said the hyper
    /// line carried its counts "beside the mio server's keys" (it has no
    /// `buffered_high_water`) and named neither `stack` nor a single server's `steps`.
    #[test]
    fn both_stacks_exit_json_keys_are_the_documented_ones() {
        let mio = util::demo_server(Limits::default());
        assert_eq!(util::get(mio.addr(), "/").status, 200);
        let mio = mio.stop().expect("the mio report").to_json();
        let hyper = HyperThread::spawn(|core| {
            reqguard::tokio_hyper::HyperServer::new(core, super::hyper_embed::hello)
        });
        assert_eq!(util::get(hyper.addr, "/").status, 200);
        let hyper = hyper.stop().to_json();
        let mio_own = ["buffered_high_water", "outcomes"];
        let hyper_own = [
            "failed",
            "answered_after_abort",
            "aborted_after_head",
            "unanswered_not_aborted",
            "outcomes",
            "stack",
            "steps",
        ];
        let expected = |own: &[&'static str]| [&COMMON[..], own].concat();
        assert_eq!(top_level_keys(&mio), expected(&mio_own), "{mio}");
        assert_eq!(top_level_keys(&hyper), expected(&hyper_own), "{hyper}");
        assert!(hyper.contains(",\"stack\":\"hyper\","), "{hyper}");
    }
}

mod guarded_hooks {
    use super::*;
    use reqguard::http::{demo_routes, Guarded, ServerBuilder};
    use reqguard::Config;

    /// QA embed16-6. `Guarded::after_stop` and `after_drain` add up ("each runs after those set
    /// before it"; "a hook that panics is caught"), and an accounting's captures are dropped
    /// caught (QA embed8-3, embed13-2). Two hooks of one kind whose captures' `Drop` panics
    /// (a runtime's two `Request` maps, each dropped with a panic): the chain that held them
    /// dropped the first, whose panic unwound through the drop of the second, which panicked
    /// too: the process aborted (the child died of SIGABRT) at the drain's end (`after_drain`,
    /// run then dropped) or when the loop dropped its accounting (`after_stop`). Now each
    /// hook of the chain is dropped on its own, caught, and `stop` returns the report.
    #[test]
    fn two_hooks_whose_captures_panic_on_drop_leave_the_report() {
        if !child::is_child(CHILD) {
            child::assert_passes_in_child(
                CHILD,
                "guarded_hooks::two_hooks_whose_captures_panic_on_drop_leave_the_report",
            );
            return;
        }
        quiet::quiet_panics();
        for after_drain in [false, true] {
            let running = ServerBuilder::new()
                .spawn(
                    move || {
                        let (first, second) = (drops::PanicsOnDrop, drops::PanicsOnDrop);
                        let first = move || {
                            let _kept = &first;
                        };
                        let second = move || {
                            let _kept = &second;
                        };
                        let guarded = Guarded::embedded("server", Config::default());
                        if after_drain {
                            guarded.after_drain(first).after_drain(second)
                        } else {
                            guarded.after_stop(first).after_stop(second)
                        }
                    },
                    demo_routes,
                )
                .expect("the server serves");
            assert_eq!(util::get(running.addr(), "/").status, 200);
            let report = util::bounded::within(HANG, move || running.stop())
                .expect("the stop hung")
                .unwrap_or_else(|err| panic!("after_drain {after_drain}: {err}"));
            assert_eq!((report.stats.served, report.leaked), (1, 0), "{report}");
        }
    }
}
