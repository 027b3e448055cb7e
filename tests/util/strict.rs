//! A strict HTTP/1.1 response reader for the socket tests: it fails on anything RFC 9112 does
//! not allow a server to send, so a test cannot pass on an answer a strict client (h11, a
//! proxy) would reject.
//!
//! Checked: the status line (`HTTP/1.x SP 3DIGIT SP reason CRLF`), every field line
//! (`token ":" OWS value OWS CRLF`, no bare LF or CR, no whitespace before the colon, no
//! obs-fold, no control bytes), exactly one `content-length` on a final answer (none on a
//! `1xx` or `204`), no `transfer-encoding`, exactly one `date` in IMF-fixdate on a final answer
//! (RFC 9110 6.6.1), and a body of exactly that length, or none at all for an answer to `HEAD`
//! and for `1xx`, `204` and `304` ([`read_for`]), so the next answer parses from the very next
//! byte. After a `connection: close` answer the server must send nothing more, then FIN (not a
//! reset).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::READ_TIMEOUT;

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

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
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

/// Reads one response from `reader`, strictly: the answer to a request that was not `HEAD`.
pub fn read(reader: &mut BufReader<TcpStream>) -> io::Result<Strict> {
    read_for(reader, "GET")
}

/// Reads one response to a request with `method` from `reader`, strictly.
pub fn read_for<R: Read>(reader: &mut BufReader<R>, method: &str) -> io::Result<Strict> {
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
    if status >= 200 {
        check_date(&fields)?;
    }
    let length = match (status, lengths.as_slice()) {
        (100..=199 | 204, []) => 0,
        (100..=199 | 204, _) => return Err(bad("content-length on a 1xx or 204")),
        (_, [one]) if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => one
            .parse::<usize>()
            .map_err(|_| bad("content-length too large"))?,
        _ => {
            return Err(bad(format!(
                "need exactly one valid content-length: {lengths:?}"
            )))
        }
    };
    let bodyless = method == "HEAD" || matches!(status, 100..=199 | 204 | 304);
    let mut body = vec![0; if bodyless { 0 } else { length }];
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

/// Exactly one `date`, an IMF-fixdate within a minute of this machine's clock.
fn check_date(fields: &[(String, String)]) -> io::Result<()> {
    let dates: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n == "date")
        .map(|(_, v)| v.as_str())
        .collect();
    let [date] = dates[..] else {
        return Err(bad(format!("need exactly one date: {dates:?}")));
    };
    let secs =
        parse_imf_fixdate(date).ok_or_else(|| bad(format!("not an IMF-fixdate: {date:?}")))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if secs.abs_diff(now) > 60 {
        return Err(bad(format!(
            "date {date:?} is {secs}, the clock says {now}"
        )));
    }
    Ok(())
}

/// Seconds since the epoch of `Sun, 06 Nov 1994 08:49:37 GMT`, exactly that shape (the day
/// name must match the date).
pub fn parse_imf_fixdate(date: &str) -> Option<u64> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = date.as_bytes();
    if b.len() != 29 || !date.is_ascii() || &date[3..5] != ", " || &date[25..] != " GMT" {
        return None;
    }
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let digits = &date[r];
        digits.bytes().all(|c| c.is_ascii_digit()).then_some(())?;
        digits.parse().ok()
    };
    let (day, year) = (num(5..7)?, num(12..16)?);
    let month = MONTHS.iter().position(|m| *m == &date[8..11])? as u64 + 1;
    let (h, m, s) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if h > 23 || m > 59 || s > 60 || day == 0 || day > 31 || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    if DAYS[(days % 7) as usize] != &date[..3] {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Every answer in `data` (what a client read: answers back to back, to requests with
/// `method`), each read strictly, in order; panics on anything not strictly an answer.
pub fn read_all_for(data: &[u8], method: &str) -> Vec<Strict> {
    let mut reader = BufReader::new(data);
    let mut answers = Vec::new();
    while !reader.buffer().is_empty() || !reader.get_ref().is_empty() {
        answers.push(read_for(&mut reader, method).expect("a strict answer"));
    }
    answers
}

/// One connection per request of `requests` (its method, its bytes), each request sent: the
/// method with its connection, to read its answer by.
pub fn connect_each<'a>(
    addr: SocketAddr,
    requests: &[(&'a str, &[u8])],
) -> Vec<(&'a str, StrictClient)> {
    requests
        .iter()
        .map(|&(method, bytes)| {
            let mut client = StrictClient::connect(addr);
            client.send(bytes);
            (method, client)
        })
        .collect()
}

/// A client connection whose answers are read strictly, in order, knowing each request's method.
pub struct StrictClient {
    reader: BufReader<TcpStream>,
}

impl StrictClient {
    pub fn connect(addr: SocketAddr) -> StrictClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        StrictClient {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Shuts the client's write side (its FIN: `nc -N`, a Python client's `shutdown(SHUT_WR)`);
    /// the answers are still read.
    pub fn send_fin(&mut self) {
        self.reader
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown(Write)");
    }

    /// The reader, for a test that reads an answer that may not come (`read_for`).
    pub fn reader_mut(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// Reads the answer to a request with `method`; panics on anything not strictly valid.
    pub fn answer(&mut self, method: &str) -> Strict {
        read_for(&mut self.reader, method).unwrap_or_else(|e| panic!("answer to {method}: {e}"))
    }

    /// Asserts that no byte follows what was read: within `wait` nothing arrives on a kept-alive
    /// connection, or (`closed`) the server closes it cleanly.
    pub fn expect_nothing_more(&mut self, closed: bool, wait: Duration) {
        let unread = self.reader.buffer();
        assert!(
            unread.is_empty(),
            "unexpected bytes after the last answer: {:?}",
            String::from_utf8_lossy(unread)
        );
        if closed {
            expect_clean_eof(&mut self.reader).expect("a clean close");
            return;
        }
        self.reader.get_ref().set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 64];
        match self.reader.read(&mut byte) {
            Ok(0) => panic!("the server closed a kept-alive connection"),
            Ok(n) => panic!(
                "unexpected bytes after the last answer: {:?}",
                String::from_utf8_lossy(&byte[..n])
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read failed: {e}"),
        }
        self.reader
            .get_ref()
            .set_read_timeout(Some(READ_TIMEOUT))
            .unwrap();
    }
}
