//! One `GET /` served by a `HyperServer` on a fresh current-thread runtime and `LocalSet`, then
//! the stop: what the hyper adapter's embedder probes (rounds 9 and 10) each wrote to see the
//! answer and the report of a handler of their own.

use std::time::Duration;

use reqguard::engines::{Embedded, Heap};
use reqguard::tokio_hyper::{Handler, HyperReport, HyperServer};
use reqguard::{Config, ServerCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one `GET /` with `handler` on a fresh current-thread runtime and `LocalSet`,
/// then stops: the answer as text, and the report.
pub(crate) fn serve_one<H: Handler<Embedded<&'static str>>>(handler: H) -> (String, HyperReport) {
    serve_one_with(reqguard::tokio_hyper::Options::default(), handler)
}

/// As [`serve_one`], with `options`.
pub(crate) fn serve_one_with<H: Handler<Embedded<&'static str>>>(
    options: reqguard::tokio_hyper::Options,
    handler: H,
) -> (String, HyperReport) {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    serve_one_on(core, options, handler)
}

/// As [`serve_one_with`], on `core`.
pub(crate) fn serve_one_on<H: Handler<Embedded<&'static str>>>(
    core: ServerCore<Embedded<&'static str>>,
    options: reqguard::tokio_hyper::Options,
    handler: H,
) -> (String, HyperReport) {
    crate::local_set::block_on(async {
        let server = HyperServer::new(core, handler).options(options);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let client = async move {
            let mut answer = Vec::new();
            if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
                let request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
                let _ = stream.write_all(request).await;
                let read = stream.read_to_end(&mut answer);
                let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
            }
            let _ = tx.send(String::from_utf8_lossy(&answer).into_owned());
        };
        tokio::task::spawn_local(client);
        let mut answer = String::new();
        let stop = async {
            answer = rx.await.unwrap_or_default();
        };
        let serve = server.serve(listener, stop);
        let report = tokio::time::timeout(Duration::from_secs(20), serve)
            .await
            .expect("the server stopped");
        (answer, report)
    })
}
