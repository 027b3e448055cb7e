//! What hyper lets through and the mio server refuses: request framing and `Host` checks made
//! before anything is admitted, so both stacks answer a hostile client alike.
//!
//! hyper 1.x serves a request with `Transfer-Encoding` sent twice or `gzip, chunked` (it frames
//! by the last coding, which it cannot decode for `gzip`) and an HTTP/1.1 request without a
//! `Host` or with two; RFC 9112 §6.3 makes a request whose framing cannot be trusted, and §3.2
//! the `Host` cases, a `400`. One difference stays: hyper drops `Content-Length` when
//! `Transfer-Encoding` is present and closes the connection after the answer (RFC 9112 §6.1
//! allows that), so the service never sees that request as malformed; the mio server answers
//! it `400`. Neither desynchronizes.

use hyper::header::{HOST, TRANSFER_ENCODING};
use hyper::http::uri::Authority;
use hyper::{Request, Version};

/// Why a request is refused with `400` and `connection: close` before admission, or `None`.
pub(crate) fn bad_request<B>(request: &Request<B>) -> Option<&'static str> {
    let headers = request.headers();
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(coding) = codings.next() {
        // Only `chunked` alone frames a body this server can read (RFC 9112 §6.1).
        let chunked_alone = coding
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked");
        if !chunked_alone || codings.next().is_some() {
            return Some("transfer-encoding other than chunked alone");
        }
    }
    if request.version() != Version::HTTP_11 {
        return None; // `Host` is required from HTTP/1.1 on
    }
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if valid_host(host.as_bytes()) => None,
        (Some(_), None) => Some("invalid host"),
        _ => Some("host missing or sent twice"),
    }
}

/// `uri-host [ ":" port ]`, or empty (RFC 9112 §3.2: a target without an authority).
fn valid_host(value: &[u8]) -> bool {
    value.is_empty() || (!value.contains(&b'@') && Authority::try_from(value).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, fields: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri("/").version(version);
        for (name, value) in fields {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn framing_hyper_accepts_is_refused() {
        let h11 = Version::HTTP_11;
        let host = ("host", "x");
        let te = ("transfer-encoding", "chunked");
        assert!(bad_request(&request(h11, &[host, te])).is_none());
        assert!(bad_request(&request(h11, &[host, ("transfer-encoding", " Chunked ")])).is_none());
        assert!(bad_request(&request(h11, &[host, te, te])).is_some());
        assert!(bad_request(&request(
            h11,
            &[host, ("transfer-encoding", "gzip, chunked")]
        ))
        .is_some());
    }

    #[test]
    fn host_is_required_once_and_valid_in_http11() {
        let h11 = Version::HTTP_11;
        assert!(bad_request(&request(h11, &[("host", "x:80")])).is_none());
        assert!(bad_request(&request(h11, &[("host", "[::1]:8080")])).is_none());
        assert!(bad_request(&request(h11, &[("host", "")])).is_none());
        assert!(bad_request(&request(h11, &[])).is_some());
        assert!(bad_request(&request(h11, &[("host", "x"), ("host", "y")])).is_some());
        assert!(bad_request(&request(h11, &[("host", "a b")])).is_some());
        assert!(bad_request(&request(h11, &[("host", "u@x")])).is_some());
        assert!(bad_request(&request(Version::HTTP_10, &[])).is_none());
    }
}
