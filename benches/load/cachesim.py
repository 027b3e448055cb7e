#!/usr/bin/env python3
"""Instructions and simulated cache misses per request of a server at many connections.

    python3 benches/load/cachesim.py CONNS R1 R2 CMD...

Runs the server command (leading VAR=value words are its environment; it must print
`listening on ADDR`) under `valgrind --tool=callgrind --cache-sim=yes` twice: each time CONNS
keep-alive connections are opened, then R rounds (a warm-up round first) each send `GET /` on
every connection before reading every answer (`hello`), so all CONNS requests are in flight
at once, as under `wrk -cCONNS`; then SIGTERM. Prints, for the server thread that ran the most
instructions, (total at R2 - total at R1) / (CONNS * (R2 - R1)) of each event: Ir, data reads
and writes, and the misses of the simulated caches (I1 64 KiB 16-way, D1 48 KiB 12-way, LL 2 MiB
16-way: one core's L1 and L2 of the machine of docs/benchmarks.md). Deterministic up to how
the server's wakes batch the requests (a few percent of Ir from run to run). Example:

    python3 benches/load/cachesim.py 500 1 5 target/release/reqguard-demo serve --addr 127.0.0.1:0 --stack hyper
"""
import glob, os, re, signal, socket, subprocess, sys, tempfile, time

EVENTS = "Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw".split()
REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"


def client(addr, conns, rounds):
    host, port = addr.rsplit(":", 1)
    socks = [socket.create_connection((host, int(port))) for _ in range(conns)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(rounds + 1):  # the first round warms up
        for s in socks:
            s.sendall(REQUEST)
        for s in socks:
            answer = b""
            while not answer.endswith(b"hello"):
                data = s.recv(4096)
                if not data:
                    sys.exit("a connection closed")
                answer += data
    for s in socks:
        s.close()


def run(cmd, env, conns, rounds, tmp):
    out = os.path.join(tmp, f"cg.{rounds}")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--separate-threads=yes",
         "--I1=65536,16,64", "--D1=49152,12,64", "--LL=2097152,16,64",
         f"--callgrind-out-file={out}.%p"] + cmd,
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        found = re.search(r"listening on (\S+)", line)
        if found:
            break
    else:
        sys.exit("the server printed no address")
    client(found.group(1), conns, rounds)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    best = None
    for path in glob.glob(f"{out}.*"):
        with open(path) as f:
            text = f.read()
        if "totals:" not in text:
            continue
        totals = [int(x) for x in text.split("totals:")[1].split()]
        if best is None or totals[0] > best[0]:
            best = totals
    return best


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    conns, r1, r2 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    words, env = sys.argv[4:], {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    with tempfile.TemporaryDirectory() as tmp:
        a = run(words, env, conns, r1, tmp)
        b = run(words, env, conns, r2, tmp)
    n = conns * (r2 - r1)
    print(" ".join(f"{e}={(y - x) / n:.1f}" for e, x, y in zip(EVENTS, a, b)))


if __name__ == "__main__":
    main()
