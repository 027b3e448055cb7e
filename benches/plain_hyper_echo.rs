//! Plain hyper 1.x serving `GET /` (`hello`) and `POST /echo` (the request body, collected),
//! the baseline of the load runs in docs/benchmarks-history.md section 9d: what a Rust user writes
//! (`http1`, tokio current-thread runtime + `LocalSet`, one local task per connection, a
//! `service_fn` handler that owns the request; no limits, no graceful shutdown, no checks).
//!
//! ```text
//! REQGUARD_PLAIN_HYPER_ADDR=127.0.0.1:8082 cargo bench --features hyper --bench plain_hyper_echo
//! ```
//!
//! Serves until killed. Without `REQGUARD_PLAIN_HYPER_ADDR` it prints this hint and exits, so
//! `cargo bench` does not hang on it.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

/// `GET /` is `hello`; `POST /echo` answers the body it collected; anything else `404`.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let route = (request.method().clone(), request.uri().path().to_owned());
    let answer = match (route.0, route.1.as_str()) {
        (Method::GET, "/") => Response::new(Full::new(Bytes::from_static(b"hello"))),
        (Method::POST, "/echo") => match request.into_body().collect().await {
            Ok(collected) => Response::builder()
                .header("content-type", "application/octet-stream")
                .body(Full::new(collected.to_bytes()))
                .unwrap_or_default(),
            Err(_) => status(StatusCode::BAD_REQUEST),
        },
        _ => status(StatusCode::NOT_FOUND),
    };
    Ok(answer)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = code;
    answer
}

async fn serve(addr: String) {
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(5))
            .serve_connection(TokioIo::new(stream), service_fn(handle));
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
    }
}

fn main() {
    let Ok(addr) = std::env::var("REQGUARD_PLAIN_HYPER_ADDR") else {
        println!("plain_hyper_echo: set REQGUARD_PLAIN_HYPER_ADDR=127.0.0.1:PORT to serve (see the file's header)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, serve(addr));
}
