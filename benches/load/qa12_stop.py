#!/usr/bin/env python3
"""qa12_stop: SIGTERM (then SIGINT after --int-after s) while well-behaved clients (keep-alive
GETs, pipelined GETs, pipelined 64 KiB uploads, deferred GETs) run beside attackers that never
get a routed answer (slowloris at one byte a second, idle connections, heads never finished),
then checks the exit JSON against what the clients received whole: every `served` answer
arrived intact (a 200 read in full), and none arrived uncounted; 503s read against `refused` +
`connections_refused` + the close steps' `answered`.
usage: qa12_stop.py mio|hyper [TERM_AFTER_S] [INT_AFTER_S|-] [LOOPS]"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop, Reader, GET, post  # noqa: E402

lock = threading.Lock()
tally = {"200": 0, "503": 0, "408": 0, "other": [], "cut": 0, "reset": 0, "eof_unanswered": 0}
stopping = threading.Event()


def count(key, n=1):
    with lock:
        tally[key] += n


def note(status, body, want):
    if status == 200:
        if want is None or body == want:
            count("200")
        else:
            with lock:
                tally["other"].append(f"200 with a wrong body ({len(body)} B)")
    elif status in (503, 408):
        count(str(status))
    else:
        with lock:
            tally["other"].append(str(status))


def client(addr, reqs, wants, until):
    """Sends `reqs` (one write per round of requests), reads len(wants) answers, repeats."""
    while not stopping.is_set() or time.time() < until:
        try:
            s = socket.create_connection(addr)
        except OSError:
            return
        s.settimeout(10)
        r = Reader(s)
        try:
            while True:
                s.sendall(reqs)
                for want in wants:
                    a = r.answer()
                    if a is None:
                        if r.end.startswith("EOF mid") or "mid-body" in r.end:
                            count("cut")
                        elif r.end == "RST" or r.end.startswith("RST"):
                            count("reset")
                        else:
                            count("eof_unanswered")
                        raise StopIteration
                    note(a[0], a[2], want)
                    if a[1].get("connection") == "close":
                        raise StopIteration
        except (StopIteration, BrokenPipeError, ConnectionResetError):
            pass
        except AssertionError as e:
            with lock:
                tally["other"].append(f"BAD {e}"[:100])
        s.close()
        if stopping.is_set():
            return


def loris(addr, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr)
        s.settimeout(0.01)
        socks.append(s)
    data = b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 200
    i = 0
    while socks and i < 60:
        for s in list(socks):
            try:
                s.send(data[i:i + 1])
                d = s.recv(4096)
                if d.startswith(b"HTTP/1.1 408") or d.startswith(b"HTTP/1.1 503"):
                    count(d[9:12].decode())
                socks.remove(s)
            except socket.timeout:
                pass
            except OSError:
                socks.remove(s)
        i += 1
        time.sleep(1)


def idle(addr, n):
    socks = [socket.create_connection(addr) for _ in range(n)]
    for s in socks:
        s.settimeout(15)
    for s in socks:
        try:
            d = s.recv(4096)
            if d.startswith(b"HTTP/1.1 503") or d.startswith(b"HTTP/1.1 408"):
                count(d[9:12].decode())
        except OSError:
            pass


def main():
    stack = sys.argv[1]
    term_after = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    int_after = sys.argv[3] if len(sys.argv) > 3 else "1.5"
    loops = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    proc, addr = start(stack, loops=loops)
    body = bytes(range(256)) * 256
    kinds = [
        (GET, [b"hello"]),
        (GET * 8, [b"hello"] * 8),
        (post(b"/echo", body) * 4, [body] * 4),
        (b"GET /delay?ms=300 HTTP/1.1\r\nhost: x\r\n\r\n" + GET, [None, b"hello"]),
    ]
    threads = []
    for i in range(24):
        reqs, wants = kinds[i % 4]
        threads.append(threading.Thread(target=client, args=(addr, reqs, wants, 0)))
    threads.append(threading.Thread(target=loris, args=(addr, 10)))
    threads.append(threading.Thread(target=idle, args=(addr, 10)))
    for t in threads:
        t.start()
    time.sleep(term_after)
    stopping.set()
    proc.send_signal(15)
    if int_after != "-":
        time.sleep(float(int_after))
        try:
            proc.send_signal(2)
        except ProcessLookupError:
            pass
    rep = stop(proc, sig=0) if proc.poll() is None else stop(proc, sig=0)
    for t in threads:
        t.join(timeout=20)
    # the deferred answers say "delayed ..." (not compared)
    close_answered = sum(step.get("answered", 0) for lp in rep["loops"] for step in lp["steps"]
                         if step["step"] == "close")
    print(f"{stack}: clients read 200 x{tally['200']} whole, 503 x{tally['503']}, 408 x{tally['408']}, "
          f"cut mid-answer {tally['cut']}, reset {tally['reset']}, EOF unanswered {tally['eof_unanswered']}, "
          f"other {tally['other'][:5]}")
    print(f"{stack}: JSON served {rep['served']}, refused {rep['refused']}, connections_refused "
          f"{rep['connections_refused']}, close-step answered {close_answered}, rejected {rep['rejected']}, "
          f"aborted {rep['aborted']}, leaked {rep['leaked']}, outcomes {rep['outcomes']}")
    lost = rep["served"] - tally["200"]
    print(f"{stack}: served - read whole = {lost} (0 expected)")


main()
