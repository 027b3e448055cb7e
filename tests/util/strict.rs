//! A strict HTTP/1.1 response reader for the socket tests: it fails on anything RFC 9112 does
//! not allow a server to send, so a test cannot pass on an answer a strict client (h11, a
//! proxy) would reject.
//!
//! Checked: the status line (`HTTP/1.x SP 3DIGIT SP reason CRLF`), every field line
//! (`token ":" OWS value OWS CRLF`, no bare LF or CR, no whitespace before the colon, no
//! obs-fold, no control bytes), exactly one `content-length` on a final answer (none on a
//! `1xx`), no `transfer-encoding`, and a body of exactly that length. After a `connection:
//! close` answer the server must send nothing more, then FIN (not a reset).

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;

/// One response, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strict {
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Field names lowercased, values without surrounding whitespace.
    pub fields: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Strict {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn closes(&self) -> bool {
        self.field("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_field_text(b: u8) -> bool {
    b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads one CRLF-terminated line (without the CRLF); a bare LF or CR is an error.
fn line(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if reader.read_until(b'\n', &mut raw)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let Some(content) = raw.strip_suffix(b"\r\n") else {
        return Err(bad(format!(
            "line not ended by CRLF: {:?}",
            String::from_utf8_lossy(&raw)
        )));
    };
    if content.contains(&b'\r') || content.contains(&b'\n') {
        return Err(bad("bare CR or LF inside a line"));
    }
    Ok(content.to_vec())
}

fn status_line(raw: &[u8]) -> io::Result<(String, u16, String)> {
    let text = std::str::from_utf8(raw).map_err(|_| bad("status line is not ASCII"))?;
    let version = text.get(..8).ok_or_else(|| bad("short status line"))?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad(format!("bad version in {text:?}")));
    }
    let rest = &raw[8..];
    let ok = rest.len() >= 5
        && rest[0] == b' '
        && rest[1..4].iter().all(u8::is_ascii_digit)
        && rest[4] == b' '
        && rest[5..].iter().all(|&b| is_field_text(b));
    if !ok {
        return Err(bad(format!("bad status line {text:?}")));
    }
    let status = text[9..12].parse().unwrap();
    Ok((version.to_string(), status, text[13..].to_string()))
}

fn field_line(raw: &[u8]) -> io::Result<(String, String)> {
    let colon = raw.iter().position(|&b| b == b':').ok_or_else(|| {
        bad(format!(
            "field without colon: {:?}",
            String::from_utf8_lossy(raw)
        ))
    })?;
    let (name, value) = (&raw[..colon], &raw[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad(format!(
            "bad field name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    if !value.iter().all(|&b| is_field_text(b)) {
        return Err(bad("control byte in a field value"));
    }
    let value = String::from_utf8_lossy(value.trim_ascii()).into_owned();
    Ok((String::from_utf8_lossy(name).to_ascii_lowercase(), value))
}

/// Reads one response from `reader`, strictly.
pub fn read(reader: &mut BufReader<TcpStream>) -> io::Result<Strict> {
    let (version, status, reason) = status_line(&line(reader)?)?;
    let mut fields = Vec::new();
    loop {
        let raw = line(reader)?;
        if raw.is_empty() {
            break;
        }
        if raw[0] == b' ' || raw[0] == b'\t' {
            return Err(bad("obs-fold in a response"));
        }
        fields.push(field_line(&raw)?);
    }
    let lengths: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    if fields.iter().any(|(n, _)| n == "transfer-encoding") {
        return Err(bad("transfer-encoding in an answer"));
    }
    let length = match (status, lengths.as_slice()) {
        (100..=199, []) => 0,
        (100..=199, _) => return Err(bad("content-length on a 1xx")),
        (_, [one]) if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => one
            .parse::<usize>()
            .map_err(|_| bad("content-length too large"))?,
        _ => {
            return Err(bad(format!(
                "need exactly one valid content-length: {lengths:?}"
            )))
        }
    };
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Strict {
        version,
        status,
        reason,
        fields,
        body,
    })
}

/// After a `connection: close` answer: nothing more, then a clean FIN (not a reset).
pub fn expect_clean_eof(reader: &mut BufReader<TcpStream>) -> io::Result<()> {
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest)?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(bad(format!(
            "{} bytes after a close answer: {:?}",
            rest.len(),
            String::from_utf8_lossy(&rest[..rest.len().min(100)])
        )))
    }
}
