#!/usr/bin/env python3
"""qa16_onebyte: N connections that each send one byte of a request head (`G`) and wait, beside
a client making one `GET /` per connection every 50 ms, against both stacks. Each one-byte
connection is read to its end: a `408` + close (mio at `--request-timeout-ms`; hyper at its header
read timeout, `--idle-timeout-ms` here, since round 18: before, hyper closed those without one,
docs/hyper.md; both when evicted at the connection limit), a bare EOF, or a reset; the prober's answers; the server's VmHWM; then the exit
JSON's counts: `rejected` must equal the `408`s the clients read whole, leaked 0, and outcomes
= served + undelivered + aborted.
usage: BIN=target/release/reqguard-demo qa16_onebyte.py [N [SLOTS]]"""
import os
import re
import resource
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import Reader, start, stop  # noqa: E402


def answer_is_whole(data):
    """Whether `data` is one answer whose body has its `content-length` exactly."""
    head, sep, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    return bool(sep and m and len(body) == int(m.group(1)))


def prober(addr, until, out):
    while time.time() < until:
        try:
            s = socket.create_connection(addr, timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            a = Reader(s).answer()
            out.append(a[0] if a else "none")
            s.close()
        except OSError as e:
            out.append(type(e).__name__)
        time.sleep(0.05)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def run(stack, n, slots):
    proc, addr = start(stack, extra=["--request-timeout-ms", "3000", "--idle-timeout-ms", "2000",
                                     "--max-connections", str(slots)])
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr)
        s.sendall(b"G")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, [b""])
        socks.append(s)
    probes = []
    t = threading.Thread(target=prober, args=(addr, time.time() + 4, probes))
    t.start()
    ends = {}
    open_ = len(socks)
    deadline = time.time() + 20  # bounded: every connection must end before it
    while open_ and time.time() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s, buf = key.fileobj, key.data
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = None
            if chunk:
                buf[0] += chunk
                continue
            head = buf[0].split(b"\r\n", 1)[0].decode("latin-1")
            whole = head == "" or answer_is_whole(buf[0])
            kind = (head or "EOF") + ("" if chunk is not None else " +RST") + ("" if whole else " (cut)")
            ends[kind] = ends.get(kind, 0) + 1
            sel.unregister(s)
            s.close()
            open_ -= 1
    t.join()
    hwm = vm_hwm_kib(proc.pid)
    rep = stop(proc)
    got408 = sum(v for k, v in ends.items() if k.startswith("HTTP/1.1 408") and "(cut)" not in k)
    # The 408s count in `rejected`; the 503s to newcomers over the limit in `connections_refused`
    # once the socket took them (a client that did not read its 503 may see it cut by a reset).
    outcomes = sum(rep["outcomes"].values())
    ok = (rep["leaked"] == 0 and open_ == 0 and got408 == rep["rejected"]
          and outcomes == rep["served"] + rep["undelivered"] + rep["aborted"])
    print(f"{'  ' if ok else '!!'} {stack:5} n={n} slots={slots} ends={ends} still_open={open_} "
          f"probes={ {p: probes.count(p) for p in set(probes)} } VmHWM={hwm} KiB "
          f"served={rep['served']} rejected={rep['rejected']} evicted={rep.get('connections_evicted')} "
          f"refused={rep.get('connections_refused')} leaked={rep['leaked']}", flush=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    slots = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for stack in ("mio", "hyper"):
        run(stack, n, slots)


main()
