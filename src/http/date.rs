//! The `date` field (RFC 9110 §6.6.1), formatted at most once a second of the server's clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

/// The field line `date: <IMF-fixdate>\r\n`, as the writer copies it.
pub(crate) const LINE_LEN: usize = 6 + DATE_LEN + 2;

/// The status line of the common answer, before its `date` line.
const OK: &[u8; 17] = b"HTTP/1.1 200 OK\r\n";
/// The fields of the common answer after its `date` line, up to the length's digits.
const PLAIN: &[u8; 42] = b"content-type: text/plain\r\ncontent-length: ";
/// Length of [`DateLine::ok_plain`].
pub(crate) const OK_PLAIN_LEN: usize = OK.len() + LINE_LEN + PLAIN.len();
/// Bytes after [`DateLine::ok_plain`] copied with it by [`DateLine::ok_plain_and_room`]: room
/// for a short answer's tail (two length digits at most, the head's end, a body of at most
/// `SHORT_BODY` bytes), written over in place. 16, not 32: the head and its room are then 112
/// bytes, seven 16-byte moves instead of eight (4 instructions per request fewer, callgrind,
/// depth 16, round 28), and bodies of 11 to 16 bytes take the general path.
pub(crate) const TAIL_ROOM: usize = 16;

/// The `date` field line (`date: <IMF-fixdate>\r\n`), kept inside the head of the most common
/// answer (`200`, HTTP/1.1, `text/plain`) up to its length, so that head is one copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DateLine {
    /// The head up to the length, then [`TAIL_ROOM`] zeros.
    ok_plain: [u8; OK_PLAIN_LEN + TAIL_ROOM],
}

impl DateLine {
    /// The line for the IMF-fixdate `date`.
    pub(crate) const fn new(date: &[u8; DATE_LEN]) -> Self {
        let mut ok_plain = [0; OK_PLAIN_LEN + TAIL_ROOM];
        let mut i = 0;
        while i < OK_PLAIN_LEN {
            ok_plain[i] = if i < OK.len() {
                OK[i]
            } else if i < OK.len() + 6 {
                b"date: "[i - OK.len()]
            } else if i < OK.len() + 6 + DATE_LEN {
                date[i - OK.len() - 6]
            } else if i < OK.len() + LINE_LEN {
                b"\r\n"[i - OK.len() - 6 - DATE_LEN]
            } else {
                PLAIN[i - OK.len() - LINE_LEN]
            };
            i += 1;
        }
        DateLine { ok_plain }
    }

    /// The field line, with its CRLF.
    pub(crate) fn line(&self) -> &[u8] {
        &self.ok_plain[OK.len()..OK.len() + LINE_LEN]
    }

    /// `HTTP/1.1 200 OK`, the date line, `content-type: text/plain` and `content-length: `.
    pub(crate) fn ok_plain(&self) -> &[u8] {
        &self.ok_plain[..OK_PLAIN_LEN]
    }

    /// [`ok_plain`](DateLine::ok_plain) and [`TAIL_ROOM`] bytes of room after it, in one copy.
    pub(crate) fn ok_plain_and_room(&self) -> &[u8; OK_PLAIN_LEN + TAIL_ROOM] {
        &self.ok_plain
    }

    fn set_date(&mut self, date: &[u8; DATE_LEN]) {
        let at = OK.len() + 6;
        self.ok_plain[at..at + DATE_LEN].copy_from_slice(date);
    }
}

/// The current date as an IMF-fixdate, reformatted only when a new second has begun.
#[derive(Clone, Debug)]
pub(crate) struct DateCache {
    /// `date: Thu, 01 Jan 1970 00:00:00 GMT\r\n`, inside the common answer's head.
    line: DateLine,
    /// When the text goes stale: the next whole second of the wall clock, on the server's clock.
    stale_at: Option<Instant>,
    /// How many times the text was formatted (for the test that it is once a second).
    formatted: u64,
}

impl DateCache {
    pub(crate) fn new() -> Self {
        DateCache {
            line: DateLine::new(b"Thu, 01 Jan 1970 00:00:00 GMT"),
            stale_at: None,
            formatted: 0,
        }
    }

    /// Brings the date up to `now` (the instant the loop is serving): a comparison, and once a
    /// second a read of the wall clock and a format.
    #[inline]
    pub(crate) fn refresh(&mut self, now: Instant) {
        if self.stale_at.is_none_or(|at| now >= at) {
            self.reformat(now);
        }
    }

    #[cold]
    fn reformat(&mut self, now: Instant) {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        self.line.set_date(&imf_fixdate(since_epoch.as_secs()));
        let left = Duration::from_secs(1) - Duration::from_nanos(since_epoch.subsec_nanos().into());
        // At the end of what the clock can count (a session's virtual clock), stale at once.
        self.stale_at = now.checked_add(left);
        self.formatted += 1;
    }

    /// The `date` field line (with its CRLF), as of the last [`refresh`](DateCache::refresh).
    pub(crate) fn line(&self) -> &DateLine {
        &self.line
    }

    #[cfg(test)]
    pub(crate) fn formatted(&self) -> u64 {
        self.formatted
    }
}

/// `secs` after the Unix epoch as an IMF-fixdate (always 29 bytes; years past 9999 print as
/// 9999, which no clock this code meets will reach).
pub(crate) fn imf_fixdate(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let year = year.min(9999);
    let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    text[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut text[5..7], day);
    text[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two_digits(&mut text[12..14], year / 100);
    two_digits(&mut text[14..16], year % 100);
    two_digits(&mut text[17..19], of_day / 3600);
    two_digits(&mut text[20..22], of_day / 60 % 60);
    two_digits(&mut text[23..25], of_day % 60);
    text
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1-12) and day (1-31) of `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for dates on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(secs: u64) -> String {
        String::from_utf8(imf_fixdate(secs).to_vec()).unwrap()
    }

    #[test]
    fn formats_imf_fixdate() {
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110 §5.6.7's example.
        assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT"); // a leap day
        assert_eq!(date(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT"); // 2100: no leap day
        assert_eq!(date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(date(253_402_300_799), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn formatted_at_most_once_a_second() {
        let mut cache = DateCache::new();
        let start = Instant::now();
        cache.refresh(start);
        let stale_at = cache.stale_at.unwrap();
        assert!(stale_at > start && stale_at <= start + Duration::from_secs(1));
        let first = cache.line().line().to_vec();
        let step = (stale_at - start) / 1000;
        for i in 0..1000 {
            cache.refresh(start + step * i);
        }
        assert_eq!(cache.formatted(), 1, "once for the whole second");
        assert_eq!(cache.line().line(), first);
        cache.refresh(stale_at);
        assert_eq!(cache.formatted(), 2, "again once the second is over");
        let line = cache.line().line();
        assert!(line.starts_with(b"date: ") && line.ends_with(b" GMT\r\n"));
        let head = cache.line().ok_plain();
        assert!(head.starts_with(b"HTTP/1.1 200 OK\r\ndate: ") && head[17..].starts_with(line));
        assert!(head.ends_with(b" GMT\r\ncontent-type: text/plain\r\ncontent-length: "));
    }
}
