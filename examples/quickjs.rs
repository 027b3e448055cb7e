//! The PR's scenario with a real collector: the server's wrapper is a JavaScript object in
//! QuickJS, and `run_gc` really frees it.
//!
//! ```sh
//! cargo run --example quickjs --features quickjs
//! ```
//!
//! Bun PR 28246 crashed (a null unwrap) when a kept-alive connection delivered a request after
//! `server.stop()` let the collector finalize the server object; its first fix leaked a pool
//! slot, a signal ref, a request and a pending count on the 503 path. Here the same sequence
//! runs against QuickJS: a request in flight, `stop()`, `run_gc` frees the wrapper, a late
//! request is refused with 503 taking nothing, the in-flight request finishes, and the ledger is
//! at zero.
//!
//! Drop order does not matter: the server core keeps the `Runtime` alive until it is dropped
//! itself (a handle alive at `JS_FreeRuntime` would abort the process; a leaked guard leaks it).

use reqguard::engines::QuickJs;
use reqguard::{Admitted, Config, DowngradePolicy, GuardKind, Refusal, ServerCore};
use rquickjs::function::This;
use rquickjs::{Context, Ctx, Function, Object, Runtime};

/// The server object of a tiny JS runtime: a `fetch` handler, and a cycle (`self`) so only the
/// cycle collector can free it, as with a real server object that its handlers close over.
const SERVER_JS: &str =
    "(() => { const s = { served: 0, fetch(path) { this.served += 1; return 'hello ' + path; } }; s.self = s; return s; })()";

/// One request callback: upgrade first (503 if that fails), only then admit, then call the JS
/// handler with the wrapper as `this`. The bundle is returned while the request is in flight.
fn on_request(
    core: &ServerCore<QuickJs>,
    ctx: &Ctx<'_>,
    path: &str,
) -> Result<(String, Admitted<(), String>), Refusal> {
    let live = core
        .upgrade_in(&mut ctx.clone())
        .ok_or(Refusal::WRAPPER_FINALIZED)?;
    let bundle = live.admit(|_| Ok(path.to_owned()))?;
    let this = live.object(ctx).expect("the wrapper lives in this runtime");
    let fetch: Function<'_> = this.get("fetch").expect("fetch");
    let body = fetch
        .call((
            This(this),
            bundle.request().expect("not handed off").as_str(),
        ))
        .expect("the handler threw");
    Ok((body, bundle))
}

fn main() {
    let rt = Runtime::new().expect("runtime");
    rt.set_gc_threshold(usize::MAX); // the cycle dies at the run_gc below, not before
                                     // Once per runtime: the adapter keeps the engine's own `WeakRef`, whatever scripts do.
    reqguard::engines::quickjs::prepare(&rt).expect("prepared");
    let context = Context::full(&rt).expect("context");
    let core = context.with(|ctx| {
        let server: Object<'_> = ctx.eval(SERVER_JS).expect("server object");
        ServerCore::quickjs(
            &context,
            server,
            Config::default().with_downgrade(DowngradePolicy::OnStop),
        )
        .expect("core")
    });

    let in_flight = context.with(|ctx| {
        let (body, done) = on_request(&core, &ctx, "/fast").expect("served");
        println!("GET /fast -> 200 {body:?}");
        done.complete(); // answered: every guard released
        let (body, slow) = on_request(&core, &ctx, "/slow").expect("served");
        println!("GET /slow -> handler returned {body:?}, response still streaming");
        slow
    });

    let drain = core.stop();
    println!(
        "server.stop(): {} request(s) still out",
        drain.outstanding()
    );
    rt.run_gc();
    let alive = context.with(|ctx| core.upgrade_in(&mut ctx.clone()).is_some());
    println!("run_gc: the server object was collected: {}", !alive);
    assert!(!alive);

    let minted_before = core.ledger().minted(GuardKind::Ticket);
    let late = context.with(|ctx| on_request(&core, &ctx, "/late").map(|(body, _)| body));
    let refusal = late.expect_err("a finalized wrapper must refuse");
    println!(
        "GET /late on a kept-alive connection -> {}",
        refusal.status_line()
    );
    assert_eq!(refusal.status(), 503);
    assert_eq!(core.ledger().minted(GuardKind::Ticket), minted_before); // took nothing

    in_flight.complete(); // the slow response's last byte is written
    assert!(drain.is_complete());
    core.ledger().assert_quiescent();
    println!("drain complete, ledger: nothing outstanding");
}
