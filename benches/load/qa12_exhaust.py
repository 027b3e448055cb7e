#!/usr/bin/env python3
"""qa12_exhaust: hostile-client round 12's resource battery on one stack at a time: heads near
the field limits, a huge chunk extension, a pipelining client that never reads (the server's
resident memory before and after), idle connections over --max-connections (eviction, the idle
timeout), slowloris at one byte a second, a slow reader at one byte a second. Each case prints
what the clients saw and how long it took; the exit JSON's counts are compared with what the
clients received whole.
usage: qa12_exhaust.py mio|hyper [CASE...]"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop, Reader, GET, post  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def conn(addr, timeout=5.0):
    s = socket.create_connection(addr)
    s.settimeout(timeout)
    return s


def fields_near_limit(proc, addr):
    """64 fields (the limit) in a head of just under 8 KiB, 300 of them pipelined in one write."""
    head = b"GET / HTTP/1.1\r\nhost: x\r\n"
    fields = b"".join(b"x-%02d: %s\r\n" % (i, b"v" * 113) for i in range(63))
    req = head + fields + b"\r\n"
    assert len(req) < 8192, len(req)
    s = conn(addr)
    t = threading.Thread(target=s.sendall, args=(req * 300,))
    t.start()
    r = Reader(s)
    got = [r.answer() for _ in range(300)]
    t.join()
    ok = sum(1 for a in got if a and a[0] == 200)
    s.close()
    return f"head {len(req)} B x300: {ok} answered 200"


def huge_extension(proc, addr):
    """One chunk-size line with 4 MiB of extensions, sent as fast as the server reads it."""
    s = conn(addr)
    before = rss_kib(proc.pid)
    s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3")
    sent, t0, end = 0, time.time(), None
    piece = b";aaaaaaa=bbbbbbb" * 4096
    try:
        while sent < (4 << 20):
            s.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError) as e:
        end = type(e).__name__
    peak = rss_kib(proc.pid)
    r = Reader(s)
    a = r.answer()
    s.close()
    return (f"sent {sent} B of extensions ({end or 'all taken'}), answer "
            f"{a[0] if a else r.end} after {time.time() - t0:.2f}s, rss {before}->{peak} KiB")


def never_reads(proc, addr, seconds=8):
    """Pipelines `GET /` without reading for `seconds` (or until the send blocks 2 s)."""
    before = rss_kib(proc.pid)
    s = conn(addr, timeout=2.0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sent, t0 = 0, time.time()
    burst = GET * 256
    blocked = False
    while time.time() - t0 < seconds:
        try:
            sent += s.send(burst)
        except socket.timeout:
            blocked = True
            break
    peak = rss_kib(proc.pid)
    s.close()
    return (f"sent {sent / 1e6:.1f} MB in {time.time() - t0:.1f}s "
            f"({'send blocked' if blocked else 'never blocked'}), rss {before}->{peak} KiB")


def idle_flood(proc, addr, n=1300):
    """`n` connections opened and left silent, then a newcomer's GET, then the idle timeout."""
    socks = []
    for _ in range(n):
        try:
            socks.append(conn(addr, timeout=0.01))
        except OSError as e:
            return f"connect failed after {len(socks)}: {e}"
    time.sleep(0.3)
    t0 = time.time()
    new = conn(addr)
    new.sendall(GET)
    a = Reader(new).answer()
    waited = time.time() - t0
    new.close()
    time.sleep(6.5)  # past the 5 s idle timeout
    ends = {}
    for s in socks:
        try:
            d = s.recv(4096)
            k = "EOF" if not d else ("503" if b" 503 " in d[:13] else f"data {d[:12]!r}")
        except socket.timeout:
            k = "open"
        except ConnectionResetError:
            k = "RST"
        ends[k] = ends.get(k, 0) + 1
        s.close()
    return f"newcomer {a[0] if a else None} after {waited * 1000:.0f} ms; the {n} idle after 6.5 s: {ends}"


def slowloris(proc, addr, n=20, secs=14):
    """`n` heads sent one byte a second: the request timeout (10 s) answers 408."""
    data = b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 100
    socks = [conn(addr, timeout=0.05) for _ in range(n)]
    t0 = time.time()
    ends = [None] * n
    i = 0
    while time.time() - t0 < secs and None in ends:
        for k, s in enumerate(socks):
            if ends[k]:
                continue
            try:
                s.send(data[i:i + 1])
            except OSError as e:
                ends[k] = (type(e).__name__, time.time() - t0)
                continue
            try:
                d = s.recv(4096)
                ends[k] = (d[:12].decode("latin-1") if d else "EOF", time.time() - t0)
            except socket.timeout:
                pass
            except ConnectionResetError:
                ends[k] = ("RST", time.time() - t0)
        i += 1
        time.sleep(1)
    for s in socks:
        s.close()
    kinds = {}
    for e in ends:
        key = e[0] if e else "open"
        kinds.setdefault(key, []).append(round(e[1], 1) if e else None)
    return {k: (len(v), min(x for x in v if x is not None) if any(v) else None) for k, v in kinds.items()}


def server_sockets(pid):
    """The server's TCP sockets (state, send queue), from `ss`."""
    import subprocess
    out = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True).stdout
    return [ln.split()[:3] for ln in out.splitlines() if f"pid={pid}," in ln and "LISTEN" not in ln]


def slow_reader(proc, addr, secs=25):
    """Eight pipelined POST /echo of 1000 KB (more than the socket buffers hold), then reads one
    byte a second (SO_RCVBUF small); after `secs`, what the server still holds (`ss`)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(addr)
    s.settimeout(1.0)
    body = b"z" * 1000000
    threading.Thread(target=lambda: s.sendall(post(b"/echo", body) * 8), daemon=True).start()
    t0 = time.time()
    got = 0
    end = "open"
    while time.time() - t0 < secs:
        try:
            d = s.recv(1)
        except socket.timeout:
            continue
        except ConnectionResetError:
            end = "RST"
            break
        if not d:
            end = "EOF"
            break
        got += 1
        time.sleep(1)
    held = server_sockets(proc.pid)
    s.close()
    return f"read {got} B at 1 B/s, then {end} after {time.time() - t0:.1f}s; server sockets {held}"


CASES = {
    "fields": fields_near_limit,
    "ext": huge_extension,
    "never": never_reads,
    "idle": idle_flood,
    "loris": slowloris,
    "slowread": slow_reader,
}


def main():
    stack = sys.argv[1]
    names = sys.argv[2:] or list(CASES)
    proc, addr = start(stack)
    results = {}

    def run(name):
        try:
            results[name] = CASES[name](proc, addr)
        except Exception as e:  # a client-side failure is a result too
            results[name] = f"FAILED {type(e).__name__}: {e}"

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in names:
        print(f"{stack:5} {n:9} {results[n]}")
    rep = stop(proc)
    print(stack, {k: rep.get(k) for k in ("served", "refused", "rejected", "aborted", "leaked",
                                          "connections", "connections_refused", "connections_evicted", "buffered_high_water",
                                          "outcomes")})


main()
