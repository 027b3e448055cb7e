#!/usr/bin/env python3
"""qa11_trunc: N clients each pipeline 256 KiB POST /echo (100, from a thread) and read 64 KiB
every SLOW s; SIGTERM 0.5 s in; counts connections that end mid-answer or after an answer
without `connection: close`, and the 200s read against `served`. usage: qa11_trunc.py STACK N SLOW [serve args]"""
import sys, os, socket, time, threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qa11lib import *
stack=sys.argv[1]; N=int(sys.argv[2]); SLOW=float(sys.argv[3]); extra=sys.argv[4:]
proc, addr = start(stack, 1, extra)
req = post(b"/echo", b"a"*262144)
res = []
def one(i):
    s = socket.create_connection(addr); s.settimeout(15)
    def send():
        try:
            for _ in range(100): s.sendall(req)
        except OSError: pass
    threading.Thread(target=send, daemon=True).start()
    data = bytearray(); err=None
    while True:
        try:
            c = s.recv(65536)
        except OSError as e:
            err = e; break
        if not c: break
        data += c
        time.sleep(SLOW)
    res.append((i, bytes(data), err))
ts=[threading.Thread(target=one, args=(i,)) for i in range(N)]
[t.start() for t in ts]
time.sleep(0.5)
t0=time.time()
rep = stop(proc)
print("exit after", round(time.time()-t0,3))
[t.join() for t in ts]
bad=0; answered=0
for i, data, err in res:
    at=0; n=0; prob=None; last=None
    while at < len(data):
        e = data.find(b"\r\n\r\n", at)
        if e < 0: prob="head cut"; break
        head = data[at:e].decode("latin-1").lower()
        cl = int([l for l in head.split("\r\n") if l.startswith("content-length")][0].split(":")[1])
        if e+4+cl > len(data): prob=f"body cut {len(data)-e-4}/{cl} ({head.splitlines()[0]})"; break
        last=head; n+=1; at=e+4+cl
        answered += head.startswith("http/1.1 200")
    if prob or (last and "connection: close" not in last):
        bad+=1
        if bad<=3: print(i, n, prob, "last close" if last and "close" in last else "last keep", err)
# Every answer counted `served` must have arrived whole: the 200s read == served.
print("200s read", answered, "served", rep["served"], "lost", rep["served"]-answered)
print("bad", bad, "of", N, {k: rep[k] for k in ("served","refused","force_closed","drain_ms")}, [(s['step'], s['at_ms'], s['answered']) for l in rep['loops'] for s in l['steps']])
