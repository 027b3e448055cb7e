//! The PR's regression end to end, with the server's wrapper living in QuickJS: the reference
//! mio server over real 127.0.0.1 sockets, a kept-alive connection, `stop()`, QuickJS's cycle
//! collector, and the late request on the kept-alive connection answered 503.
//!
//! The engine runs on the server thread (rquickjs' `Runtime` is `!Send`): the accounting factory
//! builds the runtime, the wrapper and the core there. The core's handles keep the runtime
//! alive, so the drop order does not matter. The finalization of the wrapper is reported to the test thread by a
//! JS `FinalizationRegistry` whose callback sends on a channel.
#![cfg(all(feature = "quickjs", feature = "server"))]

mod util;

use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use reqguard::http::{
    demo_routes, Guarded, Limits, Reply, Request, Response, Router, Running, ServerBuilder,
};
use reqguard::{Config, DowngradePolicy, ServerCore};
use rquickjs::{Context, Function, Object, Runtime};
use util::Client;

const WAIT: Duration = Duration::from_secs(10);

fn limits() -> Limits {
    // Idle connections stay open after stop long enough for the late request to arrive; the
    // drain deadline only bounds the test if something goes wrong.
    Limits::default()
        .with_idle_timeout(Duration::from_secs(30))
        .with_stop_linger(Duration::from_secs(20))
        .with_drain_timeout(Duration::from_secs(20))
}

/// Spawns the server: the wrapper is a cyclic JS object (only the collector frees it), watched
/// by a `FinalizationRegistry`; `collect_on_stop` runs `Runtime::run_gc` (and the jobs it
/// queues) right after stop. `GET /hold` reports its admission on `admitted` and answers after
/// a minute, so it stays in flight until its client goes away.
fn spawn(
    policy: DowngradePolicy,
    collect_on_stop: bool,
) -> (Running, Receiver<String>, Receiver<()>) {
    let (finalized_tx, finalized) = mpsc::channel::<String>();
    let (admitted_tx, admitted) = mpsc::channel::<()>();
    let accounting = move || {
        let rt = Runtime::new().expect("runtime");
        rt.set_gc_threshold(usize::MAX); // cycles die at the named run_gc only
        reqguard::engines::quickjs::prepare(&rt).expect("prepared");
        let context = Context::full(&rt).expect("context");
        let core = context.with(|ctx| {
            let report = Function::new(ctx.clone(), move |held: String| {
                let _ = finalized_tx.send(held);
            })
            .expect("report");
            ctx.globals().set("report", report).expect("global");
            let server: Object<'_> = ctx
                .eval(
                    r#"(() => {
                        globalThis.registry = new FinalizationRegistry(held => report(held));
                        const server = { fetch() { return "hello"; } };
                        server.self = server; // a cycle: only the collector frees it
                        registry.register(server, "server wrapper");
                        return server; // not a top-level `const`: that would be a global root
                    })()"#,
                )
                .expect("server object");
            ServerCore::quickjs(&context, server, Config::default().with_downgrade(policy))
                .expect("core")
        });
        let guarded = Guarded::new(core, context.clone());
        if collect_on_stop {
            guarded.after_stop(move || {
                rt.run_gc(); // not inside `with`: the Runtime variant
                while rt.execute_pending_job().expect("a job threw") {}
            })
        } else {
            guarded
        }
    };
    let routes = move |router: &mut Router<'_>| {
        demo_routes(router);
        router.route(
            "GET",
            "/hold",
            move |_: &Request<'_>, _: &mut Response<'_>| {
                let _ = admitted_tx.send(());
                Reply::After {
                    delay: Duration::from_secs(60),
                    token: 0,
                }
            },
        );
    };
    let running = ServerBuilder::new()
        .limits(limits())
        .spawn(accounting, routes)
        .expect("server");
    (running, finalized, admitted)
}

fn hold(running: &Running, admitted: &Receiver<()>) -> Client {
    let mut client = Client::connect(running.addr());
    client.send(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n");
    admitted
        .recv_timeout(WAIT)
        .expect("the held request was admitted");
    client
}

#[test]
fn kept_alive_request_after_stop_and_run_gc_gets_503_and_the_drain_completes() {
    let (running, finalized, admitted) = spawn(DowngradePolicy::OnStop, true);

    let mut kept = Client::connect(running.addr());
    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.text()), (200, "hello"));
    assert!(!answer.closes(), "kept alive");
    let held = hold(&running, &admitted);

    // Stop: the core drops its strong Persistent; the cycle survives until run_gc, which the
    // stop hook runs before stop_and_wait returns, together with the registry's job.
    assert!(running.stop_handle().stop_and_wait(WAIT));
    assert_eq!(
        finalized.recv_timeout(WAIT).as_deref(),
        Ok("server wrapper"),
        "QuickJS collected the wrapper"
    );

    // The PR's late request on the kept-alive connection: 503, and the connection closes.
    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(answer.status, 503);
    assert!(answer.closes());
    assert!(kept.is_closed_by_server());
    drop(kept);

    // The in-flight request's client goes away: its guards are released, the drain completes.
    drop(held);
    let report = running.join().unwrap();
    assert_eq!(report.stats.refused_finalized, 1, "{report}");
    assert_eq!(report.stats.refused_stopped, 0, "{report}");
    assert_eq!(report.stats.served, 1);
    assert_eq!(report.stats.aborted, 1);
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    assert!(report.leaks.is_empty());
    assert!(report.drain_time.is_some(), "the drain completed");
    assert!(!report.drain_deadline_hit);
}

/// The control: the same server with no collection after stop. The wrapper is a cycle, so it
/// is downgraded but still upgradable; the late request is refused because the server is
/// stopping, not because the wrapper is gone. The two tests differ only in the collector.
#[test]
fn without_run_gc_the_cyclic_wrapper_still_upgrades_and_the_refusal_is_stopping() {
    let (running, finalized, admitted) = spawn(DowngradePolicy::OnStop, false);
    let mut kept = Client::connect(running.addr());
    assert_eq!(
        kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    let held = hold(&running, &admitted);
    assert!(running.stop_handle().stop_and_wait(WAIT));

    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (503, true));
    drop(kept);
    drop(held);
    let report = running.join().unwrap();
    assert_eq!(report.stats.refused_stopped, 1, "{report}");
    assert_eq!(report.stats.refused_finalized, 0, "{report}");
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    assert!(report.drain_time.is_some());
    assert!(
        finalized.try_recv().is_err(),
        "never collected while the server ran (the runtime's teardown runs no callbacks)"
    );
}

/// `OnDrain`: the collector runs at stop while a request is in flight, and cannot free the
/// wrapper (still strong); the late request is refused as stopping.
#[test]
fn on_drain_the_wrapper_survives_the_stop_collection() {
    let (running, finalized, admitted) = spawn(DowngradePolicy::OnDrain, true);
    let mut kept = Client::connect(running.addr());
    assert_eq!(
        kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    let held = hold(&running, &admitted);
    assert!(running.stop_handle().stop_and_wait(WAIT));
    assert!(
        finalized.try_recv().is_err(),
        "run_gc ran at stop, but the wrapper is still strong"
    );
    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (503, true));
    drop(kept);
    drop(held);
    let report = running.join().unwrap();
    assert_eq!(report.stats.refused_stopped, 1, "{report}");
    assert_eq!(report.stats.refused_finalized, 0, "{report}");
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    assert!(report.drain_time.is_some());
}
