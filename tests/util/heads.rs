//! Request heads of an exact length and shape, for probes of `max_head` (tests/probe_client/v29.rs,
//! tests/probe_client/v30.rs).

/// A `GET /` head of exactly `len` bytes: the request line, `host: x`, `fields` small fields
/// written `name:value` (no whitespace: RFC 9112 §5.1 makes it optional) and a last field
/// padded to the length, every line ended by `eol` (`\r\n`, or the bare `\n` a server MAY take
/// for one: RFC 9112 §2.2).
pub fn head_of(len: usize, eol: &str, fields: usize) -> Vec<u8> {
    let mut head = format!("GET / HTTP/1.1{eol}host: x{eol}");
    for i in 0..fields {
        head.push_str(&format!("x-{i:02}:v{eol}"));
    }
    head.push_str("x-pad:");
    let end = format!("{eol}{eol}");
    let pad = len
        .checked_sub(head.len() + end.len())
        .expect("a length the fixed parts fit in");
    head.push_str(&"p".repeat(pad));
    head.push_str(&end);
    assert_eq!(head.len(), len);
    head.into_bytes()
}
