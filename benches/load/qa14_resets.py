#!/usr/bin/env python3
"""qa14_resets: how each stack counts the answers of a connection its client resets or closes
(docs/server.md, "Undelivered answers": `served` only for answers that reached the client:
after a reset, those its TCP acknowledged, by `TCP_INFO`). Cases: a client that reads every answer and closes (FIN) or
resets (SO_LINGER 0); one that leaves an answer unread and closes (the kernel resets); one
that sends a request and closes before its answer; one that pipelines 64 KiB echoes and
resets with some unread; one that pipelines four 60 KB echoes through a 4 KiB receive buffer,
reads 100 bytes and resets (hyper counted all four `served` before qa-client14's fix).
usage: BIN=target/release/reqguard-demo qa14_resets.py"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import Reader, start, stop  # noqa: E402

GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def echo(size):
    return b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % size + b"a" * size


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_then(addr, request, n, end):
    """`n` answers to `request`, each read whole, then `end`; returns what the client read."""
    s = socket.create_connection(addr)
    s.settimeout(5)
    r = Reader(s)
    for _ in range(n):
        s.sendall(request)
        assert r.answer()[0] == 200
    end(s)
    return f"read {n} whole"


def unread_close(s):
    s.sendall(GET)
    time.sleep(0.05)
    s.close()


def close_before_answer(s):
    s.sendall(GET)
    s.close()


def unread_reset(s):
    s.sendall(echo(65536) * 4)
    time.sleep(0.3)
    reset(s)


def small_buffer(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(addr)
    threading.Thread(target=lambda: s.sendall(echo(60000) * 4), daemon=True).start()
    time.sleep(1)
    got = s.recv(100)
    reset(s)
    return f"read {len(got)} bytes, none whole"


CASES = [
    ("100 GET, FIN", lambda a: read_then(a, GET, 100, lambda s: s.close())),
    ("100 GET, RST", lambda a: read_then(a, GET, 100, reset)),
    ("100 GET, 1 unread, close", lambda a: read_then(a, GET, 100, unread_close)),
    ("100 GET, 1 sent, close", lambda a: read_then(a, GET, 100, close_before_answer)),
    ("20 x 64 KiB, RST", lambda a: read_then(a, echo(65536), 20, reset)),
    ("10 x 64 KiB, 4 unread, RST", lambda a: read_then(a, echo(65536), 10, unread_reset)),
    ("4 x 60 KB via 4 KiB, RST", small_buffer),
]


def main():
    for name, case in CASES:
        for stack in ("mio", "hyper"):
            proc, addr = start(stack)
            seen = case(addr)
            time.sleep(0.3)
            rep = stop(proc)
            counts = {k: rep[k] for k in ("served", "undelivered", "aborted")}
            print(f"{name:28} {stack:5} client {seen:24} server {counts}", flush=True)


main()
