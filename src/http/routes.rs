//! The demo routes: `GET /`, `GET /delay?ms=N`, `POST /echo`, `GET /panic`.

use std::io::Write as _;
use std::time::Duration;

use super::response::Response;
use super::router::{Handler, Reply, Request, Router};

/// The longest `/delay` accepted, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Adds the demo routes to `router`:
///
/// | route | answer |
/// |---|---|
/// | `GET /` | `200 hello` |
/// | `GET /delay?ms=N` | `200 delayed N ms`, after N ms, through a deferred response |
/// | `POST /echo` | `200` with the request body |
/// | `GET /panic` | the handler panics: `500`, and the server keeps serving |
///
/// # Examples
///
/// ```
/// use reqguard::http::{demo_routes, Limits, Router, Routes, Session, Unaccounted};
///
/// let routes = Routes::new();
/// let mut router = Router::new(&routes);
/// demo_routes(&mut router);
/// let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
/// session.feed(b"POST /echo HTTP/1.1\r\nhost: x\r\nContent-Length: 4\r\n\r\nping");
/// assert!(session.take_output().ends_with(b"\r\n\r\nping"));
/// ```
pub fn demo_routes(router: &mut Router<'_>) {
    router.route("GET", "/", hello);
    router.route("GET", "/delay", Delay);
    router.route("POST", "/echo", echo);
    router.route("GET", "/panic", panics);
}

fn hello(_: &Request<'_>, res: &mut Response<'_>) -> Reply {
    res.write(b"hello");
    Reply::Now
}

fn echo(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
    res.set_content_type("application/octet-stream");
    res.write(req.body());
    Reply::Now
}

fn panics(_: &Request<'_>, _: &mut Response<'_>) -> Reply {
    panic!("GET /panic: this handler panics on purpose");
}

/// `GET /delay?ms=N`: a deferred response, the way a handler's promise resolves later.
struct Delay;

impl Handler for Delay {
    fn handle(&self, req: &Request<'_>, res: &mut Response<'_>) -> Reply {
        match req.query_param("ms").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms <= MAX_DELAY_MS => Reply::After {
                delay: Duration::from_millis(ms),
                token: ms,
            },
            _ => {
                res.set_status(400);
                res.write(b"expected ?ms=N with N <= 60000");
                Reply::Now
            }
        }
    }

    fn resume(&self, ms: u64, res: &mut Response<'_>) {
        let _ = write!(res.body_mut(), "delayed {ms} ms");
    }
}
