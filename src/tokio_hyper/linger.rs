//! The socket as hyper sees it, and a clean end when hyper closes it with input still coming.
//!
//! hyper ends a connection whose answer says `connection: close` by shutting its write side and
//! dropping the socket. If the client is still sending (a `413` answered before the body was
//! read, a `503` to an upload during the drain), closing a socket with unread input resets the
//! connection, and the reset can discard the answer before the client reads it (curl: "Send
//! failure: Broken pipe", the status never read). RFC 9112 §9.6: close the write side, then
//! keep reading until the client closes. So, as on the mio server: when hyper has shut the
//! write side, the socket goes back to its connection's task, which reads and drops what comes
//! until the client closes or for at most [`LINGER`], then closes it.
//!
//! It is also where the server ends hyper's reads (`Reads`: an evicted connection,
//! `Connections::evict_oldest`, and the stop's keep-alive step): once nothing more has arrived,
//! its next read says end of input, so hyper ends the connection, and the connection's task
//! takes hyper's read buffer back (`server::reads_ended`): a head in progress there is answered
//! (evicted) or given back to hyper (the stop), and the socket lingers as above.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::connections::{Conn, Reads};
use super::tally::Tally;
use crate::delivery::Delivery;

/// How long a socket closed by the server keeps reading (and dropping) what its client sends
/// once it has sent everything (`src/unsent.rs`) and its FIN: from the FIN, and again from each
/// read of what the client still sends (an inactivity timeout, as nginx's `lingering_timeout`),
/// within [`LINGER_LIMIT`] in all (as on the mio loops).
pub(crate) const LINGER: Duration = Duration::from_millis(500);
/// The longest a socket closed by the server lingers in all, however slowly its client reads
/// what the socket still holds (as on the mio loops).
pub(crate) const LINGER_LIMIT: Duration = Duration::from_secs(5);
/// The most a lingering socket reads and drops (as on the mio loops).
const LINGER_DISCARD: u64 = 16 << 20;

/// A `TcpStream` that, dropped after hyper shut its write side, is handed back to its
/// connection's task ([`Conn::take_handoff`]) instead of being closed.
pub(crate) struct LingeringIo {
    /// `None` only once dropped.
    stream: Option<TcpStream>,
    /// hyper shut the write side: the connection ends by the server's choice.
    shut: bool,
    /// The server ended hyper's reads (an eviction, the stop: [`Reads`]): hyper writes no more,
    /// and the connection's task answers what hyper's read buffer holds ([`Self::answer_ended`])
    /// or gives it back to hyper ([`Self::replay`]).
    reads_ended: bool,
    /// A head in progress given back to hyper ([`Reads::Replay`]): read before the socket.
    replay: Bytes,
    /// What the connection's requests share: told of full writes, asked whether the
    /// connection was evicted, and where the socket goes back to the task.
    conn: Rc<Conn>,
    /// How fast the client must read its answers once a write found the socket full.
    stall: Stall,
    /// The stall timer, the end of the current window: set when a write finds the socket full,
    /// kept (not re-allocated) for the next stall.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Whether a window runs: a write found the socket full and none has been taken whole since.
    stalling: bool,
    /// Bytes the socket took in the current window.
    sent_in_window: u64,
    /// The client's end of input (FIN) was read and held back one poll (`end_of_input`).
    eof_seen: bool,
    /// What the socket took, and where its answers end in it (`src/delivery.rs`).
    written: Written,
    /// A reset of the client's is seen without a peek (`watch_peer`): hyper's last read
    /// of the socket waited (tokio wakes the task at its next change, and hyper reads it),
    /// or bytes or the end of input wait in the socket, hyper's to read (a read that filled
    /// hyper's buffer, a peek that found either): what comes behind, hyper sees when it reads.
    covered: bool,
    /// hyper's reads ended with the count of the head in progress at `max_head` and a byte
    /// more waiting ([`Self::read_near_head_limit`]).
    head_continues: bool,
}

/// What a socket took from hyper, and where the connection's answers end in it: for the answers
/// a close that drops what it had not delivered loses ([`Conn::count_undelivered`]).
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Bytes the socket took.
    pub(crate) bytes: u64,
    pub(crate) delivery: Delivery,
}

impl Written {
    /// A write returned: what the socket took counts.
    #[inline]
    fn count(&mut self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled {
            self.bytes += *n as u64;
        }
    }
}

/// The rest of an answer of the server's own (the stop's `503`, an eviction's `408`) that a
/// full send buffer did not take ([`LingeringIo::answer_ended`]): the linger sends it as the
/// client reads, then counts it (`count`), then shuts the write side.
#[derive(Debug)]
pub(crate) struct Owed {
    rest: Vec<u8>,
    count: fn(&Tally),
}

/// The send rate rule (`Options::min_send_rate`, as the mio server's `Limits::min_send_rate`):
/// once a write finds the socket full, the client must have taken `min_sent` bytes in each
/// `window` until a write is taken whole.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stall {
    window: Duration,
    min_sent: u64,
}

impl Stall {
    /// Windows of `window` (the idle timeout), at `rate` bytes per second (at least one byte
    /// per window).
    pub(crate) fn new(window: Duration, rate: u64) -> Self {
        let earned = u128::from(rate) * window.as_millis() / 1000;
        let min_sent = u64::try_from(earned).unwrap_or(u64::MAX).max(1);
        Stall { window, min_sent }
    }
}

