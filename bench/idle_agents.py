#!/usr/bin/python3
"""Idle agents for the benchmark's memory measurement: open N PostgreSQL connections, complete
each one's startup (StartupMessage, no TLS, trust authentication, up to ReadyForQuery), then hold
them all idle until stdin closes. Run inside an attached cgroup, so every connection goes through
hoopd. At most 256 connects are in flight at once, so that no listen backlog overflows.

Usage: idle_agents.py HOST PORT N USER DATABASE
Prints "ready N SECONDS" when all N are idle, or "failed: why" and exits 1.
"""
import errno
import selectors
import socket
import struct
import sys
import time

INFLIGHT = 256


def startup(user, db):
    body = struct.pack("!I", 196608)
    for k, v in (("user", user), ("database", db), ("application_name", "hoop-bench-idle")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def main():
    host, port, n, user, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    hello = startup(user, db)
    sel = selectors.EpollSelector()
    socks, ready, opened, pending = [], 0, 0, 0
    bufs = {}
    t0 = time.time()
    deadline = t0 + 300
    while ready < n:
        while opened < n and pending < INFLIGHT:
            s = socket.socket()
            s.setblocking(False)
            r = s.connect_ex((host, port))
            if r not in (0, errno.EINPROGRESS):
                print("failed: connect #%d: %s" % (opened, errno.errorcode.get(r, r)), flush=True)
                return 1
            socks.append(s)
            bufs[s.fileno()] = b""
            sel.register(s, selectors.EVENT_WRITE, "connecting")
            opened += 1
            pending += 1
        if time.time() > deadline:
            print("failed: only %d of %d ready after 300 s" % (ready, n), flush=True)
            return 1
        for k, ev in sel.select(timeout=1):
            s = k.fileobj
            if k.data == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    print("failed: connect: %s" % errno.errorcode.get(err, err), flush=True)
                    return 1
                s.send(hello)
                sel.modify(s, selectors.EVENT_READ, "startup")
                continue
            d = s.recv(65536)
            if not d:
                print("failed: connection closed during startup after %d ready" % ready, flush=True)
                return 1
            b = bufs[s.fileno()] + d
            # Walk whole messages; ReadyForQuery ends the startup, ErrorResponse fails it.
            while len(b) >= 5:
                t, ln = b[:1], struct.unpack("!I", b[1:5])[0]
                if len(b) < 1 + ln:
                    break
                if t == b"E":
                    print("failed: server error: %r" % b[5:1 + ln], flush=True)
                    return 1
                if t == b"Z":
                    sel.unregister(s)
                    ready += 1
                    pending -= 1
                b = b[1 + ln:]
            bufs[s.fileno()] = b
    print("ready %d %.1f" % (ready, time.time() - t0), flush=True)
    sys.stdin.read()
    for s in socks:
        try:
            s.send(b"X\0\0\0\4")
        except OSError:
            pass
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
