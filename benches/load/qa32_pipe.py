#!/usr/bin/env python3
"""qa32_pipe: pipelining deep and wide against `serve` on both stacks, every answer read by h11
(qa32lib.strict) and checked against the request it answers (status, body: an echo its body, a
HEAD no body). Deep: one connection, DEPTH requests of a mix of routes and methods in one write.
Wide: CONNS connections at once, each PER requests. Then SIGTERM and the exit JSON: `served`
against the answers read. usage: BIN=... qa32_pipe.py [DEPTH] [CONNS] [PER] [SEED]"""
import os
import random
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from qa32lib import start, stop, strict  # noqa: E402


def mix(rng, n):
    reqs = []
    for i in range(n):
        k = rng.randrange(9)
        if k == 0:
            body = os.urandom(rng.choice([0, 1, 100, 5000, 70000])).hex().encode()[: rng.randrange(1, 9000)]
            reqs.append(("POST", b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body) + body, 200, body))
        elif k == 1:
            body = b"q" * rng.randrange(1, 3000)
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in [body[j:j + 97] for j in range(0, len(body), 97)])
            reqs.append(("POST", b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n", 200, body))
        elif k == 2:
            reqs.append(("HEAD", b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n", 200, b""))
        elif k == 3:
            reqs.append(("GET", b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n", 404, None))
        elif k == 4:
            reqs.append(("HEAD", b"HEAD /echo HTTP/1.1\r\nhost: x\r\n\r\n", 405, b""))
        elif k == 5:
            reqs.append(("OPTIONS", b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n", 204, b""))
        elif k == 6:
            reqs.append(("GET", b"GET /delay?ms=%d HTTP/1.1\r\nhost: x\r\n\r\n" % rng.randrange(0, 3), 200, None))
        elif k == 7:
            reqs.append(("GET", b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n", 500, None))
        else:
            reqs.append(("GET", b"GET http://x/?a=%d HTTP/1.1\r\nhost: y\r\n\r\n" % i, 200, b"hello"))
    return reqs


def run(addr, reqs, bad, wait=10.0):
    """One connection: every request in one write (from a thread), answers read whole."""
    import h11

    s = socket.create_connection(addr)
    s.settimeout(wait)
    data = b"".join(r[1] for r in reqs)
    t = threading.Thread(target=s.sendall, args=(data,))
    t.start()
    conn = h11.Connection(h11.CLIENT)
    got = 0
    for method, _, status, body in reqs:
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        st, parts = None, []
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                try:
                    d = s.recv(1 << 20)
                except OSError as e:
                    bad.append(f"answer {got}: {e}")
                    t.join()
                    return got
                conn.receive_data(d)
                if not d:
                    bad.append(f"answer {got}: EOF")
                    t.join()
                    return got
                continue
            if isinstance(ev, h11.Response):
                st = ev.status_code
            elif isinstance(ev, h11.Data):
                parts.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                break
        b = b"".join(parts)
        if st != status or (body is not None and b != body):
            bad.append(f"answer {got} to {method}: {st} {len(b)} bytes, expected {status} {None if body is None else len(body)}")
        got += 1
    t.join()
    s.close()
    return got


def main():
    depth = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    for stack in ("mio", "hyper"):
        rng = random.Random(seed)
        proc, addr = start(stack)
        bad, total = [], 0
        total += run(addr, mix(rng, depth), bad)
        work = [mix(rng, per) for _ in range(conns)]
        counts = [0] * conns

        def one(i):
            counts[i] = run(addr, work[i], bad)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        total += sum(counts)
        rep = stop(proc)
        print(f"{stack}: {total} answers read of {depth + conns * per}; served {rep.get('served')} rejected {rep.get('rejected')} "
              f"leaked {rep.get('leaked')} panics {rep.get('panics')}; {len(bad)} bad")
        for b in bad[:10]:
            print("  BAD", b)


if __name__ == "__main__":
    main()