/// An answer of the socket's own, with `connection: close`: `408` to an evicted connection
/// mid-head, `503` to one over the limit. With a `date`, as every other answer: RFC 9110 §6.6.1
/// requires one on a `4xx` from a server with a clock. `explanation`, if not empty, is its
/// plain-text body (RFC 9110 §15.5: a server SHOULD explain a `4xx`), as the mio loops send it:
/// the evicted head's `408` says `Request Timeout` there, and said nothing here.
#[cold]
pub(crate) fn closing_answer(status: &str, explanation: &str) -> Vec<u8> {
    closing_answer_to(status, explanation, false)
}

/// [`closing_answer`], to a `HEAD` request if `head`: its explanation's length alone, no body
/// (RFC 9110 §9.3.2), as the mio loops answer a `HEAD` they refuse.
#[cold]
pub(crate) fn closing_answer_to(status: &str, explanation: &str, head: bool) -> Vec<u8> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let typed = if explanation.is_empty() {
        ""
    } else {
        "content-type: text/plain\r\n"
    };
    let length = explanation.len();
    let body = if head { "" } else { explanation };
    format!(
        "HTTP/1.1 {status}\r\ndate: {date}\r\n{typed}connection: close\r\ncontent-length: {length}\r\n\r\n{body}"
    )
    .into_bytes()
}

impl LingeringIo {
    pub(crate) fn new(stream: TcpStream, conn: Rc<Conn>, stall: Stall) -> Self {
        LingeringIo {
            stream: Some(stream),
            shut: false,
            reads_ended: false,
            replay: Bytes::new(),
            conn,
            stall,
            stalled: None,
            stalling: false,
            sent_in_window: 0,
            eof_seen: false,
            covered: false,
            head_continues: false,
            written: Written::default(),
        }
    }

    /// The client shut its write side (FIN), maybe right after a complete request (`nc -N`,
    /// a client that half-closes and waits: RFC 9112 §9.6 lets it). hyper, reading the end of
    /// input before it polled the request it has just read, drops that request unanswered
    /// (its `half_close` is off, so that a client gone mid-request aborts it). So the first
    /// end of input reaches hyper one poll late: `Pending`, the task woken, and hyper writes
    /// what its requests have answered by now (as the mio loop answers a request it read
    /// with the end of input); the next read tells it. A request still in its handler then
    /// ends *client gone*, as before.
    ///
    /// While the socket has not taken what hyper wrote (`stalling`), the end of input is held
    /// back (`Pending`: the write's wake-up, the writable event or the window's timer, brings
    /// hyper back): hyper reads while it writes its last answer and takes an end of input then
    /// for a client gone mid-answer (`mid_message_detect_eof`), dropping the rest of an answer
    /// already made (and counted). Once written, the end of input ends the connection as
    /// before; a client that reads nothing is still cut by the send rate rule.
    ///
    /// A head past `max_head` that the end of input follows at once (`printf ... | nc -q`, a
    /// client that shuts its write side after a huge head) is refused as one that waits
    /// ([`Self::head_past_limit`]): hyper then read on to the end without a read that waited,
    /// and closed the connection unanswered on the incomplete head, where the mio loops answer
    /// `431` (`414`, `501`) (QA client21-1).
    #[cold]
    #[inline(never)]
    fn end_of_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.conn.head_overdrawn() && self.end_reads_past_limit() {
            return Poll::Ready(Ok(()));
        }
        if self.conn.holds_client_end() {
            // `Options::with_half_close`: the request out is answered, with close; hyper is
            // woken by it (its answer, or its body's next frame), and reads the end again
            // once no request is out.
            return Poll::Pending;
        }
        if self.eof_seen {
            if self.stalling {
                return Poll::Pending;
            }
            return Poll::Ready(Ok(()));
        }
        self.eof_seen = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// A write of `offered` bytes returned: the connection is told whether it found the
    /// socket full; if it did, a window of the send rate rule runs (see [`Stall`]; past a
    /// window in which the client read too little, the write fails: hyper ends the
    /// connection, and a request whose answer was still being written ends *client gone*).
    /// A write taken whole ends the window; one taken in part counts towards it.
    #[inline]
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        offered: impl FnOnce() -> usize,
        polled: Poll<io::Result<usize>>,
        probe: impl Fn(SockRef<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let pending = polled.is_pending();
        self.conn.wrote(pending);
        if pending {
            return self.socket_full(cx, offered, probe);
        }
        if self.stalling {
            self.count_sent(offered(), &polled);
        }
        polled
    }

