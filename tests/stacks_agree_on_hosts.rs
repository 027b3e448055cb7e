//! The mio server and the hyper adapter judge a request's host alike (the adapter validates
//! `Host` in place by the mio server's rules: src/tokio_hyper/checks.rs, src/http/uri.rs). Each
//! raw request goes to both stacks, serving the demo routes; the statuses must be equal.
#![cfg(all(feature = "server", feature = "hyper"))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use reqguard::http::{demo_routes, Guarded, Running, ServerBuilder};
use reqguard::tokio_hyper::{self, HyperServer};
use reqguard::Config;
use util::hyper_thread::HyperThread;

mod util;

/// Host values: valid ones, and each way `uri-host [":" port]` can be broken.
const HOSTS: &[&[u8]] = &[
    b"x",
    b"H",
    b"",
    b" ",
    b"a b",
    b"a%20b",
    b"%41",
    b"%4",
    b"%zz",
    b"h%",
    b"[]",
    b"[::1]",
    b"[::1]:80",
    b"[::1",
    b"::1",
    b"h:",
    b"h:80",
    b"h:80:90",
    b"h:-1",
    b"h:99999",
    b"h:0x50",
    b"h@x",
    b"u@h",
    b"h/x",
    b"h?x",
    b"h#x",
    b"h\\x",
    b"h\"x",
    b"h<x",
    b"h{x",
    b"h|x",
    b"h^x",
    b"h`x",
    b"h~x",
    b"h!$&'()*+,;=x",
    b"h_x",
    b"-h",
    b"h.",
    b".",
    b"1.2.3.4:5",
    b"[v1.x]",
    b"[v1.x]:1",
    b"[fe80::1%25eth0]",
    b"h:80 ",
    b"\th",
    b"h,h",
    b"h h:80",
    b"\x80",
    b"h\xc3\xa9",
    b"xn--h",
];

/// The mio server and the hyper adapter on the demo routes; dropped, both stop.
struct Stacks {
    mio: Option<Running>,
    hyper: Option<HyperThread>,
    addrs: [SocketAddr; 2],
}

impl Stacks {
    fn start() -> Stacks {
        let mio = ServerBuilder::new()
            .spawn(
                || Guarded::embedded("server", Config::default()),
                demo_routes,
            )
            .unwrap();
        let hyper = HyperThread::spawn(|core| HyperServer::new(core, tokio_hyper::demo_routes()));
        Stacks {
            addrs: [mio.addr(), hyper.addr],
            mio: Some(mio),
            hyper: Some(hyper),
        }
    }

    /// The statuses of the first answer to `request` on each stack.
    fn statuses(&self, request: &[u8]) -> [u16; 2] {
        self.addrs.map(|addr| status(addr, request))
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        if let Some(mio) = self.mio.take() {
            let report = mio.stop().unwrap();
            assert_eq!(report.leaked, 0);
        }
        // Stopped by its own `Drop` if a check already failed (no second panic).
        if let Some(hyper) = self.hyper.take().filter(|_| !thread::panicking()) {
            assert_eq!(hyper.stop().leaked, 0);
        }
    }
}

/// The status of the first answer to `request` on a fresh connection (0: none).
fn status(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    std::str::from_utf8(head.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Every request built by `form` from `HOSTS` gets the same status on both stacks.
fn agree(form: fn(&[u8]) -> Vec<u8>) {
    agree_on(HOSTS, form);
}

/// Every request built by `form` from `hosts` gets the same status on both stacks.
fn agree_on(hosts: &[&[u8]], form: fn(&[u8]) -> Vec<u8>) {
    let stacks = Stacks::start();
    let differ: Vec<String> = hosts
        .iter()
        .map(|host| form(host))
        .filter_map(|request| {
            let [mio, hyper] = stacks.statuses(&request);
            (mio != hyper).then(|| format!("{}: mio {mio}, hyper {hyper}", request.escape_ascii()))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the stacks differ on:\n{}",
        differ.join("\n")
    );
}

#[test]
fn an_http11_host_is_judged_alike() {
    agree(|host| [&b"GET / HTTP/1.1\r\nHost: "[..], host, b"\r\n\r\n"].concat());
    agree(|host| {
        [
            &b"GET / HTTP/1.1\r\nHost: x\r\nhost: "[..],
            host,
            b"\r\n\r\n",
        ]
        .concat()
    });
}

/// An HTTP/1.0 request may omit `Host`; one it sends is judged as in HTTP/1.1.
#[test]
fn an_http10_host_is_judged_alike() {
    agree(|host| [&b"GET / HTTP/1.0\r\nHost: "[..], host, b"\r\n\r\n"].concat());
}

/// The authority of an absolute-form target must name a valid host on both stacks (userinfo,
/// a bad port, `[]` are refused), but for what hyper's URI parser settles before the adapter
/// sees the target (below).
#[test]
fn an_absolute_form_authority_is_judged_alike() {
    let hosts: Vec<&[u8]> = HOSTS
        .iter()
        .copied()
        .filter(|host| !host.contains(&b'%'))
        .collect();
    agree_on(&hosts, absolute_form);
}

/// Open: hyper's URI parser refuses a `%` in an absolute-form host (`400` before the service;
/// the mio server serves `a%20b`). (A `#` ends the authority on both stacks: `h#x` is `h`.)
#[test]
#[ignore = "open: hyper's URI parser decides these before the adapter sees the target"]
fn an_absolute_form_authority_with_a_percent_is_judged_alike() {
    let hosts: Vec<&[u8]> = HOSTS
        .iter()
        .copied()
        .filter(|host| host.contains(&b'%'))
        .collect();
    agree_on(&hosts, absolute_form);
}

fn absolute_form(host: &[u8]) -> Vec<u8> {
    [&b"GET http://"[..], host, b"/ HTTP/1.1\r\nHost: x\r\n\r\n"].concat()
}
