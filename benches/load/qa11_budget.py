#!/usr/bin/env python3
"""qa11_budget: stresses the mio loop's per-connection read budget (and runs the same load on
--stack hyper side by side). Kinds of clients, each pipelining K POST /echo of SIZE bytes
(each body distinct, answers checked byte for byte):
  readers  send while a thread reads (every answer expected);
  half     send all, shutdown(SHUT_WR), read (every answer, then EOF);
  rst      send 2.5 requests, wait 0-50 ms, reset (SO_LINGER 0);
  noread   send all, never read, close after HOLD s;
  fast     GET / one at a time (latency).
With STOP_AT set, SIGTERM (SIG=2: SIGINT; TWICE=s: a second one after s) is sent that many
seconds in, and every client's answers are checked against the report: a connection ends only
after an answer with `connection: close`, or having been answered all it sent.
usage: qa11_budget.py STACK [N K SIZE] ; env STOP_AT, SIG, TWICE, LOOPS, HOLD, DUR, EXTRA"""
import os
import socket
import sys
import threading
import time
import random

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop, rst, Reader, post, GET  # noqa: E402

stack = sys.argv[1]
N, K, SIZE = (int(x) for x in (sys.argv[2:5] + ["20", "6", "262144"][len(sys.argv[2:5]):]))
STOP_AT = float(os.environ["STOP_AT"]) if os.environ.get("STOP_AT") else None
SIG = int(os.environ.get("SIG", "15"))
TWICE = float(os.environ["TWICE"]) if os.environ.get("TWICE") else None
LOOPS = int(os.environ.get("LOOPS", "1"))
HOLD = float(os.environ.get("HOLD", "2"))
DUR = float(os.environ.get("DUR", "3"))
EXTRA = os.environ.get("EXTRA", "").split()

proc, addr = start(stack, LOOPS, EXTRA)
results = {"readers": [], "half": [], "rst": [], "noread": [], "fast": []}
lock = threading.Lock()
problems = []


def body_for(c, i):
    tag = b"%d.%d." % (c, i)
    return (tag * (SIZE // len(tag) + 1))[:SIZE]


def connect():
    s = socket.create_connection(addr)
    s.settimeout(20)
    return s


def reader_client(c, half):
    s = connect()
    bodies = [body_for(c, i) for i in range(K)]
    sent = [0]

    def send():
        try:
            for b in bodies:
                s.sendall(post(b"/echo", b))
                sent[0] += 1
            if half:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    r = Reader(s)
    got = []
    while True:
        a = r.answer()
        if a is None:
            break
        status, fields, body = a
        i = len(got)
        close = fields.get("connection") == "close"
        got.append((status, close))
        if status == 200 and body != bodies[i]:
            problems.append(f"client {c}: answer {i} body differs ({len(body)} bytes)")
        if close:
            # what follows is the linger's FIN
            r.answer()
            break
        if len(got) == K and not half:
            break
    t.join(5)
    end = r.end
    s.close()
    with lock:
        results["half" if half else "readers"].append((c, sent[0], got, end))


def rst_client(c):
    s = connect()
    try:
        s.sendall(post(b"/echo", body_for(c, 0)) + post(b"/echo", body_for(c, 1)))
        half_req = post(b"/echo", body_for(c, 2))
        s.sendall(half_req[: len(half_req) // 2])
    except OSError:
        pass
    time.sleep(random.random() * 0.05)
    rst(s)
    with lock:
        results["rst"].append(c)


def noread_client(c):
    s = connect()
    s.settimeout(HOLD + 5)
    deadline = time.time() + HOLD
    try:
        for i in range(K):
            s.sendall(post(b"/echo", body_for(c, i)))
    except OSError:
        pass
    time.sleep(max(0, deadline - time.time()))
    s.close()
    with lock:
        results["noread"].append(c)


lat = []


def fast_client():
    s = connect()
    r = Reader(s)
    end = time.time() + DUR
    while time.time() < end:
        t0 = time.perf_counter()
        try:
            s.sendall(GET)
        except OSError as e:
            results["fast"].append(f"send {e}")
            return
        a = r.answer()
        if a is None:
            results["fast"].append(r.end)
            return
        lat.append(time.perf_counter() - t0)
        results["fast"].append(a[0])
        if a[1].get("connection") == "close":
            return
    s.close()


KINDS = os.environ.get("KINDS", "readers,half,rst,noread,fast").split(",")
threads = []
for c in range(N):
    if "readers" in KINDS:
        threads.append(threading.Thread(target=reader_client, args=(c, False)))
    if "half" in KINDS:
        threads.append(threading.Thread(target=reader_client, args=(1000 + c, True)))
    if "rst" in KINDS:
        threads.append(threading.Thread(target=rst_client, args=(2000 + c,)))
    if "noread" in KINDS:
        threads.append(threading.Thread(target=noread_client, args=(3000 + c,)))
for _ in range(2 if "fast" in KINDS else 0):
    threads.append(threading.Thread(target=fast_client))
t0 = time.time()
for t in threads:
    t.daemon = True
    t.start()
report = None
if STOP_AT is not None:
    time.sleep(STOP_AT)
    report = stop(proc, SIG, TWICE)
for t in threads:
    t.join(40)
alive = sum(t.is_alive() for t in threads)
if report is None:
    report = stop(proc, SIG, TWICE)
took = time.time() - t0

# Checks: every reader connection ended answered whole or after a `connection: close`.
seen = {200: 0, 503: 0, "other": 0}
lost = 0
for kind in ("readers", "half"):
    for c, sent, got, end in results[kind]:
        for status, _ in got:
            seen[status if status in seen else "other"] += 1
        closed = bool(got) and got[-1][1]
        if len(got) < K and not closed:
            lost += 1
            problems.append(f"{kind} {c}: sent {sent}, answers {[g[0] for g in got]}, end {end}")
        if kind == "half" and not closed and len(got) == K and end != "EOF":
            problems.append(f"half {c}: all answered, then {end} instead of EOF")
fast = [x for x in results["fast"] if isinstance(x, int)]
for x in fast:
    seen[x if x in seen else "other"] += 1
fast_ends = [x for x in results["fast"] if not isinstance(x, int)]
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
steps_answered = sum(
    s.get("answered", 0) for lp in report.get("loops", []) for s in lp.get("steps", []) if s["step"] == "close"
)
print(
    f"{stack} loops={LOOPS} N={N} K={K} SIZE={SIZE} stop_at={STOP_AT} sig={SIG} twice={TWICE} "
    f"took={took:.1f}s alive={alive} lost={lost} seen={seen} fast_ends={fast_ends[:3]} "
    f"lat p50={pct(0.5):.1f} p99={pct(0.99):.1f} max={pct(1.0):.1f} ms"
)
keys = ("served", "refused", "aborted", "leaked", "rejected", "panics", "connections_refused",
        "force_closed", "drain_deadline_hit", "drain_ms", "buffered_high_water")
print("report", {k: report.get(k) for k in keys}, "outcomes", report.get("outcomes"),
      "close_answered", steps_answered)
if report.get("leaked") != 0:
    problems.append(f"leaked {report.get('leaked')}")
if report["served"] < seen[200]:
    problems.append(f"served {report['served']} < 200s seen {seen[200]}")
if STOP_AT is None and seen[503]:
    problems.append(f"503s without a stop: {seen[503]}")
for p in problems[:20]:
    print("PROBLEM", p)
print("PROBLEMS", len(problems))
