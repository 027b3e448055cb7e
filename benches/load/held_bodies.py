#!/usr/bin/env python3
"""held_bodies: what one client can make a loop hold. N connections each send the head of a
`POST /echo` declaring SIZE bytes and all but its last byte, then wait; prints the server's
resident memory as they go, and its JSON report after SIGTERM (`buffered_high_water`, refusals,
evictions). usage: held_bodies.py BINARY STACK [N SIZE EXTRA...]; EXTRA are `serve` flags
(e.g. --max-connections 4096). Bounded: at most N * SIZE bytes sent, one second of waiting."""
import os, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qa11lib  # start/stop `serve`, its JSON report

binary, stack = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
SIZE = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 20
qa11lib.BIN = binary
proc, addr = qa11lib.start(stack, extra=sys.argv[5:])


def rss_kib():
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


socks, chunk, started = [], b"a" * 65536, time.time()
try:
    for i in range(N):
        s = socket.create_connection(addr)
        s.settimeout(10)
        s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % SIZE)
        left = SIZE - 1
        while left > 0:
            sent = min(left, len(chunk))
            s.sendall(chunk[:sent])
            left -= sent
        socks.append(s)
        if (i + 1) % max(1, N // 10) == 0:
            print(f"{i + 1} connections: server RSS {rss_kib() / 1024:.0f} MiB", flush=True)
except OSError as error:
    print(f"stopped at {len(socks)} connections: {error}")
time.sleep(1)
print(f"after {time.time() - started:.1f} s: server RSS {rss_kib() / 1024:.0f} MiB")
report = qa11lib.stop(proc)
for s in socks:
    s.close()
keys = ("buffered_high_water", "connections", "connections_refused", "connections_evicted", "leaked")
print({k: report.get(k) for k in keys})
