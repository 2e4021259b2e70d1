#!/usr/bin/python3
"""A tiny stand-in for a PostgreSQL server, for the benchmark's 10,000 idle agent connections
(a real PostgreSQL would need 10,000 backends). It completes the v3 startup as PostgreSQL 15 does
with trust authentication (AuthenticationOk, the same ParameterStatus set, BackendKeyData,
ReadyForQuery), refuses SSLRequest with 'N', answers a simple Query with an empty result and
ends on Terminate. One thread, epoll.

Usage: pgstub.py PORT   (prints "listening" once it accepts)
"""
import os
import selectors
import socket
import struct
import sys

PARAMS = [("application_name", ""), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
          ("default_transaction_read_only", "off"), ("in_hot_standby", "off"),
          ("integer_datetimes", "on"), ("IntervalStyle", "postgres"), ("is_superuser", "on"),
          ("server_encoding", "UTF8"), ("server_version", "15.18 (hoop bench stub)"),
          ("session_authorization", "postgres"), ("standard_conforming_strings", "on"),
          ("TimeZone", "Etc/UTC")]


def msg(t, body):
    return t + struct.pack("!I", len(body) + 4) + body


def greeting(key):
    out = msg(b"R", struct.pack("!I", 0))
    for k, v in PARAMS:
        out += msg(b"S", k.encode() + b"\0" + v.encode() + b"\0")
    return out + msg(b"K", struct.pack("!II", os.getpid(), key)) + msg(b"Z", b"I")


class Conn:
    def __init__(self, sock, key):
        self.sock, self.key = sock, key
        self.buf = b""
        self.started = False


def main():
    port = int(sys.argv[1])
    sel = selectors.EpollSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    print("listening", flush=True)
    n = 0
    while True:
        for k, _ in sel.select():
            if k.data is None:
                while True:
                    try:
                        s, _ = ls.accept()
                    except BlockingIOError:
                        break
                    s.setblocking(False)
                    n += 1
                    sel.register(s, selectors.EVENT_READ, Conn(s, n))
                continue
            c = k.data
            try:
                d = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                d = b""
            if not d:
                sel.unregister(c.sock)
                c.sock.close()
                continue
            c.buf += d
            if not serve(c):
                sel.unregister(c.sock)
                c.sock.close()


def serve(c):
    """Answer every whole message in c.buf; False to close."""
    while True:
        if not c.started:
            if len(c.buf) < 8:
                return True
            n, code = struct.unpack("!II", c.buf[:8])
            if len(c.buf) < n:
                return True
            c.buf = c.buf[n:]
            if code == 80877103:  # SSLRequest
                c.sock.send(b"N")
                continue
            if code != 196608:  # CancelRequest or anything else
                return False
            c.started = True
            c.sock.send(greeting(c.key))
            continue
        if len(c.buf) < 5:
            return True
        t = c.buf[:1]
        n = struct.unpack("!I", c.buf[1:5])[0]
        if len(c.buf) < 1 + n:
            return True
        c.buf = c.buf[1 + n:]
        if t == b"X":
            return False
        if t == b"Q":
            c.sock.send(msg(b"I", b"") + msg(b"Z", b"I"))


if __name__ == "__main__":
    main()
