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
use hyper::{Request, StatusCode, Version};

/// `414` when the request target alone is longer than `max_head` (RFC 9112 §3: a server MUST
/// answer a target longer than it will parse with `414`), `431` when the whole head is, as the
/// mio server does; `None` within the limit. Counts without allocating.
pub(crate) fn head_over_limit<B>(request: &Request<B>, max_head: usize) -> Option<StatusCode> {
    let uri = request.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > max_head {
        return Some(StatusCode::URI_TOO_LONG);
    }
    // Request line (method, target, version, three separators) and `name: value\r\n` lines.
    let line = request.method().as_str().len() + target + "  HTTP/1.1\r\n".len();
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (line + fields + 2 > max_head).then_some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
}

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
    fn a_long_target_is_414_and_a_long_head_431() {
        let long = format!("/{}", "a".repeat(9000));
        let target = Request::builder().uri(long.as_str()).body(()).unwrap();
        assert_eq!(
            head_over_limit(&target, 8192),
            Some(StatusCode::URI_TOO_LONG)
        );
        let field = Request::builder()
            .uri("/")
            .header("x-big", "b".repeat(9000))
            .body(())
            .unwrap();
        assert_eq!(
            head_over_limit(&field, 8192),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let fine = request(Version::HTTP_11, &[("host", "x")]);
        assert_eq!(head_over_limit(&fine, 8192), None);
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
