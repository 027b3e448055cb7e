"""Helpers of the hostile-client scripts (benches/load/qa11_*.py, qa12_*.py): start `serve`, stop
it with signals and read its JSON report, a small strict HTTP/1.1 answer reader for raw sockets
(content-length framing only, as the demo routes answer; HEAD answers have no body), a probe
that sends raw bytes and sums up the answers it reads so, the raw bytes a server sends back, and
those bytes read by h11 (pip install h11) as a second, independent parser."""
import json
import os
import re
import socket
import struct
import subprocess
import time

BIN = os.environ.get("BIN", "target/release/reqguard-demo")


def start(stack="mio", loops=1, extra=()):
    args = [BIN, "serve", "--addr", "127.0.0.1:0", "--loops", str(loops)]
    if stack == "hyper":
        args += ["--stack", "hyper"]
    args += list(extra)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)", line or "")
    assert m, f"no address: {line!r}"
    return proc, ("127.0.0.1", int(m.group(1)))


def stop(proc, sig=15, twice_after=None, timeout=30):
    """Signals `proc` (again after `twice_after` s if given) and returns its JSON report."""
    proc.send_signal(sig)
    if twice_after is not None:
        time.sleep(twice_after)
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    out, err = proc.communicate(timeout=timeout)
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no report: rc={proc.returncode} out={out[-500:]!r} err={err[-2000:]!r}")