    /// tokio found the socket full, or did not try it: while a window runs the socket is
    /// written to directly (`probe`) on every poll, as the mio loop writes on every event of
    /// the connection. tokio tries a write only after a writable event, and Linux signals one
    /// only once a third of a full send buffer has drained, which a slow but steady reader of
    /// a large answer can take many windows to do: what it reads meanwhile would go uncounted.
    #[cold]
    #[inline(never)]
    fn socket_full(
        &mut self,
        cx: &mut Context<'_>,
        offered: impl FnOnce() -> usize,
        probe: impl Fn(SockRef<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.stalling {
            if let Some(stream) = &self.stream {
                if let Ok(taken @ 1..) = probe(SockRef::from(stream)) {
                    // The write went through after all: no answer waits for the socket
                    // (left set, the stop took a whole answer for one still on its way, and
                    // a head behind it was force-closed unanswered: QA client24-1).
                    self.conn.wrote(false);
                    let written = Poll::Ready(Ok(taken));
                    self.count_sent(offered(), &written);
                    return written;
                }
            }
        }
        self.poll_stall(cx, probe)
    }

    #[cold]
    #[inline(never)]
    fn count_sent(&mut self, offered: usize, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = *polled {
            self.sent_in_window = self.sent_in_window.saturating_add(n as u64);
            if n < offered {
                return; // Still behind: the window goes on.
            }
        }
        self.stalling = false;
    }

    /// A write found the socket full: a window begins if none runs. At a window's end the
    /// socket is written to directly once more (`probe`), and the window judged.
    fn poll_stall(
        &mut self,
        cx: &mut Context<'_>,
        probe: impl Fn(SockRef<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if !self.stalling {
            self.stalling = true;
            self.new_window();
        }
        let Some(timer) = self.stalled.as_mut() else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let taken = match &self.stream {
            Some(stream) => probe(SockRef::from(stream)).unwrap_or(0),
            None => 0,
        };
        self.sent_in_window = self.sent_in_window.saturating_add(taken as u64);
        if self.sent_in_window < self.stall.min_sent {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        self.new_window();
        if taken > 0 {
            self.conn.wrote(false);
            return Poll::Ready(Ok(taken));
        }
        // Registers the new window's timer with this task.
        match self.stalled.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            _ => Poll::Pending,
        }
    }

    /// A window of the send rate rule begins now.
    fn new_window(&mut self) {
        self.sent_in_window = 0;
        let deadline = tokio::time::Instant::now() + self.stall.window;
        match &mut self.stalled {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.stalled = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// A read while the server, not hyper, ends the socket's reads ([`Reads`]): `None` to
    /// read as usual.
    #[cold]
    #[inline(never)]
    fn read_specially(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Option<Poll<io::Result<()>>> {
        match self.conn.reads() {
            Reads::Hyper => None,
            Reads::Replay => self.read_replay(buf),
            Reads::Evicted | Reads::Stop => self.read_evicted(cx, buf),
            Reads::Deadline | Reads::HeadTooLong => self.read_to_end(cx, buf),
            Reads::Chunked => {
                let filled = buf.filled().len();
                let polled = self.read_as_usual(cx, buf);
                self.conn.scan_chunks(&buf.filled()[filled..]);
                Some(polled)
            }
        }
    }

    /// A read of a connection chosen for eviction, or reached by the stop's keep-alive step:
    /// `None` to read as usual. A request that began on it since (its head had arrived) is
    /// served, keep-alive off (at the stop, refused `503` + close). Else as
    /// [`Self::read_to_end`]: the connection's task then answers the head in progress
    /// (evicted) or gives it back to hyper (the stop) (`server::reads_ended`).
    fn read_evicted(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Option<Poll<io::Result<()>>> {
        if !self.reads_ended && self.conn.reprieve_if_a_request_began() {
            cx.waker().wake_by_ref(); // the task's next poll turns keep-alive off
            return None;
        }
        self.read_to_end(cx, buf)
    }

    /// A read the server ends: what has arrived is hyper's first (it may complete a head,
    /// then served); once nothing more has, the read says end of input, hyper ends the
    /// connection, its read buffer (a head in progress, if any) goes back to the connection's
    /// task with the socket, and writes fail meanwhile. The client's own end (or a failed
    /// read) is hyper's to see, as usual.
    fn read_to_end(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Option<Poll<io::Result<()>>> {
        if self.reads_ended {
            return Some(Poll::Ready(Ok(())));
        }
        let stream = self.stream.as_mut()?;
        let filled = buf.filled().len();
        match Pin::new(&mut *stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == filled => return None,
            Poll::Ready(read) => return Some(Poll::Ready(read)),
            Poll::Pending => {}
        }
        self.reads_ended = true;
        Some(Poll::Ready(Ok(())))
    }

    /// A head in progress given back to hyper, read before the socket (nothing given back:
    /// the socket at once).
    fn read_replay(&mut self, buf: &mut ReadBuf<'_>) -> Option<Poll<io::Result<()>>> {
        if self.replay.is_empty() {
            self.conn.set_reads(Reads::Hyper);
            return None;
        }
        let n = self.replay.len().min(buf.remaining());
        buf.put_slice(&self.replay[..n]);
        self.replay.advance(n);
        if self.replay.is_empty() {
            self.conn.set_reads(Reads::Hyper);
        }
        Some(Poll::Ready(Ok(())))
    }

    /// hyper's connection ended because the server ended its reads (`read_to_end`): the
    /// end's answer, if any, is written (with `connection: close`; `count` counts it once the
    /// socket took it whole) and the socket lingers when dropped, as after any answer that
    /// closes. Nothing if hyper's connection ended otherwise (the client's end, a failed read:
    /// the socket as hyper left it). Returns whether the socket took the answer whole at once.
    ///
    /// What a full send buffer did not take (a client that has not read the answers before
    /// it: `WouldBlock`, or part of it) is the linger's to send as the client reads
    /// ([`Owed`]), counted once whole, as the mio loops' close step sends its `503`'s rest on
    /// the writable event. Before, it was written with one send and the rest dropped: such a
    /// client read its earlier answers, then an end of input where mio sends the `503` (QA
    /// client24-1).
    #[cold]
    #[inline(never)]
    pub(crate) fn answer_ended(mut self, answer: Option<&[u8]>, count: fn(&Tally)) -> bool {
        if !self.reads_ended {
            return false;
        }
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        let mut whole = false;
        let mut owed = None;
        if let Some(answer) = answer.filter(|_| !self.conn.write_is_pending()) {
            // Counted only if the socket took it whole: an answer that did not go out (the
            // client reset first) was none. Written to the socket directly: tokio's
            // `try_write` trusts the readiness its reactor last saw, none yet for a connection
            // accepted in this turn (the close step's), and wrote nothing there.
            let sent = match SockRef::from(&*stream).send(answer) {
                Ok(n) => Some(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(0),
                Err(_) => None, // The socket failed: nothing more goes out.
            };
            if let Some(n) = sent {
                self.written.bytes += n as u64;
                whole = n == answer.len();
                if whole {
                    count(&self.conn.tally);
                } else {
                    owed = Some(Owed {
                        rest: answer[n..].to_vec(),
                        count,
                    });
                }
            }
        }
        if owed.is_some() {
            // Handed off now with what it owes; the linger shuts the write side once sent.
            if let Some(stream) = self.stream.take() {
                let written = std::mem::take(&mut self.written);
                self.conn.hand_off(stream, written, owed);
            }
            return false;
        }
        // The socket lingers on drop (`linger`), which shuts its write side.
        if !crate::unsent::WATCHABLE {
            let _ = SockRef::from(&*stream).shutdown(std::net::Shutdown::Write);
        }
        self.shut = true;
        whole
    }

    /// Whether the server ended hyper's reads ([`Self::read_to_end`]).
    pub(crate) fn reads_ended(&self) -> bool {
        self.reads_ended
    }

    /// What the connection's requests share.
    pub(crate) fn conn(&self) -> &Conn {
        &self.conn
    }

    /// A head in progress hyper held when the stop ended its reads goes back to hyper (a new
    /// connection of the same socket): read first, then the socket, and writes go on.
    #[cold]
    pub(crate) fn replay(self, head: Bytes) -> Self {
        self.conn.hold_head();
        self.give_back(head)
    }

    /// What hyper's buffer held when a head's count went past `max_head` goes back to hyper (a
    /// new connection of the same socket) when it is within the limit after all (the count
    /// held requests read with the head). The count begins again there, less the head given
    /// back (its empty lines aside, as the limit is judged): not counted, a head given back
    /// then grew past `max_head` unrefused until hyper's header timeout (review20).
    #[cold]
    pub(crate) fn give_back(mut self, head: Bytes) -> Self {
        self.conn.head_began();
        self.conn
            .read_for_hyper(super::server::after_empty_lines(&head).len());
        self.conn.unadmitted_given(); // one hyper dropped with its connection
        self.reads_ended = false;
        // hyper, ended cleanly (nothing of a head), shut the socket's write side (not the
        // socket's: its reads were ended): the new connection's is open (review20).
        self.shut = false;
        self.replay = head;
        self.conn.set_reads(Reads::Replay);
        self
    }

    /// hyper asks for more while more than `max_head` bytes were read since the count began
    /// ([`Conn::head_room`]), and the socket has nothing more yet. With no request out, no
    /// body hyper may still read, and no answer waiting for the socket (hyper, between
    /// requests, reads a head), hyper's reads end here ([`Reads::HeadTooLong`]): the
    /// connection's task answers the head from hyper's buffer as the mio loops refuse a head
    /// past `max_head` at once, where hyper waited for its header timeout or a full buffer (QA
    /// client20-1). Inside a request (`Conn::inside_a_request`: one admitted out, an answer
    /// of the adapter's own not yet given to hyper, a body hyper may still read) hyper reads
    /// with its buffer empty, and the count begins again: a body read after its request ended
    /// (a handler may read it after its answer) is not a head (ended as one, its rest went to
    /// a new hyper connection as requests), and a probe's answer not yet given to hyper was
    /// lost with hyper's connection (review20). Else the answer's write waits.
    #[cold]
    #[inline(never)]
    fn head_past_limit(&mut self) -> Poll<io::Result<()>> {
        self.covered = true;
        if self.conn.inside_a_request() {
            self.conn.head_began();
            return Poll::Pending;
        }
        match self.end_reads_past_limit() {
            true => Poll::Ready(Ok(())),
            false => Poll::Pending,
        }
    }

    /// hyper asks for up to `buf`'s room to read a head while the count of the head in
    /// progress has less left before `max_head` ([`Conn::head_room_under`]), with what it has
    /// of it in its buffer (never more than the count: [`Conn::head_room`]): the read takes
    /// at most what is left before `max_head`:
    /// the count never passes the limit while a head is read, so a head hyper parses whole is
    /// within it by its bytes, whatever its estimate (before, pipelined heads were judged by
    /// the estimate: the count held the requests read with them). With nothing left, the
    /// socket is peeked: a byte more (the head is not whole) ends hyper's reads
    /// ([`Self::head_past_limit`]), and its buffer is judged by its bytes (past the limit:
    /// `431`, `414` or `501` + close; within it, the count held other requests: given back
    /// to hyper, the count begun again at the head, `server::reads_ended`); nothing yet waits.
    #[cold]
    #[inline(never)]
    fn read_near_head_limit(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Option<Poll<io::Result<()>>> {
        // Past the limit already (a read inside a request brought more than `max_head`, the
        // head after its body among it): judged as at it.
        let left = usize::try_from(self.conn.head_room()).unwrap_or(0);
        let stream = self.stream.as_mut()?;
        if left == 0 {
            let mut byte = [std::mem::MaybeUninit::uninit(); 1];
            return match stream.poll_peek(cx, &mut ReadBuf::uninit(&mut byte)) {
                // Past the limit already, the socket empty: hyper's buffer is judged now, as
                // a head past the limit is refused at once (QA client20-1).
                Poll::Pending if self.conn.head_overdrawn() => Some(self.head_past_limit()),
                Poll::Pending => {
                    self.covered = true;
                    Some(Poll::Pending)
                }
                Poll::Ready(Ok(1..)) => {
                    self.head_continues = true;
                    Some(self.head_past_limit())
                }
                // The end of input, or a failed socket: the read says so, as usual.
                Poll::Ready(_) => None,
            };
        }
        // Read through the loop's sink and copied (no `unsafe` here, nor a fill of hyper's
        // room before each read): what is read is a head, small.
        let (polled, read) = SINK.with(|sink| {
            let mut sink = sink.borrow_mut();
            let mut within = ReadBuf::new(&mut sink[..left.min(SINK_LEN)]);
            let polled = Pin::new(stream).poll_read(cx, &mut within);
            buf.put_slice(within.filled());
            (polled, within.filled().len())
        });
        match polled {
            Poll::Ready(Ok(())) if read == 0 => None, // the end of input: read again as usual
            Poll::Ready(Ok(())) => {
                self.conn.read_for_hyper(read);
                self.covered = read == left;
                Some(Poll::Ready(Ok(())))
            }
            Poll::Pending => {
                self.covered = true;
                Some(Poll::Pending)
            }
            Poll::Ready(Err(e)) => {
                self.covered = false;
                Some(Poll::Ready(Err(e)))
            }
        }
    }

    /// Whether the head given back to hyper goes on past its bytes ([`Self::read_near_head_limit`]
    /// found a byte more with none left before `max_head`): then a head of `max_head` bytes
    /// is past the limit. Read and cleared as hyper's reads end.
    pub(crate) fn take_head_continues(&mut self) -> bool {
        std::mem::take(&mut self.head_continues)
    }

    /// hyper's reads end for a head counted past `max_head` ([`Reads::HeadTooLong`]), unless
    /// hyper is inside a request, an answer's write waits, or the server ends its reads
    /// otherwise already. Returns whether they ended.
    #[cold]
    fn end_reads_past_limit(&mut self) -> bool {
        let conn = &self.conn;
        if conn.inside_a_request() || conn.write_is_pending() || !conn.reads_as_usual() {
            return false;
        }
        conn.set_reads(Reads::HeadTooLong);
        self.reads_ended = true;
        true
    }
}

impl LingeringIo {
    /// hyper's header read timeout ended its connection with a request head in progress
    /// (`server::head_timed_out`): `answer` + close (`408`, or what the mio loops answer a
    /// head past `max_head`), unless an answer still waits for the socket (this one would land
    /// inside it). Counted `rejected` only if the socket took it whole; the socket then
    /// lingers when dropped (`shut`), as after any answer that closes.
    #[cold]
    #[inline(never)]
    pub(crate) fn answer_slow_head(mut self, answer: &[u8]) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if self.shut || self.conn.write_is_pending() {
            return;
        }
        if let Ok(n) = stream.try_write(answer) {
            self.written.bytes += n as u64;
            if n == answer.len() {
                self.conn.tally.bump(|s| &mut s.rejected); // bad input, as the mio loops count it
            }
        }
        // The socket lingers on drop (`linger`), which shuts its write side.
        if !crate::unsent::WATCHABLE {
            let _ = SockRef::from(&*stream).shutdown(std::net::Shutdown::Write);
        }
        self.shut = true;
    }

    /// Whether the client reset the connection while a request of it is out and hyper does
    /// not read the socket: hyper reads it mid-request only when its buffer is empty (its
    /// `mid_message_detect_eof`), so behind pipelined requests already read a reset went
    /// unseen, and the request in its handler ran to its end, answered to a dead socket. The
    /// mio loops read on and end it *client gone*; so does this, as hyper does when a read
    /// fails: the error ends the connection, hyper drops the request's future (`Dispatch`:
    /// `ClientDisconnected`). An end of input (FIN) is not a reset: a client may half-close
    /// and wait for its answers (RFC 9112 §9.6), and behind requests in hyper's buffer it is
    /// hyper's to read once it has answered them, as before (`probe_hyper_v7`).
    ///
    /// Called only when nothing else would see a reset (`covered` unset). The socket is
    /// peeked only if tokio saw it readable since a read last found it empty (no system call
    /// otherwise: hyper's own partial read left it so), and the peek registers the task for
    /// its next change when it finds nothing: one wake per change, never a loop. When it finds
    /// bytes (more pipelined requests, a body hyper reads later: hyper's) or the end of input,
    /// the socket stays readable: a reset already recorded (`SO_ERROR`) is seen then, and the
    /// socket is not peeked again until hyper reads (what comes behind, hyper sees when it
    /// reads it).
    #[cold]
    #[inline(never)]
    fn watch_peer(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let stream = self.stream.as_ref()?;
        let mut byte = [std::mem::MaybeUninit::uninit(); 1];
        match stream.poll_peek(cx, &mut ReadBuf::uninit(&mut byte)) {
            Poll::Pending => None,
            Poll::Ready(Err(gone)) => Some(gone),
            Poll::Ready(Ok(_)) => {
                self.covered = true;
                stream.take_error().ok().flatten()
            }
        }
    }
}

impl Drop for LingeringIo {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let written = std::mem::take(&mut self.written);
        // Closed by the server: what the client sent or still sends (maybe on the way, so
        // not yet readable) must not reset the connection. Otherwise (aborted: the socket
        // failed, the slow-reader cut, a force-close): close now, and what the socket had
        // not delivered is dropped with it.
        if self.shut {
            self.conn.hand_off(stream, written, None);
        } else {
            self.conn.count_undelivered(&stream, &written);
        }
    }
}

/// The server closes the socket (a `connection: close` answer, an error or a refusal answered,
/// an eviction's `408`, the stop): its linger (RFC 9112 §9.6), as on the mio loops. Closing a
/// socket whose client still sends resets the connection, and the reset drops what the socket
/// has not sent yet: answers counted `served` that a client reading slowly had not received
/// (`benches/load/qa11_trunc.py`). So what the client sends is read and dropped (at most
/// [`LINGER_DISCARD`], then no more is read: its sending stalls on TCP flow control) while the
/// socket sends what it holds (`src/unsent.rs`: its writable event says when the last byte
/// left); then the write side is shut (FIN), and the reading goes on for [`LINGER`] more, for
/// the client's acknowledgement or close; in all at most [`LINGER_LIMIT`]. It ends at once when
/// the client closes. Where the socket cannot tell what it has sent, the write side was shut
/// when hyper shut it, and the linger is [`LINGER`], as before. The caller's `lingering`
/// counts the sockets doing this at once (the caller bounds it).
///
/// `answers`: the connection whose answers the socket carried, and what it wrote. If the
/// linger ends before the socket has sent everything (its time is up, or the client reset),
/// the close drops the rest, and the answers it held are taken back out of `served`
/// ([`Conn::count_undelivered`]), as on the mio loops.
pub(crate) fn linger(
    stream: TcpStream,
    lingering: &Rc<Cell<usize>>,
    mut answers: Option<(Rc<Conn>, Written)>,
    owed: Option<Owed>,
) -> impl Future<Output = ()> {
    // Counted now, not at the task's first turn: a burst of refusals is bounded as it comes.
    lingering.set(lingering.get() + 1);
    let lingering = Rc::clone(lingering);
    async move {
        let mut discarded = 0;
        // The socket sent everything (or cannot tell), or the client closed its side.
        let mut delivered = false;
        let _ = tokio::time::timeout(LINGER_LIMIT, async {
            if let (Some(owed), Some((conn, written))) = (owed, answers.as_mut()) {
                if !send_owed(&stream, &owed.rest, &mut written.bytes, &mut discarded).await {
                    return; // The socket failed: what it held is lost.
                }
                (owed.count)(&conn.tally);
            }
            if crate::unsent::watch(&stream) {
                tokio::select! {
                    // First: a turn whose read of the input yields (`drop_some`) reads once.
                    biased;
                    () = all_sent(&stream) => {}
                    closed = drop_input(&stream, &mut discarded) => {
                        // false: it reset. A reset hyper read first (an idle connection's read
                        // error is its graceful end) leaves an end of input behind it: the
                        // socket's hang-up tells it from the client's FIN (our side is not
                        // shut yet), and what the socket held is lost, as on the mio loops.
                        delivered = closed && !crate::unsent::hung_up(&stream);
                        return;
                    }
                }
                // A socket the client reset says it has sent everything too (its hang-up
                // makes it writable): what it held is lost, not sent.
                if crate::unsent::hung_up(&stream) {
                    return;
                }
            }
            delivered = true;
            let _ = SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
            drop_input_until_quiet(&stream, &mut discarded).await;
        })
        .await;
        if let Some((conn, written)) = answers.filter(|_| !delivered) {
            conn.count_undelivered(&stream, &written);
        }
        drop(stream); // The client closed, or the time is up.
        lingering.set(lingering.get() - 1);
    }
}

/// Writes `rest` as the socket takes it (the client reads what it held), reading and dropping
/// what the client sends meanwhile (as [`drop_input`], within [`LINGER_DISCARD`]); `bytes`
/// counts what the socket took. False if the socket failed. The caller bounds the time.
#[cold]
async fn send_owed(
    stream: &TcpStream,
    mut rest: &[u8],
    bytes: &mut u64,
    discarded: &mut u64,
) -> bool {
    let mut input_ended = false;
    while !rest.is_empty() {
        tokio::select! {
            ready = stream.writable() => {
                if ready.is_err() {
                    return false;
                }
                match stream.try_write(rest) {
                    Ok(n) => {
                        *bytes += n as u64;
                        rest = &rest[n..];
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return false,
                }
            }
            ready = stream.readable(), if !input_ended && *discarded < LINGER_DISCARD => {
                if ready.is_err() {
                    return false;
                }
                match drop_some(stream, discarded).await {
                    // The client's FIN: it may still read what it is owed.
                    Input::Ended => input_ended = true,
                    Input::Dropped | Input::Empty => {}
                    Input::Failed => return false,
                }
            }
        }
    }
    true
}

/// Resolves once the socket (armed by `unsent::watch`) has sent everything written to it, or
/// failed. The readiness tokio last saw may be stale: a probe that finds bytes unsent clears
/// it, and the next writable event comes once they have left.
async fn all_sent(stream: &TcpStream) {
    let probe = || match crate::unsent::all_sent(stream) {
        true => Ok(()),
        false => Err(io::ErrorKind::WouldBlock.into()),
    };
    while stream.writable().await.is_ok() {
        if stream.try_io(Interest::WRITABLE, probe).is_ok() {
            return;
        }
    }
}

/// Reads and drops what the client sends after our FIN until it closes, the socket fails, or
/// it has sent nothing for [`LINGER`] (the caller bounds the whole linger). A client still
/// sending (an upload refused before its end) keeps the socket open: closed under it, the
/// socket would reset the connection, its next write would fail, and a client that reads its
/// answer only once it has sent everything (as `http.client` does) would never read it.
async fn drop_input_until_quiet(stream: &TcpStream, discarded: &mut u64) {
    let quiet = tokio::time::sleep(LINGER);
    tokio::pin!(quiet);
    while *discarded < LINGER_DISCARD {
        tokio::select! {
            () = &mut quiet => return,
            ready = stream.readable() => {
                if ready.is_err() {
                    return;
                }
            }
        }
        match drop_some(stream, discarded).await {
            Input::Dropped => quiet.as_mut().reset(tokio::time::Instant::now() + LINGER),
            Input::Empty => {}
            Input::Ended | Input::Failed => return,
        }
    }
    quiet.await; // Past the discard bound: reads no more, and waits out the quiet time.
}

/// Reads and drops what the client sends until it closes (true) or the socket fails (false);
/// past [`LINGER_DISCARD`] bytes, reads no more and never resolves.
async fn drop_input(stream: &TcpStream, discarded: &mut u64) -> bool {
    while *discarded < LINGER_DISCARD {
        if stream.readable().await.is_err() {
            return false;
        }
        match drop_some(stream, discarded).await {
            Input::Dropped | Input::Empty => {}
            Input::Ended => return true,
            Input::Failed => return false,
        }
    }
    std::future::pending().await
}

/// The most a lingering socket reads in one turn of its task: one read of this many bytes,
/// as the mio loops read at most their 64 KiB buffer (`READ_BUDGET`) per connection and turn.
/// Before, it read 4 KiB at a time until the socket was empty (tokio's `readable()` takes
/// nothing from the task's budget): a client sending as fast as it was read kept one turn
/// going up to the 16 MiB bound, and at the stop the sockets lingering after their last
/// answer took the loop from the connections still answering (94% of the loop's CPU in the
/// lingers' reads with 200 connections pipelining uploads: the answers still being written
/// came seconds late, and the stop took 115 s at load average 29 where the mio loop's took
/// 9 s; benches/load/hyper29_stop.py).
pub(crate) const SINK_LEN: usize = 64 * 1024;

thread_local! {
    /// Where the loop's lingering sockets drop what they read: one per loop thread (a read
    /// never waits while it is borrowed), not [`SINK_LEN`] in each lingering task.
    static SINK: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; SINK_LEN].into_boxed_slice());
}

/// What a read of a lingering socket found.
enum Input {
    /// Bytes, read and dropped.
    Dropped,
    /// Nothing yet (the readiness was stale).
    Empty,
    /// The client's end of input.
    Ended,
    /// The socket failed (a reset).
    Failed,
}

/// One read of what the client sends, dropped (counted in `discarded`). Then the task yields
/// before its next read, so the loop's other tasks (the connections still answering) get
/// their turn between: one read, at most [`SINK_LEN`] bytes, per turn.
async fn drop_some(stream: &TcpStream, discarded: &mut u64) -> Input {
    let read = SINK.with(|sink| stream.try_read(&mut sink.borrow_mut()));
    match read {
        Ok(0) => Input::Ended,
        Ok(n) => {
            *discarded += n as u64;
            tokio::task::yield_now().await;
            Input::Dropped
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Input::Empty,
        Err(_) => Input::Failed,
    }
}

impl AsyncRead for LingeringIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.conn.reads_as_usual() {
            if let Some(end) = this.read_specially(cx, buf) {
                return end;
            }
        }
        this.read_as_usual(cx, buf)
    }
}

impl LingeringIo {
    /// hyper's read of the socket, as usual.
    #[inline(always)]
    fn read_as_usual(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self;
        let room = buf.remaining();
        // A read that could take the count of a head past `max_head`. Inside a request
        // (`Conn::inside_a_request`) hyper reads only with its buffer empty (for the client's
        // end, or a body): the count of the next head begins here (QA client30-2: begun only
        // once past the limit, it held the requests before, and a later head within the
        // limit, judged by its estimate, was `431`). Else hyper reads a head: off the common
        // path.
        if this.conn.head_room_under(room) {
            if this.conn.inside_a_request() {
                this.conn.head_began();
            } else if let Some(end) = this.read_near_head_limit(cx, buf) {
                return end;
            }
        }
        let Some(stream) = &mut this.stream else {
            return Poll::Ready(Ok(()));
        };
        let filled = buf.filled().len();
        let polled = Pin::new(stream).poll_read(cx, buf);
        // Hyper waits on the socket, or read all the room it gave (tokio then keeps the
        // socket readable: bytes may wait): the client need not be watched (`covered`).
        this.covered = match polled {
            Poll::Ready(Ok(())) => match buf.filled().len() - filled {
                0 => {
                    this.covered = true; // held back one poll: hyper's next read gets it
                    return this.end_of_input(cx);
                }
                read => {
                    this.conn.read_for_hyper(read);
                    read == room
                }
            },
            Poll::Pending if this.conn.head_overdrawn() => return this.head_past_limit(),
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
        };
        polled
    }
}

impl AsyncWrite for LingeringIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.stream {
            Some(stream) if !this.reads_ended => {
                let polled = Pin::new(stream).poll_write(cx, buf);
                let polled = this.wrote(cx, || buf.len(), polled, |socket| socket.send(buf));
                this.written.count(&polled);
                polled
            }
            _ => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.stream {
            Some(stream) if !this.reads_ended => {
                let polled = Pin::new(stream).poll_write_vectored(cx, bufs);
                let offered = || bufs.iter().map(|b| b.len()).sum();
                let polled = this.wrote(cx, offered, polled, |socket| socket.send_vectored(bufs));
                this.written.count(&polled);
                polled
            }
            _ => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    /// hyper flushes on every turn of its connection's loop, after reading: while a request
    /// of the connection is out and nothing else would see a reset (`covered`), the socket is
    /// watched (`watch_peer`), and a reset ends the connection here.
    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.covered && this.conn.is_busy() {
            if let Some(gone) = this.watch_peer(cx) {
                return Poll::Ready(Err(gone));
            }
        }
        // hyper flushes the socket once its own buffer is written: every answer whole in
        // hyper's output is in the socket.
        this.written
            .delivery
            .mark(this.written.bytes, this.conn.whole());
        match &mut this.stream {
            Some(stream) => Pin::new(stream).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// hyper shuts the write side once it has flushed its last answer (its `poll_shutdown`
    /// flushes first): a refusal (or the deadline's `503` to a probe) among them is written,
    /// and counted now. Where the socket
    /// tells what it has not sent yet (`src/unsent.rs`), the write side is shut by the linger
    /// once it has sent it all (a shut socket no longer tells), else now.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shut = true;
        this.conn.shut_by_hyper();
        this.conn.closing_written();
        match &mut this.stream {
            // Ended by the server's read: its answer is still to be written (`answer_ended`).
            Some(_) if this.reads_ended => Poll::Ready(Ok(())),
            Some(stream) if !crate::unsent::WATCHABLE => Pin::new(stream).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Round 29 (hyper29): a socket lingering after its last answer whose client has sent a
    /// lot (here all that a loopback socket queues) reads at most [`SINK_LEN`] bytes per turn
    /// of its task: a neighbour task on the same loop, as a connection still answering at the
    /// stop, sees at most that much leave the socket's receive queue between two of its own
    /// turns. Before, a lingering socket read 4 KiB at a time until its socket was empty (all
    /// that was queued, 704 KiB here, in one turn; with a client sending on, up to 16 MiB):
    /// 200 lingering sockets took 94% of the loop at the stop under pipelined uploads, the
    /// answers still being written came seconds late, and the stop took 115 s at load
    /// average 29 where the mio loop's took 9 s
    /// (`probe_client::v11::sigterm_under_many_pipelined_uploads_resets_no_connection_on_either_stack`,
    /// benches/load/hyper29_stop.py).
    #[test]
    fn a_lingering_socket_reads_at_most_one_sink_per_turn_of_the_loop() {
        let runtime = super::super::server::current_thread_runtime().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let (client, server) = loopback_pair();
            let queued_now = || rustix::io::ioctl_fionread(&server).unwrap();
            let queued = fill(&client, queued_now);
            assert!(
                queued >= 3 * SINK_LEN as u64,
                "only {queued} bytes queued: too few to tell one read a turn from more"
            );
            let stream = server.try_clone().unwrap();
            stream.set_nonblocking(true).unwrap();
            let stream = TcpStream::from_std(stream).unwrap();
            let lingering = Rc::new(Cell::new(0));
            let task = tokio::task::spawn_local(linger(stream, &lingering, None, None));
            let (mut left, mut most, mut turns) = (queued, 0, 0);
            // Until the linger has read everything, or ended (its quiet time ran out: a
            // loaded machine's pause), or a bound far past the turns it needs.
            while left > 0 && !task.is_finished() && turns < 100_000 {
                tokio::task::yield_now().await;
                let now = queued_now();
                most = most.max(left.saturating_sub(now));
                left = now;
                turns += 1;
            }
            assert!(most > 0, "the linger read nothing in {turns} turns");
            assert!(
                most <= SINK_LEN as u64,
                "{most} bytes read in one turn ({queued} queued, {left} left after {turns} turns)"
            );
            drop(client);
        });
    }

    /// A connected pair on loopback, the server's side with a large receive buffer (as much as
    /// the system allows of 4 MiB: it queues what its client sends, unread).
    fn loopback_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4 << 20).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        socket.listen(1).unwrap();
        let listener = std::net::TcpListener::from(socket);
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// Writes from `client` while the server's side queues all of it (`queued`): none left in
    /// the client's buffers, so nothing arrives once the server begins to read. Returns what
    /// is queued.
    fn fill(client: &std::net::TcpStream, queued: impl Fn() -> u64) -> u64 {
        client.set_nonblocking(true).unwrap();
        let chunk = [b'a'; 16 * 1024];
        let mut written = 0;
        while written < 16 << 20 {
            match (&*client).write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            if queued() < written {
                break;
            }
        }
        queued()
    }
}
