//! What hyper lets through and the mio server refuses: the head limit, request framing and
//! `Host` checks made before anything is admitted, so both stacks answer a hostile client alike.
//!
//! hyper 1.x serves a request with `Transfer-Encoding` sent twice or `gzip, chunked` (it frames
//! by the last coding, which it cannot decode for `gzip`), an HTTP/1.1 request without a
//! `Host` or with two, and a `GET *` or `GET host:80`; RFC 9112 §6.3 makes a request whose
//! framing cannot be trusted, §3.2 the `Host` and target-form cases, a `400`, and §6.1 a
//! coding the server does not decode a `501` (as the mio server answers them all). One difference stays: hyper drops `Content-Length` when
//! `Transfer-Encoding` is present and closes the connection after the answer (RFC 9112 §6.1
//! allows that), so the service never sees that request as malformed; the mio server answers
//! it `400`. Neither desynchronizes.
//!
//! Every request pays for these checks, so they cost one walk over the fields: no hashing, no
//! allocation (a `Host` is validated in place, by the rule both stacks share: src/authority.rs).

use hyper::header::{HeaderMap, HeaderValue, HOST, TRANSFER_ENCODING};
use hyper::{Method, Request, StatusCode, Version};

use crate::authority::{names_a_host, valid_authority};
use crate::codings::{codings, Codings};

/// Why a request is refused before admission (with `connection: close`, taking nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `501` (the method does not end within `max_head` bytes), `414` (the target does not)
    /// or `431` (the whole head is longer).
    TooLarge(StatusCode),
    /// `400`: framing, a target form or a `Host` the mio server refuses; the reason is the
    /// answer's body.
    BadRequest(&'static str),
    /// `501`: a transfer coding before `chunked` that is not decoded here (`gzip, chunked`).
    UnknownCoding,
}

/// A request line that does not end within `max_head` bytes: `501` if its method does not
/// (RFC 9112 §3: longer than any implemented), else `414` for its target. Apart, so that the
/// path every request takes has one compare for both (callgrind: a compare of its own for the
/// method cost the hyper adapter 13 instructions per request: 10,559.3 against 10,546.1).
#[cold]
fn request_line_too_long(method: usize, max_head: usize) -> Refused {
    Refused::TooLarge(match method >= max_head {
        true => StatusCode::NOT_IMPLEMENTED,
        false => StatusCode::URI_TOO_LONG,
    })
}

