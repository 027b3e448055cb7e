#!/usr/bin/env python3
"""hyper29_stop: the stop under pipelined uploads, both stacks side by side (issue 10, round 29).

The scenario of tests/probe_client/v11.rs's
`sigterm_under_many_pipelined_uploads_resets_no_connection_on_either_stack`: CLIENTS
connections each pipeline up to UPLOADS `POST /echo` of SIZE bytes (a sender thread writes
until a write fails) and read their answers (a reader thread, until EOF); once every
connection has read the first bytes of an answer, `serve` gets SIGTERM. Printed per stack: the
stop's duration (SIGTERM to exit), when the connections saw their EOF (median, max), what the
clients sent after the stop, answers read against the exit JSON's `served`, resets, leaked,
and the steps of the stop; then the stop's duration hyper / mio.

usage: hyper29_stop.py [--bin target/debug/reqguard-demo] [--clients 200] [--size 262144]
                       [--uploads 100] [--args "--idle-linger-ms 60000 --drain-timeout-ms 300000"]
                       [--stacks mio,hyper]
Bounded: every wait has a limit (300 s for the first answers, 600 s for the exit); the server
is ours, killed by its pid if it outlives them.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time


def last_head_closes(seen):
    at = seen.rfind(b"HTTP/1.1 ")
    end = seen.find(b"\r\n\r\n", at)
    return at >= 0 and b"connection: close" in seen[at:end].lower()


def run(stack, opts):
    proc = subprocess.Popen(
        [opts.bin, "serve", "--addr", "127.0.0.1:0", "--stack", stack] + opts.args.split(),
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    host, port = line.removeprefix("listening on ").rsplit(":", 1)
    addr = (host, int(port))
    request = (
        f"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {opts.size}\r\n\r\n".encode()
        + b"a" * opts.size
    )
    begun = threading.Semaphore(0)
    stopped_at = [None]
    results = []
    lock = threading.Lock()

    def client():
        s = socket.create_connection(addr)
        sent_after = [0]
        failed = [None]
        done_before = [False]

        def sender():
            for i in range(opts.uploads):
                if stopped_at[0] is None and i == opts.uploads - 1:
                    done_before[0] = True
                try:
                    s.sendall(request)
                except OSError as e:
                    failed[0] = e.errno
                    return
                if stopped_at[0] is not None:
                    sent_after[0] += len(request)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        seen = bytearray()
        error = None
        first = True
        last_data = None
        s.settimeout(600)
        while True:
            try:
                chunk = s.recv(65536)
            except OSError as e:
                error = e.errno or str(e)
                break
            if not chunk:
                break
            if first:
                first = False
                begun.release()
            seen += chunk
            last_data = time.monotonic()
        eof_at = time.monotonic()
        t.join(600)
        s.close()
        with lock:
            results.append(
                {
                    "answers": seen.count(b"HTTP/1.1 200 OK\r\n"),
                    "refused": seen.count(b"HTTP/1.1 503"),
                    "error": error,
                    "eof_after": eof_at - stopped_at[0] if stopped_at[0] else None,
                    "data_after": last_data - stopped_at[0] if stopped_at[0] and last_data else None,
                    "sent_after": sent_after[0],
                    "last_closes": last_head_closes(seen),
                    "done_before_stop": done_before[0],
                }
            )
        if first:
            begun.release()  # never answered: do not wait on it

    threads = [threading.Thread(target=client, daemon=True) for _ in range(opts.clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 300
    for _ in threads:
        if not begun.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
    perf = None
    if opts.perf:
        perf = subprocess.Popen(["perf", "record", "-F", "199", "--call-graph", "dwarf,16384", "-o", f"/tmp/hyper29-perf-{stack}.data", "-p", str(proc.pid)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    stopped_at[0] = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=600)
        stop_s = time.monotonic() - stopped_at[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        stop_s = float("inf")
    if perf:
        perf.wait(30)
    for t in threads:
        t.join(60)
    report = json.loads(out.strip().splitlines()[-1])
    eofs = sorted(r["eof_after"] for r in results if r["eof_after"] is not None)
    summary = {
        "stack": stack,
        "stop_s": round(stop_s, 2),
        "eof_median_s": round(statistics.median(eofs), 2) if eofs else None,
        "eof_max_s": round(eofs[-1], 2) if eofs else None,
        "last_data_median_s": round(statistics.median(r["data_after"] for r in results if r["data_after"] is not None), 2),
        "fin_wait_max_s": round(max(r["eof_after"] - r["data_after"] for r in results if r["data_after"] is not None), 2),
        "sent_after_stop_MiB": round(sum(r["sent_after"] for r in results) / 2**20, 1),
        "answers": sum(r["answers"] for r in results),
        "served": report.get("served"),
        "refused_seen": sum(r["refused"] for r in results),
        "resets": sum(1 for r in results if r["error"] is not None),
        "last_not_close": sum(1 for r in results if not r["last_closes"]),
        "senders_done_before_stop": sum(1 for r in results if r["done_before_stop"]),
        "leaked": report.get("leaked"),
        "drain_ms": report.get("drain_ms"),
        "force_closed": report.get("force_closed"),
        "drain_deadline_hit": report.get("drain_deadline_hit"),
    }
    steps = [s for loop in report.get("loops", [report]) for s in loop.get("steps", [])]
    summary["steps"] = [{k: s.get(k) for k in ("step", "at_ms", "open", "out")} for s in steps]
    return summary


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/debug/reqguard-demo")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--size", type=int, default=256 * 1024)
    p.add_argument("--uploads", type=int, default=100)
    p.add_argument("--args", default="--idle-linger-ms 60000 --drain-timeout-ms 300000")
    p.add_argument("--stacks", default="mio,hyper")
    p.add_argument("--perf", action="store_true", help="perf record the server from SIGTERM")
    opts = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {opts}")
    stops = {}
    for stack in opts.stacks.split(","):
        summary = run(stack, opts)
        stops[stack] = summary["stop_s"]
        print(json.dumps(summary), flush=True)
    if "mio" in stops and "hyper" in stops and stops["mio"]:
        print(f"stop hyper / mio = {stops['hyper'] / stops['mio']:.2f}")


if __name__ == "__main__":
    main()
