//! The PR's regression end to end on hyper, with the server's wrapper living in QuickJS: a real
//! JS handler (`this.fetch()`), a kept-alive connection, stop, QuickJS's cycle collector, and the
//! late request on the kept-alive connection answered 503 with nothing taken.
//!
//! The engine lives on the server thread (rquickjs' `Runtime` is `!Send`). The core's handles
//! keep the runtime alive (`engines::quickjs::JsStrong`), so the drop order does not matter.
#![cfg(all(feature = "hyper", feature = "quickjs"))]

mod util;

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use reqguard::engines::quickjs::JsStrong;
use reqguard::engines::QuickJs;
use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Options};
use reqguard::{Config, DowngradePolicy, ServerCore};
use rquickjs::function::This;
use rquickjs::{Context, Function, Object, Runtime};
use util::{wait_until, Client};

const WAIT: Duration = Duration::from_secs(10);

/// The JS server object: `fetch()` answers; it is cyclic, so only the collector frees it, and a
/// `FinalizationRegistry` reports when it does.
const SERVER_JS: &str = r#"(() => {
    globalThis.registry = new FinalizationRegistry(held => report(held));
    const server = { fetch() { return "hello from " + this.name; }, name: "quickjs" };
    server.self = server;
    registry.register(server, "server wrapper");
    return server;
})()"#;

/// Runs the hyper server with a QuickJS wrapper on its own thread until `stop` fires.
fn spawn(
    finalized: mpsc::Sender<String>,
    stop: tokio::sync::oneshot::Receiver<()>,
    addr_tx: mpsc::Sender<SocketAddr>,
) -> thread::JoinHandle<reqguard::tokio_hyper::HyperReport> {
    thread::spawn(move || {
        let rt = Runtime::new().expect("runtime");
        rt.set_gc_threshold(usize::MAX); // the cycle dies at the named run_gc only
        reqguard::engines::quickjs::prepare(&rt).expect("prepared");
        let context = Context::full(&rt).expect("context");
        let core = context.with(|ctx| {
            let report = Function::new(ctx.clone(), move |held: String| {
                let _ = finalized.send(held);
            })
            .expect("report");
            ctx.globals().set("report", report).expect("global");
            let server: Object<'_> = ctx.eval(SERVER_JS).expect("server object");
            let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
            ServerCore::quickjs(&context, server, config).expect("core")
        });
        let js = context.clone();
        // The embedder's handler: calls the JS `fetch` with the wrapper as `this`.
        let handler = move |this: JsStrong, _: Request<Incoming>, bundle: Bundle| {
            let text: Result<String, rquickjs::Error> = js.with(|ctx| {
                let server = this.restore(&ctx)?;
                let fetch: Function<'_> = server.get("fetch")?;
                fetch.call((This(server),))
            });
            async move {
                let text = text.map_err(|e| -> HandlerError { e.to_string().into() })?;
                Ok(bundle.respond(Response::new(Full::new(Bytes::from(text)))))
            }
        };
        let options = Options::default()
            .with_stop_linger(Duration::from_secs(10))
            .with_drain_timeout(Duration::from_secs(10));
        let server = HyperServer::<QuickJs, (), _, _>::with_scope(core, handler, context)
            .options(options)
            .after_stop(move || {
                rt.run_gc(); // the Runtime variant: not inside `with`
                while rt.execute_pending_job().expect("a job threw") {}
            });
        let stop = async {
            let _ = stop.await;
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        reqguard::tokio_hyper::run(server, loopback, |a| addr_tx.send(a).unwrap(), stop)
            .expect("bind")
    })
}

#[test]
fn a_js_handler_serves_then_after_stop_and_run_gc_the_kept_alive_request_gets_503() {
    let (finalized_tx, finalized) = mpsc::channel();
    let (stop_tx, stop) = tokio::sync::oneshot::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = spawn(finalized_tx, stop, addr_tx);
    let addr = addr_rx.recv_timeout(WAIT).expect("listening");

    let mut kept = Client::connect(addr);
    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.text()), (200, "hello from quickjs"));

    stop_tx.send(()).unwrap();
    wait_until("the listener to close", || {
        TcpStream::connect(addr).is_err()
    });
    // QuickJS's collector finalized the cyclic wrapper right after stop...
    assert_eq!(
        finalized.recv_timeout(WAIT).as_deref(),
        Ok("server wrapper")
    );
    // ...so the late request on the kept-alive connection fails its upgrade: 503, nothing taken.
    let late = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((late.status, late.closes()), (503, true));
    assert!(kept.is_closed_by_server());

    let report = server.join().expect("the server thread");
    assert_eq!(
        (report.stats.served, report.outcomes.completed),
        (1, 1),
        "{report}"
    );
    assert_eq!(report.stats.refused_finalized, 1, "{report}");
    assert_eq!(report.leaked, 0, "{report}");
}