/// Whether the client waits for `100 Continue` before sending the body still to come
/// (hyper's rule: the last `Expect` says `100-continue`, HTTP/1.1, a body not known empty):
/// the demo routes and the health probes answer such a request at once with
/// `connection: close` when they do not read its body, as the mio server does.
pub(crate) fn awaits_continue<B: hyper::body::Body>(request: &Request<B>) -> bool {
    request.version() >= hyper::Version::HTTP_11
        && !request.body().is_end_stream()
        && request
            .headers()
            .get_all(hyper::header::EXPECT)
            .iter()
            .next_back()
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The checks in the mio server's order: `501` when the method does not end within `max_head`
/// bytes (RFC 9112 §3: longer than any method implemented), `414` when the request target does
/// not (§3: a server MUST answer a target longer than it will parse with `414`), `431` when the
/// whole head is longer, then the `400`s; `None` for a request to serve. "Does not end within":
/// the space after it is not among the first `max_head` bytes of the head, where the mio
/// server stops reading (before, the target alone was compared with `max_head`: a target of
/// 8,188 to 8,192 bytes after `GET ` was `414` on mio and `431` here, a method of 8,192 bytes or
/// more `501` on mio and `431` here).
///
/// hyper gives the head parsed, not its bytes, so its length is estimated from its parts as
/// the canonical form writes them (`CRLF` line ends, `name: value`, no other whitespace).
/// `read_within_limit` says whether the bytes read from the socket since the head's count
/// began (`Conn::head_room`: never fewer than the head) are at most `max_head`: then the head
/// is within the limit whatever its shape, and the estimate, which a head with bare `LF` line
/// ends or fields written `name:value` exceeds, is not asked (QA client29-1: such heads of
/// 8,131 to 8,192 bytes were `431` here and served on mio). The count runs from the accept,
/// begins again at each read hyper makes inside a request (its buffer is empty then), and
/// never passes `max_head` while hyper reads a head (`LingeringIo::read_near_head_limit`), so
/// this holds for every head hyper reads as one: first, kept-alive or pipelined (QA
/// client30-2), but one read whole in a read with more than `max_head` bytes of a body before
/// it (docs/hyper.md). Asked only when the estimate is past the limit: nothing more on the
/// common path.
#[inline]
pub(crate) fn refusal<B>(
    request: &Request<B>,
    max_head: usize,
    read_within_limit: impl FnOnce() -> bool,
) -> Option<Refused> {
    let uri = request.uri();
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + path.len();
    let method = request.method().as_str().len();
    let fields = Fields::scan(request.headers());
    // Request line (method, target, version, three separators) and `name: value\r\n` lines.
    let line = method + target + "  HTTP/1.1\r\n".len();
    if line + fields.bytes + 2 > max_head && !read_within_limit() {
        if method + 1 + target >= max_head {
            return Some(request_line_too_long(method, max_head));
        }
        return Some(Refused::TooLarge(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ));
    }
    // More field lines than the mio server parses (hyper's own limit is 100, and raising
    // hyper's to match would allocate its header buffer on every request).
    if fields.lines > MAX_FIELDS {
        return Some(Refused::TooLarge(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ));
    }
    let unknown_coding = match fields.refusal(request.version()) {
        Ok(unknown_coding) => unknown_coding,
        Err(refused) => return Some(refused),
    };
    // Every `400` before the coding's `501`, as on mio (QA client29-2: `gzip, chunked` without a
    // `Host`, with two, or with `GET *` was `501` here and `400` there).
    target_form_refusal(request, path).or_else(|| unknown_coding.then_some(Refused::UnknownCoding))
}

/// A target (`path`: its path and query) in no form its method takes, or one naming no valid
/// `http`/`https` host: `400`.
#[inline(always)]
fn target_form_refusal<B>(request: &Request<B>, path: &str) -> Option<Refused> {
    let uri = request.uri();
    match uri.authority() {
        // An absolute-form (or CONNECT's authority-form) target names its host as the mio
        // server requires: a valid `host[:port]` with a host (RFC 9110 §4.2.1, §4.2.4).
        Some(authority) if !names_a_host(authority.as_str().as_bytes()) => {
            Some(Refused::BadRequest("invalid authority in the target"))
        }
        // The authority-form is CONNECT's (RFC 9112 §3.2.3), with a port (RFC 9110 §9.3.6:
        // there is no default one).
        Some(authority) if uri.scheme().is_none() => match request.method() == Method::CONNECT {
            false => Some(Refused::BadRequest("authority-form target without CONNECT")),
            true if authority.port_u16().is_none() => {
                Some(Refused::BadRequest("CONNECT target without a port"))
            }
            true => None,
        },
        // CONNECT takes the authority-form alone (RFC 9112 §3.2.3): any other form is a
        // malformed request (`400`) before it is a method the server does not implement.
        _ if request.method() == Method::CONNECT => {
            Some(Refused::BadRequest("CONNECT target not in authority-form"))
        }
        // An absolute-form target names an `http` or `https` resource (RFC 9110 §4.2), as the
        // mio server requires (src/http/uri.rs); hyper routed `ftp://a/` by its path.
        Some(_) if !uri.scheme_str().is_none_or(is_http_scheme) => Some(Refused::BadRequest(
            "absolute-form target with a scheme other than http or https",
        )),
        Some(_) => None,
        // An origin-form target is a path (nearly every request: one byte looked at).
        // (`path` is the target's path and query as sent: `Uri::path` would look for the `?`.)
        None if path.starts_with('/') => None,
        None => asterisk_form_refusal(request),
    }
}

/// The header fields a request may have: the mio server's parser's `MAX_HEADERS`
/// (src/http/parse.rs; more is `431` there too).
const MAX_FIELDS: usize = 64;

fn is_http_scheme(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// A target with neither an authority nor a path: the asterisk-form, OPTIONS's alone (RFC 9112
/// §3.2.4); anything else is in no form its method takes.
#[cold]
fn asterisk_form_refusal<B>(request: &Request<B>) -> Option<Refused> {
    match request.uri().path() {
        "*" if request.method() == Method::OPTIONS => None,
        "*" => Some(Refused::BadRequest("asterisk-form target without OPTIONS")),
        _ => Some(Refused::BadRequest(
            "request target in no form its method takes",
        )),
    }
}

/// What the checks need from the fields, gathered in one pass.
struct Fields<'h> {
    /// The fields' length as `name: value\r\n` lines, and how many lines.
    bytes: usize,
    lines: usize,
    /// `Transfer-Encoding` values, and the first.
    codings: usize,
    coding: Option<&'h HeaderValue>,
    /// `Host` values, and the first.
    hosts: usize,
    host: Option<&'h HeaderValue>,
}

impl<'h> Fields<'h> {
    #[inline(always)]
    fn scan(headers: &'h HeaderMap) -> Self {
        let mut fields = Fields {
            bytes: 0,
            lines: 0,
            codings: 0,
            coding: None,
            hosts: 0,
            host: None,
        };
        for (name, value) in headers {
            fields.bytes += name.as_str().len() + value.len() + 4;
            fields.lines += 1;
            if name == HOST {
                fields.hosts += 1;
                fields.host.get_or_insert(value);
            } else if name == TRANSFER_ENCODING {
                fields.codings += 1;
                fields.coding.get_or_insert(value);
            }
        }
        fields
    }

    /// Why the fields make the request a `400`, or whether its codings name one before
    /// `chunked` not decoded here (its `501`, which waits for the target's `400`s).
    #[inline(always)]
    fn refusal(&self, version: Version) -> Result<bool, Refused> {
        let mut unknown_coding = false;
        if let Some(coding) = self.coding {
            // One field whose codings end in `chunked`, as on mio (src/codings.rs); hyper
            // frames by the last coding and would serve `gzip, chunked` undecoded.
            match (codings(coding.as_bytes()), self.codings) {
                (Codings::Chunked, 1) => {}
                (Codings::UnknownBeforeChunked, 1) => unknown_coding = true,
                _ => {
                    let why = "transfer-encoding other than one list ending in chunked";
                    return Err(Refused::BadRequest(why));
                }
            }
        }
        let why = match (self.host, self.hosts) {
            (Some(host), 1) if valid_authority(host.as_bytes()) => return Ok(unknown_coding),
            (Some(_), 1) => "invalid host",
            // `Host` is required from HTTP/1.1 on; when sent, it is judged in any version.
            (None, _) if version != Version::HTTP_11 => return Ok(unknown_coding),
            _ => "host missing or sent twice",
        };
        Err(Refused::BadRequest(why))
    }
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

    fn bad_request(request: &Request<()>) -> Option<&'static str> {
        match refusal(request, 8192, || false) {
            Some(Refused::BadRequest(why)) => Some(why),
            _ => None,
        }
    }

    #[test]
    fn framing_hyper_accepts_is_refused() {
        let h11 = Version::HTTP_11;
        let host = ("host", "x");
        let te = ("transfer-encoding", "chunked");
        assert!(bad_request(&request(h11, &[host, te])).is_none());
        assert!(bad_request(&request(h11, &[host, ("transfer-encoding", " Chunked ")])).is_none());
        assert!(bad_request(&request(h11, &[host, te, te])).is_some());
        let gzip_chunked = request(h11, &[host, ("transfer-encoding", "gzip, chunked")]);
        assert_eq!(
            refusal(&gzip_chunked, 8192, || false),
            Some(Refused::UnknownCoding)
        );
        assert!(bad_request(&request(h11, &[host, ("transfer-encoding", ", chunked")])).is_none());
        let twice = ("transfer-encoding", "chunked, chunked");
        assert!(bad_request(&request(h11, &[host, twice])).is_some());
        assert!(bad_request(&request(h11, &[host, ("transfer-encoding", "gzip"), te])).is_some());
    }

    /// RFC 9112 §3.2.3, §3.2.4: the authority-form is CONNECT's, the asterisk-form OPTIONS's.
    #[test]
    fn a_target_form_its_method_does_not_take_is_refused() {
        let target = |method: &str, uri: &str| {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "x")
                .body(())
                .unwrap();
            bad_request(&request)
        };
        assert!(target("OPTIONS", "*").is_none());
        assert!(target("CONNECT", "x:80").is_none());
        assert!(target("GET", "http://x/").is_none());
        for (method, uri) in [
            ("GET", "*"),
            ("HEAD", "*"),
            ("POST", "*"),
            ("GET", "x:80"),
            ("OPTIONS", "x:80"),
            // CONNECT takes the authority-form alone, with a port (RFC 9110 §9.3.6).
            ("CONNECT", "/"),
            ("CONNECT", "http://x/"),
            ("CONNECT", "x"),
            ("CONNECT", "x:99999"),
        ] {
            assert!(target(method, uri).is_some(), "{method} {uri}");
        }
    }

    #[test]
    fn a_long_target_is_414_and_a_long_head_431() {
        let too_large = |request: &Request<()>| match refusal(request, 8192, || false) {
            Some(Refused::TooLarge(status)) => Some(status),
            _ => None,
        };
        let long = format!("/{}", "a".repeat(9000));
        let target = Request::builder().uri(long.as_str()).body(()).unwrap();
        assert_eq!(too_large(&target), Some(StatusCode::URI_TOO_LONG));
        let field = Request::builder()
            .uri("/")
            .header("x-big", "b".repeat(9000))
            .body(())
            .unwrap();
        assert_eq!(
            too_large(&field),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        // Many small fields add up; the limit counts `name: value\r\n` per field.
        let mut many = Request::builder().uri("/").header("host", "x");
        for i in 0..500 {
            many = many.header(format!("x-{i:03}"), "0123456789");
        }
        let many = many.body(()).unwrap();
        assert_eq!(
            too_large(&many),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let fine = request(Version::HTTP_11, &[("host", "x")]);
        assert_eq!(refusal(&fine, 8192, || false), None);
    }

    /// The estimate is asked only when it is past the limit, and the bytes read decide then:
    /// a head whose estimate is over `max_head` (its `CRLF`s and `: `s counted where the client
    /// sent `LF`s and `:`s) but whose bytes read were within it is served.
    #[test]
    fn the_bytes_read_overrule_an_estimate_past_the_limit() {
        let mut asked = false;
        let fine = request(Version::HTTP_11, &[("host", "x")]);
        assert_eq!(
            refusal(&fine, 8192, || {
                asked = true;
                false
            }),
            None
        );
        assert!(!asked, "asked on the common path");
        let mut near = Request::builder().uri("/").header("host", "x");
        for i in 0..61 {
            near = near.header(format!("x{i:02}"), "v".repeat(130));
        }
        let near = near.body(()).unwrap();
        assert_eq!(
            refusal(&near, 8192, || false),
            Some(Refused::TooLarge(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            ))
        );
        assert_eq!(refusal(&near, 8192, || true), None);
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
        // Sent in HTTP/1.0, it is judged as in HTTP/1.1 (as on mio).
        let h10 = Version::HTTP_10;
        assert!(bad_request(&request(h10, &[("host", "x")])).is_none());
        assert!(bad_request(&request(h10, &[("host", "a b")])).is_some());
        assert!(bad_request(&request(h10, &[("host", "x"), ("host", "x")])).is_some());
    }

    #[test]
    fn an_absolute_form_target_names_a_valid_host() {
        let target = |uri: &str| {
            let request = Request::builder()
                .uri(uri)
                .header("host", "x")
                .body(())
                .unwrap();
            bad_request(&request)
        };
        assert!(target("http://example.com:80/a").is_none());
        assert!(target("http://[::1]:8080/").is_none());
        assert!(target("http://u@example.com/").is_some());
        assert!(target("http://:80/").is_some());
    }
}