def rst(sock):
    """Closes with a reset (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Reader:
    """Reads answers off a blocking socket, one at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.end = None  # "EOF", "RST", "TIMEOUT" once met

    def _more(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            self.end = "TIMEOUT"
            return False
        except ConnectionResetError:
            self.end = "RST"
            return False
        except OSError as e:
            self.end = f"ERR {e}"
            return False
        if not chunk:
            self.end = "EOF"
            return False
        self.buf += chunk
        return True

    def answer(self, head_request=False):
        """(status, {name: value}, body) of the next final answer, or None at the end (self.end).
        Interim 1xx answers are returned too (their status tells)."""
        while self.buf.find(b"\r\n\r\n", 0, 65536) < 0:
            if len(self.buf) > 65536:
                raise AssertionError(f"head over 64 KiB: {self.buf[:80]!r}")
            if not self._more():
                if self.buf and self.end == "EOF":
                    self.end = f"EOF mid-answer {self.buf[:80]!r}"
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ", lines[0] + b" ")
        assert m, f"bad status line {lines[0]!r}"
        status = int(m.group(1))
        fields = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon and name == name.strip(), f"bad field {line!r}"
            key = name.decode().lower()
            assert key not in fields or key in ("allow",), f"duplicate {key} in {head!r}"
            fields[key] = value.strip().decode("latin-1")
        if 100 <= status < 200:
            return status, fields, b""
        if "transfer-encoding" in fields:
            raise AssertionError(f"chunked answer not expected: {head!r}")
        n = 0 if head_request or status in (204, 304) else int(fields.get("content-length", "0"))
        parts, have = [self.buf], len(self.buf)
        self.buf = b""
        while have < n:
            if not self._more():
                self.end = f"{self.end} mid-body {have}/{n}"
                return None
            parts.append(self.buf)
            have += len(self.buf)
            self.buf = b""
        whole = b"".join(parts)
        body, self.buf = whole[:n], whole[n:]
        return status, fields, body


# A request line, its method captured: at the start of the data or after a line end.
REQUEST_LINE = rb"(?:^|\r?\n)([A-Za-z]+) [^ \r\n]+ HTTP/"


def probe(addr, data, wait=0.6, half=False):
    """Sends `data` on a fresh connection (then half-closes if `half`) and reads its answers
    strictly (Reader; a HEAD's by its method) until the end or `wait` s of quiet. Returns the
    statuses, `c` after one saying `connection: close`, a 200's body if not one of the demo
    routes' plain ones, then ` | ` and how the connection ended (`open`: still, at the wait)."""
    s = socket.create_connection(addr)
    s.settimeout(wait)
    s.sendall(data)
    if half:
        s.shutdown(socket.SHUT_WR)
    r = Reader(s)
    out = []
    methods = re.findall(REQUEST_LINE, data)
    while True:
        try:
            k = len([o for o in out if not o.startswith("1")])
            a = r.answer(head_request=k < len(methods) and methods[k] == b"HEAD")
        except AssertionError as e:
            out.append(f"BAD({e})"[:120])
            break
        if a is None:
            break
        st, f, body = a
        tag = str(st)
        if f.get("connection") == "close":
            tag += "c"
        if st == 200 and body not in (b"hello", b"abc", b"") and not body.startswith(b"delayed"):
            tag += f"[{body[:20]!r}]"
        out.append(tag)
    s.close()
    end = {"TIMEOUT": "open", "EOF": "EOF", "RST": "RST"}.get(r.end, r.end)
    return " ".join(out) + " | " + str(end)


def read_all(addr, data, wait):
    """Sends `data` on a fresh connection and returns every byte the server sent until it
    closed, reset, or was quiet for `wait` s."""
    s = socket.create_connection(addr)
    s.settimeout(wait)
    s.sendall(data)
    got = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            got += c
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return got


def h11_statuses(raw, methods):
    """Feeds `raw`, the bytes a server sent, to an h11 client that sent a bodiless request of
    each method in `methods` in order (h11 frames a HEAD's answer as such); returns the statuses
    read, until the bytes, the methods or the connection end. Raises h11.ProtocolError where the
    bytes are not HTTP/1.1 answers to those requests. Needs h11 (pip install h11)."""
    import h11

    conn = h11.Connection(h11.CLIENT)
    statuses = []
    for m in methods:
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        if conn.our_state is not h11.IDLE:
            break
        conn.send(h11.Request(method=m, target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                if not raw:
                    return statuses
                conn.receive_data(raw)
                raw = b""
                continue
            if isinstance(ev, h11.Response):
                statuses.append(ev.status_code)
            if isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if isinstance(ev, h11.ConnectionClosed):
            break
    return statuses


def h11_check(raw, methods):
    """Feeds the server's bytes to an h11 client that sent `methods`; '' or the complaint ('' as
    well without h11 installed)."""
    try:
        import h11
    except ImportError:
        return ""
    try:
        h11_statuses(raw, methods)
        return ""
    except h11.ProtocolError as e:
        return f"h11: {e}"


# The mutations `mutate` draws from, by name (the fuzzers' own lists: qa12_fuzz, qa14_fuzzdiff).
MUTATIONS = ("set", "insert", "delete", "dup-line", "crlf", "splice")


def mutate(rng, data, seeds, alphabet, most=4, ops=MUTATIONS):
    """`data` mutated 1 to `most` times, each a draw from `ops`: a byte set to one of `alphabet`,
    one inserted, 1 to 3 deleted, a line (CRLF-ended) doubled, the first CRLF made LF or the first
    LF CRLF, or (`splice`, and a set or delete on empty data) 1 to 20 bytes of one of `seeds`
    spliced in. The same `rng` draws give the same mutations."""
    data = bytearray(data)
    for _ in range(rng.randint(1, most)):
        op = ops[rng.randrange(len(ops))]
        i = rng.randrange(len(data) + 1)
        if op == "set" and data:
            data[min(i, len(data) - 1)] = rng.choice(alphabet)
        elif op == "insert":
            data[i:i] = bytes([rng.choice(alphabet)])
        elif op == "delete" and data:
            del data[i:i + rng.randint(1, 3)]
        elif op == "dup-line":
            lines = bytes(data).split(b"\r\n")
            k = rng.randrange(len(lines))
            lines.insert(k, lines[k])
            data = bytearray(b"\r\n".join(lines))
        elif op == "crlf":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n", 1) if rng.random() < 0.5
                             else bytes(data).replace(b"\n", b"\r\n", 1))
        else:
            other = rng.choice(seeds)
            j = rng.randrange(len(other))
            data[i:i] = other[j:j + rng.randint(1, 20)]
    return bytes(data)


REPORT_KEYS = ("served", "refused", "rejected", "aborted", "leaked", "panics")


def side_by_side(cases, flt="", widths=(28, 30, 0), h11_methods=None, plain=None,
                 keys=REPORT_KEYS, outcomes=False):
    """Sends each of `cases` ((name, bytes); those whose name holds `flt`) to both stacks, each
    on a fresh connection, and prints a line a case: `!=` where the two stacks' answers (probe)
    differ, the name and each stack's answers (`widths`: of the name, of mio's and of hyper's
    answers). With `h11_methods` (a pattern whose group is a request line's method), every byte
    a stack sent back is also fed to h11 as the client of those requests (read_all, h11_check)
    and its complaint added; with `plain` ((host, port), a server started by hand), a third
    column. Then each stack's exit JSON (its `keys`, and its outcomes if `outcomes`) and how
    many cases ran and differed."""
    servers = {st: start(st) for st in ("mio", "hyper")}
    diffs = ran = 0
    for name, data in cases:
        if flt not in name:
            continue
        ran += 1
        got = {}
        for st, (_, addr) in servers.items():
            got[st] = probe(addr, data)
            if h11_methods is not None:
                methods = [m.decode() for m in re.findall(h11_methods, data)]
                complaint = h11_check(read_all(addr, data, wait=0.6), methods)
                if complaint:
                    got[st] += " " + complaint[:80]
        mark = "  " if got["mio"] == got["hyper"] else "!="
        diffs += mark == "!="
        third = f"   plain: {probe(plain, data)}" if plain else ""
        wn, wm, wh = widths
        print(f"{mark} {name:{wn}} mio: {got['mio']:{wm}} hyper: {got['hyper']:{wh}}{third}", flush=True)
    reports = {st: stop(p) for st, (p, _) in servers.items()}
    for st, rep in reports.items():
        if outcomes:
            print(st, {k: rep[k] for k in keys}, rep.get("outcomes"))
        else:
            print(st, {k: rep[k] for k in keys})
    print(f"{ran} cases, {diffs} differ")


def post(path, body, extra=b""):
    return (b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n%s\r\n" % (path, len(body), extra)) + body


GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def read_by_tool(out):
    """Answers a load tool says it read whole: wrk's, ab's or h2load's count (None if none)."""
    for pattern in (r"(\d+) requests in ", r"Complete requests:\s+(\d+)", r"(\d+) succeeded"):
        m = re.search(pattern, out)
        if m:
            return int(m.group(1))
    return None
