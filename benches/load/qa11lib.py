"""Helpers of the hostile-client round 11 scripts (benches/load/qa11_*.py): start `serve`, stop
it with signals and read its JSON report, and a small strict HTTP/1.1 answer reader for raw
sockets (content-length framing only, as the demo routes answer; HEAD answers have no body)."""
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


def post(path, body, extra=b""):
    return (b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n%s\r\n" % (path, len(body), extra)) + body


GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
