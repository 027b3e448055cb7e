//! The demo story's client, shared by both stacks: a minimal blocking HTTP/1.1 client that
//! reads a status, `connection: close`, and a `content-length` body.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// The story's load: this many client threads, each for [`LOAD_TIME`] or at most
/// [`LOAD_MAX_PER_CLIENT`] requests.
pub(crate) const CLIENTS: usize = 4;
const LOAD_TIME: Duration = Duration::from_millis(1500);
const LOAD_MAX_PER_CLIENT: usize = 200_000;

/// The story's step 2 on either stack: [`CLIENTS`] threads of keep-alive requests (every
/// fourth a `POST /echo`), bounded in time and count; prints the step, returns requests/s.
pub(crate) fn load(addr: SocketAddr) -> io::Result<f64> {
    let started = Instant::now();
    let loaders: Vec<_> = (0..CLIENTS)
        .map(|i| thread::spawn(move || load_one(addr, i)))
        .collect();
    let mut sent = 0;
    for loader in loaders {
        sent += loader
            .join()
            .map_err(|_| io::Error::other("a load thread panicked"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = sent as f64 / secs;
    println!("2. load: {CLIENTS} clients sent {sent} requests in {secs:.2} s over keep-alive: {rate:.0} req/s");
    Ok(rate)
}

/// One client thread of [`load`]: its request count, or the first answer that is not `200`.
fn load_one(addr: SocketAddr, index: usize) -> io::Result<usize> {
    let mut client = Client::connect(addr)?;
    let until = Instant::now() + LOAD_TIME;
    let mut sent = 0;
    while sent < LOAD_MAX_PER_CLIENT && Instant::now() < until {
        let request = match (sent + index) % 4 {
            0 => "POST /echo HTTP/1.1\r\nhost: demo\r\ncontent-length: 4\r\n\r\nping",
            _ => "GET / HTTP/1.1\r\nhost: demo\r\n\r\n",
        };
        let (status, _) = client.request(request)?;
        if status != 200 {
            return Err(io::Error::other(format!("load got {status}")));
        }
        sent += 1;
    }
    Ok(sent)
}

/// How many kept-alive connections the story leaves open at the stop (step 4: the PR's
/// scenario).
pub(crate) const LATE_CONNECTIONS: usize = 4;

/// The story's steps 3 and 4 on either stack: a handler panics (`500`) and the next request on
/// its connection is served; then [`LATE_CONNECTIONS`] kept-alive connections left idle and
/// one request in flight (`GET /delay?ms=300`). Returns the two statuses of step 3, the idle
/// connections and the one in flight.
pub(crate) fn panic_then_connections_at_stop(
    addr: SocketAddr,
) -> io::Result<((u16, u16), Vec<Client>, Client)> {
    let mut panicky = Client::connect(addr)?;
    let status = panicky
        .request("GET /panic HTTP/1.1\r\nhost: demo\r\n\r\n")?
        .0;
    let after = panicky.request("GET / HTTP/1.1\r\nhost: demo\r\n\r\n")?.0;
    println!("3. GET /panic answered {status}; the next request on the same connection {after}");
    drop(panicky);

    let mut late = Vec::new();
    for _ in 0..LATE_CONNECTIONS {
        let mut client = Client::connect(addr)?;
        client.request("GET / HTTP/1.1\r\nhost: demo\r\n\r\n")?;
        late.push(client);
    }
    let mut in_flight = Client::connect(addr)?;
    in_flight.send("GET /delay?ms=300 HTTP/1.1\r\nhost: demo\r\n\r\n")?;
    // Its bytes were sent before this probe connected, so once the probe is answered the loop
    // has admitted the delayed request too.
    Client::connect(addr)?.request("GET / HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n")?;
    println!(
        "4. {LATE_CONNECTIONS} kept-alive connections idle, 1 request in flight (GET /delay?ms=300)"
    );
    Ok(((status, after), late, in_flight))
}

/// The story's step 6 on either stack: one request on each kept-alive connection after the
/// stop (the PR's crash); prints the step, returns each answer as `"503 close"` and the like.
pub(crate) fn late_requests(late: &mut [Client]) -> io::Result<Vec<String>> {
    let mut answers = Vec::new();
    for client in late {
        let (status, close) = client.request("GET / HTTP/1.1\r\nhost: demo\r\n\r\n")?;
        answers.push(format!("{status}{}", if close { " close" } else { "" }));
    }
    println!(
        "6. late requests on kept-alive connections: [{}]",
        answers.join(", ")
    );
    println!(
        "   (Bun unwrapped the null wrapper here: a segfault at 0x0; here the upgrade fails and"
    );
    println!("   the request is refused before anything is taken)");
    Ok(answers)
}

/// A blocking client connection; answers are read in order.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `request`, reads the answer: its status and whether it says `connection: close`.
    pub(crate) fn request(&mut self, request: &str) -> io::Result<(u16, bool)> {
        self.send(request)?;
        self.answer()
    }

    pub(crate) fn send(&mut self, request: &str) -> io::Result<()> {
        self.reader.get_mut().write_all(request.as_bytes())
    }

    /// Reads one answer: its status and whether it says `connection: close`.
    pub(crate) fn answer(&mut self) -> io::Result<(u16, bool)> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut close) = (0, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.trim().eq_ignore_ascii_case("close");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, close))
    }
}
