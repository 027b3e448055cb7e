//! The request target and the `Host` field (RFC 9112 §3.2, RFC 9110 §7.2, RFC 3986 §3.2.2).
//!
//! Pure functions over byte slices: no allocation, no state.

use std::ops::Range;

pub(crate) use crate::authority::valid_authority;
use crate::authority::{host_part, names_a_host};

/// The form of a request target, with the parts the server uses, as ranges into the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/path?query` (origin-form), or the path and query of an absolute-form target
    /// (`http://host/path?query`, sent to proxies and accepted by every origin server). The range
    /// is empty for `http://host` or `http://host?query` minus the query: the path is then `/`.
    Origin {
        /// The path and query.
        origin: Range<usize>,
        /// The authority of an absolute-form target, which takes the place of `Host`.
        authority: Option<Range<usize>>,
    },
    /// `*`, for a server-wide `OPTIONS`.
    Asterisk,
    /// `host:port`, for `CONNECT`.
    Authority,
}

/// Classifies `target` (of a request with `method`); `None` if it is no valid form for it.
pub(crate) fn parse_target(method: &[u8], target: &[u8]) -> Option<Target> {
    if method == b"CONNECT" {
        // Authority-form only (RFC 9112 §3.2.3), with a port: there is no default one (RFC
        // 9110 §9.3.6), and a TCP port fits 16 bits.
        let host = host_part(target);
        let port = target[host.len()..].strip_prefix(b":").unwrap_or_default();
        let port_ok = std::str::from_utf8(port).is_ok_and(|p| p.parse::<u16>().is_ok());
        let named = !host.is_empty() && port_ok;
        return (named && valid_authority(target)).then_some(Target::Authority);
    }
    match target.first()? {
        b'/' => Some(Target::Origin {
            origin: 0..target.len(),
            authority: None,
        }),
        b'*' if target.len() == 1 && method == b"OPTIONS" => Some(Target::Asterisk),
        _ => absolute_form(target),
    }
}

/// `http://authority[/path][?query]` or `https://...`: the authority must name a host.
fn absolute_form(target: &[u8]) -> Option<Target> {
    let scheme_end = target.windows(3).position(|w| w == b"://")?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return None;
    }
    let start = scheme_end + 3;
    // The authority ends at the path, the query or the fragment (RFC 3986 §3.2); a fragment
    // is dropped with what follows it (`Request::path_and_query`), as hyper drops it.
    let end = target[start..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(target.len(), |i| start + i);
    let authority = &target[start..end];
    // An `http` URI with an empty host is invalid (RFC 9110 §4.2.1); userinfo is not allowed
    // here (RFC 9110 §4.2.4), and `valid_authority` rejects the `@`.
    if !names_a_host(authority) {
        return None;
    }
    Some(Target::Origin {
        origin: end..target.len(),
        authority: Some(start..end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms() {
        fn origin(t: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
            match parse_target(b"GET", t) {
                Some(Target::Origin { origin, authority }) => {
                    Some((&t[origin], authority.map(|a| &t[a])))
                }
                _ => None,
            }
        }
        assert_eq!(origin(b"/a?b"), Some((&b"/a?b"[..], None)));
        assert_eq!(
            origin(b"http://h:1/a?b"),
            Some((&b"/a?b"[..], Some(&b"h:1"[..])))
        );
        assert_eq!(origin(b"HTTPS://h"), Some((&b""[..], Some(&b"h"[..]))));
        assert_eq!(origin(b"http://h?q"), Some((&b"?q"[..], Some(&b"h"[..]))));
        assert_eq!(origin(b"http:///a"), None); // no host
        assert_eq!(origin(b"http://u@h/"), None); // userinfo
        assert_eq!(origin(b"ftp://h/"), None);
        assert_eq!(origin(b"a/b"), None);
        assert_eq!(origin(b"*"), None);
        assert_eq!(parse_target(b"OPTIONS", b"*"), Some(Target::Asterisk));
        assert_eq!(parse_target(b"CONNECT", b"h:443"), Some(Target::Authority));
        assert_eq!(parse_target(b"CONNECT", b"/"), None);
        assert_eq!(
            parse_target(b"CONNECT", b"[::1]:443"),
            Some(Target::Authority)
        );
        for portless in [&b"h"[..], b"h:", b"*", b"h:99999", b"h:+1", b"[::1]"] {
            assert_eq!(parse_target(b"CONNECT", portless), None, "{portless:?}");
        }
    }
}
