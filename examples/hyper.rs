//! A complete reqguard server on hyper (tokio current-thread runtime + `LocalSet`), a request to
//! it, and its report:
//!
//! ```text
//! cargo run --example hyper --features hyper
//! ```
//!
//! The handler gets the wrapper (`this`), the request and the bundle; it hands the bundle to the
//! response body with `Bundle::respond`, so the request ends when the body's last frame is
//! written. The server stops when the client has its answer; the report shows one outcome per
//! request and nothing leaked.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use reqguard::engines::{Handle, Heap};
use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Reply};
use reqguard::{Config, ServerCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The embedder's handler: `this` is the server's wrapper, upgraded for this request.
async fn hello(
    this: Handle<&'static str>,
    request: Request<Incoming>,
    bundle: Bundle,
) -> Result<Reply<Full<Bytes>>, HandlerError> {
    let text = format!("hello from {} for {}\n", *this, request.uri().path());
    Ok(bundle.respond(Response::new(Full::new(Bytes::from(text)))))
}

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, async {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("my-server"), Config::default());
        let server = HyperServer::new(core, hello);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");

        // A client on the same thread: one request, then the server stops.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::task::spawn_local(async move {
            let mut client = tokio::net::TcpStream::connect(addr).await?;
            client
                .write_all(b"GET /example HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await?;
            let mut answer = String::new();
            client.read_to_string(&mut answer).await?;
            println!("the client read:\n{answer}\n");
            let _ = stop.send(());
            std::io::Result::Ok(())
        });
        std::io::Result::Ok(
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await,
        )
    })?;
    println!("report\n{report}");
    assert_eq!(report.leaked, 0);
    Ok(())
}
