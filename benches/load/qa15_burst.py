#!/usr/bin/env python3
"""qa15_burst: bursts of clients that connect and go at once (TCP health checks, port scans,
clients that gave up: close, reset, a request then close or reset, half a head then reset),
alone or beside clients that make one request per connection and read its answer, against
both stacks; prints what the readers got and the counts of the exit JSON. At 1,024 slots the
readers must get no `503` (QA client15-1: before, 215 of 4,800 on mio), and every count must
add up (outcomes = served + undelivered + aborted, leaked 0).
usage: BIN=target/release/reqguard-demo qa15_burst.py [KINDS [THREADS [PER_THREAD [SLOTS]]]]
  KINDS: comma-separated of close, rst, req-rst, req-close, half-req, req-read (close,req-read);
  SLOTS: serve's --max-connections (1024); few slots (16) make every turn's order count."""
import os
import socket
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import GET, Reader, rst, start, stop  # noqa: E402

CLOSE_GET = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"


def client(addr, kind, n, answers):
    for _ in range(n):
        s = socket.create_connection(addr)
        if kind == "close":
            s.close()
        elif kind == "rst":
            rst(s)
        elif kind == "req-rst":
            s.sendall(GET)
            rst(s)
        elif kind == "req-close":
            s.sendall(GET)
            s.close()
        elif kind == "half-req":
            s.sendall(GET[:10])
            rst(s)
        elif kind == "req-read":
            s.sendall(CLOSE_GET)
            s.settimeout(10)
            r = Reader(s)
            a = r.answer()
            answers.append(a[0] if a else r.end)
            s.close()
        else:
            raise SystemExit(f"unknown kind {kind}")


def main():
    kinds = (sys.argv[1] if len(sys.argv) > 1 else "close,req-read").split(",")
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    per_thread = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    slots = sys.argv[4] if len(sys.argv) > 4 else "1024"
    for stack in ("mio", "hyper"):
        proc, addr = start(stack, extra=["--max-connections", slots])
        answers = []
        workers = [threading.Thread(target=client, args=(addr, k, per_thread, answers))
                   for k in kinds for _ in range(max(1, threads // len(kinds)))]
        t0 = time.time()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rep = stop(proc)
        keys = ("served", "undelivered", "aborted", "rejected", "connections", "connections_refused",
                "connections_evicted", "leaked")
        outcomes = sum(rep["outcomes"].values())
        adds_up = outcomes == rep["served"] + rep["undelivered"] + rep["aborted"]
        print(f"{stack:5} {','.join(kinds)} {time.time() - t0:.1f}s readers: {dict(Counter(answers))}")
        print(f"      {({k: rep[k] for k in keys})} outcomes {outcomes} adds up: {adds_up}")


main()
