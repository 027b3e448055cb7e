//! `uri-host [ ":" port ]` (RFC 3986 §3.2.2): the rule both HTTP stacks judge a `Host` field
//! and a target's authority by, so the mio server and the hyper adapter cannot drift apart.
//!
//! Pure functions over byte slices: no allocation, no state.

/// Whether `authority` is a valid `host[:port]` that names a host (an absolute-form target's
/// authority, RFC 9110 §4.2.1: an `http` URI with an empty host is invalid).
pub(crate) fn names_a_host(authority: &[u8]) -> bool {
    !host_part(authority).is_empty() && valid_authority(authority)
}

/// The host of `host[:port]` (the whole bracketed literal for IPv6).
pub(crate) fn host_part(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        return match authority.iter().position(|&b| b == b']') {
            Some(close) => &authority[..=close],
            None => authority,
        };
    }
    match authority.iter().position(|&b| b == b':') {
        Some(colon) => &authority[..colon],
        None => authority,
    }
}

/// Whether `value` is `uri-host [ ":" port ]` (RFC 3986): a valid `Host` field value. An empty
/// value is valid (a request whose target has no authority sends an empty `Host`).
#[inline]
pub(crate) fn valid_authority(value: &[u8]) -> bool {
    if value.first() == Some(&b'[') {
        let host = host_part(value);
        return valid_ip_literal(host) && valid_port(&value[host.len()..]);
    }
    // A reg-name (IPv4 addresses are reg-names too), then an optional port: one pass, one
    // table lookup per byte; a plain name is one tight loop.
    if is_reg_name(value) {
        return true;
    }
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if REG_NAME[usize::from(b)] {
            i += 1;
        } else if b == b'%' {
            let hex = value.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else {
            return valid_port(&value[i..]);
        }
    }
    true
}

/// Whether every byte of `value` is a reg-name byte (no `%XX`): the common `Host`. Out of line
/// on purpose: inlined into the header pass, its loop kept a store per byte. No early exit: a
/// `Host` is short and nearly always valid, and the loop without one unrolls.
#[inline(never)]
fn is_reg_name(value: &[u8]) -> bool {
    value
        .iter()
        .fold(true, |all, &b| all & REG_NAME[usize::from(b)])
}

/// `":" *DIGIT`, or nothing.
fn valid_port(rest: &[u8]) -> bool {
    match rest.split_first() {
        None => true,
        Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `[` IPv6address or IPvFuture `]` (RFC 3986 §3.2.2). An IPv6 address is judged by the
/// standard library's parser (RFC 4291 text: `[::1]`, `[::ffff:1.2.3.4]`; no zone identifier);
/// an IPvFuture is `v` 1*HEXDIG `.` 1*(unreserved / sub-delims / `:`). Before, any of those
/// bytes passed (`[zz]`, `[::1::2]`, `[1.2.3.4]`), and RFC 9112 §3.2 makes such a `Host` a
/// `400`. Off the fast path: a reg-name never gets here.
#[cold]
#[inline(never)]
fn valid_ip_literal(host: &[u8]) -> bool {
    match host {
        [b'[', b'v' | b'V', future @ .., b']'] => valid_ip_future(future),
        [b'[', inner @ .., b']'] => {
            std::str::from_utf8(inner).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
        }
        _ => false,
    }
}

/// After an IPvFuture's `v`: 1*HEXDIG `.` 1*( unreserved / sub-delims / `:` ).
fn valid_ip_future(rest: &[u8]) -> bool {
    let Some(dot) = rest.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
    !version.is_empty()
        && version.iter().all(u8::is_ascii_hexdigit)
        && !tail.is_empty()
        && tail
            .iter()
            .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

/// The bytes a reg-name holds besides `%XX`: unreserved and sub-delims. A value of these bytes
/// alone is a valid authority (the mio server's scan reads a `Host` value with it).
pub(crate) static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_sub_delim(b as u8);
        b += 1;
    }
    table
};

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One table for both stacks: the mio server's `Host` and target checks and the hyper
    /// adapter's call this function alone.
    #[test]
    fn host_values() {
        for ok in [
            &b""[..],
            b"example.com",
            b"example.com:8080",
            b"example.com:",
            b"127.0.0.1:80",
            b"[::1]:8080",
            b"[::1]",
            b"[2001:db8::7]",
            b"[::ffff:192.0.2.1]:80",
            b"[v1.fe80::a+en1]",
            b"[VF.x]:1",
            b"xn--bcher-kva.example",
            b"a%20b",
        ] {
            assert!(valid_authority(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"a b"[..],
            b"user@host",
            b"host:80x",
            b"host:80:90",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"[zz]",
            b"[::1::2]",
            b"[1.2.3.4]",
            b"[12345::]",
            b"[fe80::1%25eth0]",
            b"[v.x]",
            b"[v1.]",
            b"[vz.x]",
            b"[v1x]",
            b"[v1.a b]",
            b"a%2",
            b"a%zz",
            b"host/path",
            b"\xff",
        ] {
            assert!(!valid_authority(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
