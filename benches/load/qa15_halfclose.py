#!/usr/bin/env python3
"""qa15_halfclose: requests followed by the client's FIN (half-close), against both stacks, each
answer read strictly (qa11lib.probe with half=True); one line per case with what each stack
gave, then each exit JSON's counts and whether outcomes = served + undelivered + aborted (on
hyper a handler's 400/408/413 is counted `rejected` and has an outcome too: docs/hyper.md).
Known differences (docs/hyper.md): an HTTP/1.0 answer's `connection: close`; a body cut short
by the FIN (hyper 400, mio nothing); pipelined requests whose answers wait before the FIN
(`delay-delay-half`: hyper answers all, mio ends all client gone).
usage: BIN=target/release/reqguard-demo qa15_halfclose.py [FILTER]"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import GET, post, probe, start, stop  # noqa: E402

CLOSE = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
DELAY = b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\n"
H10 = b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"

CASES = [
    ("get-half", GET),
    ("3get-half", GET * 3),
    ("close-mid-half", GET + CLOSE + GET),
    ("delay-half", DELAY),
    ("delay-delay-half", DELAY + DELAY + GET),
    ("post-half", post(b"/echo", b"abc")),
    ("post-partial-half", post(b"/echo", b"abc")[:-1]),
    ("head-partial-half", b"GET / HTTP/1.1\r\nhost: x\r\n"),
    ("h10-ka-half", H10 * 3),
    ("h10-plain-half", b"GET / HTTP/1.0\r\n\r\n" + H10),
    ("chunked-no-last-half",
     b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"),
    ("expect-half", b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n"),
    ("panic-half", b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n" + GET),
    ("big-echo-half", post(b"/echo", b"z" * 300000) * 2),
    ("404-half", b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n" + GET),
    ("bad-half", b"GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n" + GET),
]


def main():
    flt = sys.argv[1] if len(sys.argv) > 1 else ""
    servers = {st: start(st) for st in ("mio", "hyper")}
    for name, data in CASES:
        if flt not in name:
            continue
        got = {st: probe(addr, data, wait=1.0, half=True) for st, (_, addr) in servers.items()}
        mark = "  " if got["mio"] == got["hyper"] else "!="
        print(f"{mark} {name:22} mio: {got['mio']:30} hyper: {got['hyper']}", flush=True)
    for st, (proc, _) in servers.items():
        rep = stop(proc)
        outcomes = sum(rep["outcomes"].values())
        adds_up = outcomes == rep["served"] + rep["undelivered"] + rep["aborted"]
        keys = ("served", "undelivered", "aborted", "rejected", "refused", "leaked")
        print(st, {k: rep[k] for k in keys}, rep["outcomes"], "adds up:", adds_up)


main()
