#!/usr/bin/env python3
"""qa12_slowread: a client pipelines eight 1,000,000-byte POST /echo (more than the socket
buffers hold) and reads one byte a second through a 4 KiB receive buffer; each second, the
server's socket as `ss` sees it (state, Recv-Q, Send-Q). The server disconnects it as a slow
reader (mio after ~5 s, hyper ~10 s) with megabytes still in its send queue and the uploads
behind unread: a reset, the kernel drops what it had not sent. Round 12 found those answers
counted `served` in the exit JSON (the client read 22 bytes); since slowread13 they are counted
`undelivered` (docs/server.md, "Undelivered answers"), and `served` counts what the client read
whole (here none).
usage: qa12_slowread.py mio|hyper"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from qa11lib import start, stop, post  # noqa: E402

stack = sys.argv[1]
proc, addr = start(stack)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(addr)
s.settimeout(1.0)
port = s.getsockname()[1]
body = b"z" * 1000000
threading.Thread(target=lambda: s.sendall(post(b"/echo", body) * 8), daemon=True).start()
t0 = time.time()
got = 0
while time.time() - t0 < 22:
    out = subprocess.run(["ss", "-tanH", "sport", f"= :{addr[1]}", "dport", f"= :{port}"], capture_output=True, text=True).stdout.split()
    print(f"{time.time()-t0:5.1f} srv {out[:3]}", flush=True)
    try:
        d = s.recv(1)
        if not d:
            print("EOF"); break
        got += 1
    except socket.timeout:
        pass
    except ConnectionResetError:
        print("RST", time.time() - t0); break
    time.sleep(1)
rep = stop(proc)
print(stack, got, {k: rep.get(k) for k in ("served", "undelivered", "aborted", "outcomes")})
