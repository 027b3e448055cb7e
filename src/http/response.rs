//! Responses: what a handler fills in, and how it is written on the wire.

use std::io::Write as _;

/// The reason phrase for the statuses this server sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response being built by a [`Handler`](crate::http::Handler).
///
/// The body buffer is the server's, reused from request to request, so a warm server answers
/// without allocating. The server adds `content-length` and `connection` itself.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Reply, Request, Response};
///
/// fn teapot(_req: &Request<'_>, res: &mut Response<'_>) -> Reply {
///     res.set_status(418);
///     res.write(b"short and stout");
///     Reply::Now
/// }
/// # let _ = teapot;
/// ```
#[derive(Debug)]
pub struct Response<'a> {
    status: u16,
    content_type: &'static str,
    body: &'a mut Vec<u8>,
    close: bool,
    stop_server: bool,
}

impl<'a> Response<'a> {
    pub(crate) fn new(body: &'a mut Vec<u8>) -> Self {
        body.clear();
        Response {
            status: 200,
            content_type: "text/plain",
            body,
            close: false,
            stop_server: false,
        }
    }

    /// Sets the status code (200 unless set).
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Sets the `content-type` (`text/plain` unless set).
    pub fn set_content_type(&mut self, content_type: &'static str) {
        self.content_type = content_type;
    }

    /// Appends to the body.
    pub fn write(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
    }

    /// The body so far, to write into with `std::io::Write` or `extend`.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        self.body
    }

    /// Closes the connection after this response (`Connection: close`).
    pub fn close_connection(&mut self) {
        self.close = true;
    }

    /// Asks the server to stop gracefully once this turn of its loop ends: the "stop from the
    /// loop" path, the way a JS handler calls `server.stop()`.
    pub fn stop_server(&mut self) {
        self.stop_server = true;
    }

    /// Replaces whatever was written with a `status` answer (the panic path).
    pub(crate) fn fail(&mut self, status: u16) {
        self.status = status;
        self.content_type = "text/plain";
        self.body.clear();
        self.body.extend_from_slice(reason(status).as_bytes());
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.close
    }

    pub(crate) fn wants_stop(&self) -> bool {
        self.stop_server
    }

    pub(crate) fn content_type(&self) -> &'static str {
        self.content_type
    }

    pub(crate) fn body(&self) -> &[u8] {
        self.body
    }
}

/// Framing of one response on the wire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wire {
    pub(crate) http10: bool,
    pub(crate) close: bool,
}

/// Appends one whole response to `out`.
pub(crate) fn write_response(
    out: &mut Vec<u8>,
    wire: Wire,
    status: u16,
    content_type: &str,
    body: &[u8],
) {
    let version = if wire.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{version} {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        reason(status),
        body.len()
    );
    if wire.close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if wire.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends a plain-text answer whose body is its reason phrase.
pub(crate) fn write_status(out: &mut Vec<u8>, wire: Wire, status: u16) {
    write_response(out, wire, status, "text/plain", reason(status).as_bytes());
}
