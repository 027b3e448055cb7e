#!/usr/bin/env python3
"""qa14_pipemix: random pipelines of well-formed requests (every route, HEAD, OPTIONS *, bodies by
length and chunked, trailers, expect, HTTP/1.0 keep-alive, connection: close), sent to both
stacks in random pieces with random pauses, optionally half-closed after; each stack's answers
read strictly (qa11lib.Reader, a HEAD's answer bodiless) and compared. Prints each distinct
disagreement once with its pipeline. usage: BIN=... qa14_pipemix.py [COUNT] [SEED]"""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import Reader, start, stop  # noqa: E402

H = b"host: x\r\n"
REQUESTS = [
    ("GET", b"GET / HTTP/1.1\r\n" + H + b"\r\n"),
    ("HEAD", b"HEAD / HTTP/1.1\r\n" + H + b"\r\n"),
    ("GET", b"GET /delay?ms=20 HTTP/1.1\r\n" + H + b"\r\n"),
    ("HEAD", b"HEAD /delay?ms=5 HTTP/1.1\r\n" + H + b"\r\n"),
    ("POST", b"POST /echo HTTP/1.1\r\n" + H + b"content-length: 5\r\n\r\nhello"),
    ("POST", b"POST /echo HTTP/1.1\r\n" + H + b"transfer-encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n0\r\n\r\n"),
    ("GET", b"GET /nope HTTP/1.1\r\n" + H + b"\r\n"),
    ("HEAD", b"HEAD /nope HTTP/1.1\r\n" + H + b"\r\n"),
    ("DELETE", b"DELETE / HTTP/1.1\r\n" + H + b"\r\n"),
    ("OPTIONS", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n"),
    ("GET", b"GET /panic HTTP/1.1\r\n" + H + b"\r\n"),
    ("GET", b"GET /healthz/live HTTP/1.1\r\n" + H + b"\r\n"),
    ("GET", b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"),
    ("GET", b"GET http://x/ HTTP/1.1\r\n" + H + b"\r\n"),
    ("POST", b"POST /echo HTTP/1.1\r\n" + H + b"expect: 100-continue\r\ncontent-length: 3\r\n\r\nabc"),
    ("GET", b"GET / HTTP/1.1\r\n" + H + b"content-length: 2\r\n\r\nxy"),
    ("FOO", b"FOO / HTTP/1.1\r\n" + H + b"\r\n"),
    ("GET", b"GET / HTTP/1.1\r\n" + H + b"connection: close\r\n\r\n"),
]


def run(addr, pipeline, rng, half):
    data = b"".join(r for _, r in pipeline)
    s = socket.create_connection(addr)
    s.settimeout(1.0)
    at = 0
    while at < len(data):
        n = rng.choice([1, 3, 17, 64, 4096, len(data)])
        s.sendall(data[at:at + n])
        at += n
        if rng.random() < 0.2:
            time.sleep(0.005)
    if half:
        s.shutdown(socket.SHUT_WR)
    r = Reader(s)
    out = []
    for method, _ in pipeline:
        try:
            a = r.answer(head_request=method == "HEAD")
            while a is not None and a[0] == 100:
                a = r.answer(head_request=method == "HEAD")
        except AssertionError as e:
            out.append(f"BAD({str(e)[:40]})")
            break
        if a is None:
            break
        out.append(f"{a[0]}{'c' if a[1].get('connection') == 'close' else ''}")
    s.close()
    return " ".join(out) + " | " + str(r.end)


def compare(requests, name, default_seed, longest, extra=(), width=34):
    """Sends COUNT (argv 1) random pipelines of up to `longest` of `requests` ((method, raw)
    pairs) to both stacks, seeded by argv 2 (else `default_seed`); prints each distinct
    disagreement once (its requests named by `name(raw)`), then both exit JSONs' counts."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else default_seed)
    servers = {st: start(st, extra=list(extra)) for st in ("mio", "hyper")}
    seen = {}
    for _ in range(count):
        pipeline = [rng.choice(requests) for _ in range(rng.randint(1, longest))]
        half = rng.random() < float(os.environ.get("HALF", "0.3"))
        seed = rng.random()
        got = {st: run(addr, pipeline, random.Random(seed), half) for st, (_, addr) in servers.items()}
        if got["mio"] != got["hyper"]:
            key = (got["mio"], got["hyper"])
            if key not in seen:
                seen[key] = 1
                names = " ".join(name(r) for _, r in pipeline)
                print(f"mio: {got['mio']:{width}} hyper: {got['hyper']:{width}} half={half} {names}", flush=True)
    for st, (p, _) in servers.items():
        rep = stop(p)
        print(st, {k: rep[k] for k in ("served", "undelivered", "refused", "rejected", "aborted", "leaked", "panics")},
              rep["outcomes"])
    print(f"{count} pipelines, {len(seen)} distinct disagreements")


def main():
    compare(REQUESTS, lambda raw: raw.split(b"\r\n")[0].decode(), 14, 8)


if __name__ == "__main__":
    main()
