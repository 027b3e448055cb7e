"""Helpers of qa32_battery.py (round 32's hostile-client battery): a raw exchange (send bytes,
optionally split into pieces with a pause between, read every byte until EOF, reset or quiet),
and a strict reading of those bytes: h11 (pip install h11) as the client of the requests the
bytes carried, plus the checks h11 does not make (one IMF-fixdate `date` per final answer, one
`content-length` unless 1xx/204, `allow` on 405, `connection: close` then EOF on the error
statuses RFC 9112 says close, no byte after a close)."""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop  # noqa: E402,F401

REQUEST_LINE = re.compile(rb"(?:^|\n)([!#$%&'*+\-.^_`|~0-9A-Za-z]+) [^ \r\n]+ HTTP/")
IMF = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
CLOSING = {400, 408, 413, 414, 431, 505}


def exchange(addr, data, pieces=None, wait=0.5, gap=0.0, half=False, nodelay=True):
    """Sends `data` (in `pieces`, offsets where to cut, with `gap` s between) on a fresh
    connection and returns (bytes read, how it ended: EOF, RST or open)."""
    s = socket.create_connection(addr)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cuts = [0] + sorted(set(c for c in (pieces or []) if 0 < c < len(data))) + [len(data)]
    sent_end = ""
    for a, b in zip(cuts, cuts[1:]):
        try:
            s.sendall(data[a:b])
        except (BrokenPipeError, ConnectionResetError) as e:
            sent_end = f" (send at {a}: {type(e).__name__})"
            break
        if gap and b < len(data):
            time.sleep(gap)
    if half and not sent_end:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(wait)
    got, end = b"", "open"
    try:
        while True:
            c = s.recv(1 << 20)
            if not c:
                end = "EOF"
                break
            got += c
    except socket.timeout:
        pass
    except ConnectionResetError:
        end = "RST"
    s.close()
    return got, end + sent_end


def methods_of(data):
    return [m.decode("latin-1") for m in REQUEST_LINE.findall(data)]


def strict(raw, end, methods):
    """Reads `raw` as the answers to requests of `methods` (in order). Returns (answers,
    complaints): answers as `status[c]` strings (`c`: connection: close), complaints a list of
    strings (empty when every check passed)."""
    import h11

    bad, out = [], []
    conn = h11.Connection(h11.CLIENT)
    pending = raw
    i = 0
    ka10 = False
    methods = methods or ["GET"]
    try:
        while i < len(methods):
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            if conn.our_state is not h11.IDLE:
                break
            m = methods[i]
            i += 1
            conn.send(h11.Request(method=m if m != "CONNECT" else "GET", target="/", headers=[("host", "x")]))
            conn.send(h11.EndOfMessage())
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    if pending:
                        conn.receive_data(pending)
                        pending = b""
                        continue
                    if end.startswith("open"):
                        return out, bad
                    conn.receive_data(b"")
                    continue
                if isinstance(ev, h11.InformationalResponse):
                    out.append(str(ev.status_code))
                    continue
                if isinstance(ev, h11.Response):
                    h = {}
                    for k, v in ev.headers:
                        h.setdefault(k.decode(), []).append(v.decode("latin-1"))
                    tag = str(ev.status_code)
                    close = any("close" in v.lower() for v in h.get("connection", []))
                    ka10 = ev.http_version == b"1.0" and any("keep-alive" in v.lower() for v in h.get("connection", [])) and not close
                    if ev.http_version == b"1.0":
                        tag += "/1.0"
                        close = close or not ka10
                    if close:
                        tag += "c"
                    out.append(tag)
                    if len(h.get("date", [])) != 1 or not IMF.match(h["date"][0]):
                        bad.append(f"{tag}: date {h.get('date')}")
                    if ev.status_code != 204 and len(h.get("content-length", [])) != 1:
                        bad.append(f"{tag}: content-length {h.get('content-length')}")
                    if ev.status_code == 204 and "content-length" in h:
                        bad.append(f"{tag}: content-length on 204")
                    if "transfer-encoding" in h:
                        bad.append(f"{tag}: transfer-encoding")
                    if ev.status_code == 405 and not h.get("allow"):
                        bad.append(f"{tag}: 405 without allow")
                    if ev.status_code in CLOSING and not close:
                        bad.append(f"{tag}: no connection: close")
                    continue
                if isinstance(ev, h11.Data):
                    continue
                if isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
            if isinstance(ev, h11.ConnectionClosed):
                break
            if ka10 and conn.their_state is h11.MUST_CLOSE:
                # h11 keeps no HTTP/1.0 connection alive; one answered `HTTP/1.0` with
                # `connection: keep-alive` (hyper's, RFC 9112 9.3) goes on: a fresh reader.
                rest = conn.trailing_data[0] + pending
                conn, pending = h11.Connection(h11.CLIENT), rest
                continue
            if conn.their_state is h11.MUST_CLOSE:
                if pending or conn.trailing_data[0]:
                    bad.append(f"bytes after a close: {(pending or conn.trailing_data[0])[:60]!r}")
                if end.startswith("open"):
                    bad.append("open after connection: close")
                break
        else:
            rest = pending or conn.trailing_data[0]
            if rest:
                bad.append(f"bytes past the last answer: {rest[:60]!r}")
    except h11.ProtocolError as e:
        bad.append(f"h11: {e}")
    return out, bad


def summary(raw, end, data):
    out, bad = strict(raw, end, methods_of(data))
    return " ".join(out) + " | " + end, bad
