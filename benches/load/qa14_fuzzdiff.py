#!/usr/bin/env python3
"""qa14_fuzzdiff: qa12_fuzz's mutated requests, each sent to both stacks, the two answers read
strictly (qa11lib.probe) and compared: prints each distinct (mio, hyper) pair of answers that
differ once, with the first request that gave it and how many did, so that disagreements the
docs do not list stand out. usage: BIN=... qa14_fuzzdiff.py [COUNT] [SEED]"""
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import qa11lib  # noqa: E402
from qa11lib import probe, start, stop  # noqa: E402

SEEDS = [
    b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nx: y\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET http://x/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc",
]
ALPHABET = b" \t\r\n:;,\"\\/?#%@0123456789abcdefxyzABCZ-_.~\x00\x7f\x80\xff"
NEXT = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def mutate(rng, data):
    return qa11lib.mutate(rng, data, SEEDS, ALPHABET, most=3, ops=("set", "insert", "delete", "splice"))


def shape(answer):
    """The answer without what may differ by design: a 200's body tag, a 100 hyper sends."""
    return re.sub(r"\[.*?\]", "", answer).replace("100 ", "")


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 14)
    servers = {st: start(st) for st in ("mio", "hyper")}
    pairs = {}
    for _ in range(count):
        data = mutate(rng, rng.choice(SEEDS)) + NEXT
        got = {st: shape(probe(addr, data, wait=0.3)) for st, (_, addr) in servers.items()}
        if got["mio"] != got["hyper"]:
            key = (got["mio"], got["hyper"])
            pairs.setdefault(key, [0, data])[0] += 1
    for (mio, hyper), (n, data) in sorted(pairs.items(), key=lambda kv: -kv[1][0]):
        print(f"{n:4}x mio: {mio:24} hyper: {hyper:24} e.g. {data[:110]!r}")
    for st, (p, _) in servers.items():
        rep = stop(p)
        print(st, {k: rep[k] for k in ("served", "undelivered", "refused", "rejected", "aborted", "leaked", "panics")})
    print(f"{count} mutated requests, {sum(n for n, _ in pairs.values())} answered differently")


main()
