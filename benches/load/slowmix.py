#!/usr/bin/env python3
"""slowmix: N connections each pipeline K POST /echo of SIZE bytes and never read; meanwhile
F keep-alive clients send GET / one at a time for DUR seconds. Prints fast-client latency
percentiles. usage: slowmix.py BINARY STACK [N K SIZE F DUR]"""
import os, re, socket, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qa11lib  # start/stop `serve`, its JSON report

binary, stack = sys.argv[1], sys.argv[2]
N, K, SIZE, F, DUR = (int(x) for x in (sys.argv[3:8] + ["200", "4", "262144", "4", "2"][len(sys.argv[3:8]):]))
qa11lib.BIN = binary
proc, addr = qa11lib.start(stack)

body = b"a" * SIZE
req = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % SIZE + body
import multiprocessing as mp
def slow_group(n):
    # One process per group (no shared GIL): n connections, each K pipelined requests, never read.
    socks = []
    def one():
        s = socket.create_connection(addr)
        socks.append(s)
        s.settimeout(DUR + 5)
        try:
            for _ in range(K):
                s.sendall(req)
        except OSError:
            pass
    ts = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in ts:
        t.start()
    time.sleep(DUR + 3)
groups = [mp.Process(target=slow_group, args=(N // 8,), daemon=True) for _ in range(8)]
slow = []

lat = []
def fast_client():
    s = socket.create_connection(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    end = time.time() + DUR
    while time.time() < end:
        t0 = time.perf_counter()
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, _, rest = got.partition(b"\r\n\r\n")
        n = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        while len(rest) < n:
            rest += s.recv(65536)
        lat.append(time.perf_counter() - t0)
    s.close()
fast = [threading.Thread(target=fast_client) for _ in range(F)]
for t in fast:
    t.start()
time.sleep(0.2)  # the fast clients first, then the slow ones arrive while they run
for g in groups:
    g.start()
for t in fast:
    t.join()
report = qa11lib.stop(proc, timeout=20)
for g in groups:
    g.terminate()
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3
print(f"{stack}: {len(lat)} GETs in {DUR}s, p50 {q(.5):.2f} ms p90 {q(.9):.2f} ms p99 {q(.99):.2f} ms max {lat[-1]*1e3:.1f} ms")
print("leaked", report.get("leaked", "?"))
