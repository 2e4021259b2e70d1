#!/usr/bin/python3
"""Regenerate the seed corpora of the MySQL engine fuzz targets from a real MariaDB 10.11.

Starts a throwaway MariaDB (tests/e2e/hooptest.py MariaDB, on TCP) with a clinical.patients
table whose ssn column holds the targets' marker, and talks to it three ways:

- fuzz/corpus/mysql_server/: a small protocol client of this file's own plays the canned agent
  of fuzz/fuzz_mysql_server.c step by step (STEPS below mirror its agent_sends), sending what
  that agent sends as hoopd forwards it (capabilities cut as hoopd cuts them) and hoopd's own
  settings query where hoopd would send it (its text read from mysql.c); the server's answers,
  in order, are the seed, and its last bytes are the target's decisions: each step's command
  and how many whole packets of the answer reach hoopd.
- fuzz/corpus/mysql_agent/: what real clients send, from its login on: the same client's
  sessions, the mariadb command-line client and pymysql through a recording proxy
  (fuzz/record_pg.py's Recorder), with decisions that give the agent target's model server
  the matching settings (cut to at most 16 KiB at a packet boundary).
- hand-made seeds for what a recording does not reach: the agent's SSLRequest, an auth switch,
  hoopd's TLS leg to the server, masking, holds, a SET of sql_mode before other statements.

Usage: /usr/bin/python3 fuzz/record_mysql.py [--out fuzz/corpus]
Not part of `make test`; run it by hand when the corpus should change, and commit the result.
"""

import argparse
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, HERE)
from hooptest import Cleanup, MariaDB  # noqa: E402
from record_pg import Recorder, free_port  # noqa: E402

MAX_SEED = 16 * 1024
MARKER = b"123-45-6789"

# mywire.h MY_CAPS_ALLOWED: what hoopd lets the two sides agree on
CAPS_ALLOWED = (0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x40 | 0x200 | 0x400 | 0x1000 | 0x2000 | 0x4000 |
                0x8000 | 1 << 16 | 1 << 17 | 1 << 18 | 1 << 19 | 1 << 20 | 1 << 21 | 1 << 22 |
                1 << 24)
DEPRECATE_EOF = 1 << 24
SSL = 0x800
# fuzz_mysql_server.c AGENT_CAPS
AGENT_CAPS = (0x1 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 1 << 16 | 1 << 17 | 1 << 18 | 1 << 19 |
              1 << 20 | 1 << 21)
ATTRS = b"\x0c_client_name\x04fuzz\x0cprogram_name\x05agent"


def pkt(payload, seq):
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xff]) + payload


def packets(data):
    """(offset, end) of each whole packet of data."""
    o = 0
    while o + 4 <= len(data):
        end = o + 4 + int.from_bytes(data[o:o + 3], "little")
        if end > len(data):
            return
        yield o, end
        o = end


def cut(data):
    """At most MAX_SEED bytes, ending at a packet boundary."""
    end = 0
    for _, e in packets(data):
        if e > MAX_SEED:
            break
        end = e
    return bytes(data[:end])


def lenenc(p, o):
    c = p[o]
    if c < 0xfb:
        return c, o + 1
    w = {0xfc: 2, 0xfd: 3, 0xfe: 8}[c]
    return int.from_bytes(p[o + 1:o + 1 + w], "little"), o + 1 + w


def native_scramble(password, salt):
    if not password:
        return b""
    h1 = hashlib.sha1(password).digest()
    h2 = hashlib.sha1(salt + hashlib.sha1(h1).digest()).digest()
    return bytes(a ^ b for a, b in zip(h1, h2))


def settings_queries():
    """hoopd's own settings query, without and with masking (mysql.c's string literals)."""
    with open(os.path.join(ROOT, "user", "hoopd", "engines", "mysql", "mysql.c")) as f:
        src = f.read()
    out = {}
    for name in ("SETTINGS_SQL", "SETTINGS_CAT_SQL"):
        m = re.search(r"static const char %s\[\] =\s*((?:\"(?:[^\"\\]|\\.)*\"\s*)+);" % name, src)
        parts = re.findall(r"\"((?:[^\"\\]|\\.)*)\"", m.group(1))
        out[name] = "".join(parts).encode().decode("unicode_escape").encode("latin-1")
    return out["SETTINGS_SQL"], out["SETTINGS_CAT_SQL"]


class Client:
    """A MySQL client speaking the protocol itself, keeping every byte each way."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.rbuf = b""
        self.sent = bytearray()  # what it sent
        self.got = bytearray()  # what it read
        self.deprecate = False
        seq, g = self.read()
        self.greeting = g
        v = g.index(b"\0", 1)
        o = v + 1 + 4
        salt = g[o:o + 8]
        o += 9
        self.caps = g[o] | g[o + 1] << 8
        o += 2 + 1 + 2
        self.caps |= (g[o] | g[o + 1] << 8) << 16
        o += 2 + 1 + 10
        self.salt = salt + g[o:o + 12]

    def read(self):
        while len(self.rbuf) < 4 or len(self.rbuf) < 4 + int.from_bytes(self.rbuf[:3], "little"):
            b = self.s.recv(65536)
            if not b:
                raise EOFError("the server closed the connection")
            self.rbuf += b
        n = 4 + int.from_bytes(self.rbuf[:3], "little")
        raw, self.rbuf = self.rbuf[:n], self.rbuf[n:]
        self.got += raw
        self.last = raw
        return raw[3], raw[4:]

    def send(self, payload, seq):
        b = pkt(payload, seq)
        self.sent += b
        self.s.sendall(b)

    def login(self, caps, user=b"agent", password=b"secret", db=b"clinical", attrs=ATTRS):
        """The login as hoopd forwards it: capabilities cut to what the greeting offers and
        hoopd follows. Returns the answer's packets (raw)."""
        caps &= self.caps & CAPS_ALLOWED
        self.deprecate = bool(caps & DEPRECATE_EOF)
        auth = native_scramble(password, self.salt)
        b = struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23 + user + b"\0"
        b += bytes([len(auth)]) + auth + db + b"\0" + b"mysql_native_password\0"
        b += bytes([len(attrs)]) + attrs
        self.send(b, 1)
        start = len(self.got)
        seq, p = self.read()
        if p[:1] == b"\xfe":  # auth switch: the same plugin, a new salt
            salt = p[p.index(b"\0", 1) + 1:].rstrip(b"\0")
            self.send(native_scramble(password, salt), seq + 1)
            seq, p = self.read()
        if p[:1] != b"\0":
            raise RuntimeError("login refused: %r" % p)
        return bytes(self.got[start:])

    def end(self, p):
        if self.deprecate:
            return p[:1] == b"\xfe" and len(p) < 0xffffff
        return p[:1] == b"\xfe" and len(p) < 9

    @staticmethod
    def status(p):
        if p[0] == 0xfe and len(p) < 9 and len(p) >= 5 and p[0] == 0xfe:
            return struct.unpack("<H", p[3:5])[0]
        _, o = lenenc(p, 1)
        _, o = lenenc(p, o)
        return struct.unpack("<H", p[o:o + 2])[0]

    def answer(self, kind):
        """Read one command's answer; its packets (raw)."""
        start = len(self.got)
        if kind == "none":
            return b""
        if kind in ("ok", "one"):
            self.read()
        elif kind == "fields":
            while True:
                _, p = self.read()
                if p[0] == 0xff or self.end(p):
                    break
        elif kind == "prepare":
            _, p = self.read()
            if p[0] == 0:
                nc, np = struct.unpack("<HH", p[5:9])
                n = np + (np and not self.deprecate) + nc + (nc and not self.deprecate)
                for _ in range(n):
                    self.read()
                self.stmt_id = struct.unpack("<I", p[1:5])[0]
        elif kind == "cursor":  # COM_STMT_EXECUTE with a cursor: definitions, EOF (CURSOR_EXISTS)
            _, p = self.read()
            if p[0] not in (0x00, 0xff):
                n, _ = lenenc(p, 0)
                for _ in range(n + 1):
                    self.read()
        elif kind == "fetch":  # COM_STMT_FETCH: rows, then the end (or an ERR)
            while True:
                _, p = self.read()
                if p[0] == 0xff or self.end(p):
                    break
        elif kind == "result":
            while True:
                _, p = self.read()
                if p[0] == 0xff:
                    break
                if p[0] == 0:
                    if self.status(p) & 8:
                        continue
                    break
                n, _ = lenenc(p, 0)
                for _ in range(n):
                    self.read()
                if not self.deprecate:
                    self.read()
                while True:
                    _, p = self.read()
                    if p[0] == 0xff:
                        return bytes(self.got[start:])
                    if self.end(p):
                        break
                if self.deprecate:
                    st = self.status(p)
                else:
                    st = struct.unpack("<H", p[3:5])[0] if len(p) >= 5 else 0
                if not st & 8:
                    break
        else:
            raise ValueError(kind)
        return bytes(self.got[start:])

    def cmd(self, payload, kind):
        self.send(payload, 0)
        return self.answer(kind)

    def close(self):
        try:
            self.send(b"\x01", 0)
            self.s.close()
        except OSError:
            pass


# ---- fuzz_mysql_server.c's canned agent ----

def execute(stmt_id, cursor=False):
    # no cursor (or a read-only one), one iteration, a NULL bitmap of 0, types sent: LONG, 1
    return (b"\x17" + struct.pack("<IB", stmt_id, 1 if cursor else 0) +
            b"\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x00\x00")


# agent_sends(g): g -> (what it sends, the answer's kind, hoopd reads the settings again
# after it, hoopd answers it itself)
def step_command(g, stmt_id):
    i, v = g % 16, g & 0x10
    q = lambda s: (b"\x03" + s, "result", False, False)  # noqa: E731
    return {
        1: q(b"select name, ssn from patients"),
        2: q(b"select ssn from clinical.patients where id = 1"),
        3: q(b"select 1, 'x'"),
        4: q(b"select name from patients; select ssn from patients"),
        5: (b"\x03set autocommit = 1", "result", True, False),
        6: (b"\x16select ssn from patients where id = ?", "prepare", False, False),
        7: (execute(stmt_id, True), "cursor", False, False) if v else
        (execute(stmt_id), "result", False, False),
        8: (b"\x1c" + struct.pack("<II", stmt_id, 0xffffffff if g & 0x20 else 1), "fetch", False,
            False) if v else (b"\x1a" + struct.pack("<I", stmt_id), "ok", False, False),
        9: (b"\x04patients\0", "fields", False, False),
        10: (b"\x0e", "ok", False, False),
        11: (b"\x09", "one", False, False),
        12: (b"\x02clinical", "ok", True, False),
        13: (b"\x03delete from patients where id = 3", "none", False, True),
        14: (b"\x1f", "ok", True, False) if v else (b"\x19" + struct.pack("<I", stmt_id), "none",
                                                   False, False),
        15: (b"\x1b\x00\x00", "one", False, False) if v else
        (b"\x03select ssn from patients /* hold */", "result", False, False),
    }[i]


HOLD = 0x0f  # agent_sends' held query; the step after decides it (0x40: approved)

# Scenarios of the server target: the steps' g values in order.
SERVER_SCENARIOS = {
    "queries": [1, 2, 3, 4, 10, 11, 5, 1],
    "prepared": [6, 7, 8, 7, 9, 0x1e, 6, 7],
    "commands": [12, 9, 13, 10, 0x1f, 0x1e, 2, 11],
    "hold": [1, HOLD, 0x40, 3],
    # a read-only cursor (of one row): fetched a row at a time to its end, all at once, reset
    # while open; never a fetch hoopd answers itself (the recording would hold the server's)
    "cursor": [6, 0x17, 0x18, 0x18, 0x17, 0x38, 0x17, 0x18, 8, 0x17, 0x38, 3],
    "everything": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0x1e, 0x1f, HOLD, 0x40, 1],
}


def server_seed(port, steps, masking, deprecate, settings):
    """The server's bytes for one scenario, and the decisions that replay it."""
    c = Client(port)
    data = bytearray(c.got)  # the greeting
    dec = [0, 0x41, 0]  # nothing to send; the greeting
    login = c.login(AGENT_CAPS | (DEPRECATE_EOF if deprecate else 0))
    q = settings[1] if masking else settings[0]
    ans = login + c.cmd(b"\x03" + q, "result")
    data += ans
    dec += [0, 0x40 + len(list(packets(ans))), 0]
    held = False
    for g in steps:
        if held:  # the decision on the held query: approved, forwarded now
            payload, kind, resettle, _ = step_command(HOLD, 0)
            held = False
        else:
            payload, kind, resettle, hoopd = step_command(g, getattr(c, "stmt_id", 0))
            if hoopd or (g % 16 == 15 and not g & 0x10):
                held = g % 16 == 15
                dec += [g, 0x40, 0]
                continue
        ans = c.cmd(payload, kind)
        if resettle:
            ans += c.cmd(b"\x03" + q, "result")
        n = len(list(packets(ans)))
        assert n < 64, "an answer of %d packets" % n
        data += ans
        dec += [g, 0x40 + n, 0]
    c.close()
    cfg = (1 if masking else 0) | (2 if deprecate else 0)
    return bytes(data) + bytes(reversed([cfg] + dec))


# ---- the agent target: what clients send ----

def per_packet(data, server=0, hold=0x40, audit=0):
    """Iterations whose chunks end where data's packets do (a chunk takes 1-64 bytes), so that
    the decisions are used up exactly when the data is: after that the front of the input
    would be read as data."""
    out = []
    for o, end in packets(data):
        n = end - o
        while n > 64:
            out.append((0x7f, server, hold, audit))
            n -= 64
        out.append((0x40 + n - 1, server, hold, audit))
    return out


def agent_decisions(cfg, cfg2=0, iterations=((0xff, 0, 0, 0),)):
    """fuzz_mysql_agent.c reads cfg, cfg2, then per chunk: size, server, hold, audit (0xff:
    all that is left, in one chunk)."""
    dec = [cfg, cfg2]
    for it in iterations:
        dec += list(it)
    return bytes(reversed(dec))


def client_session(port, commands, deprecate=False, password=b"secret"):
    """What our client sends (login on) for a list of (payload, kind) commands."""
    c = Client(port)
    c.login(AGENT_CAPS | (DEPRECATE_EOF if deprecate else 0), password=password)
    for payload, kind in commands:
        if callable(payload):
            payload = payload(c)
        c.cmd(payload, kind)
    c.close()
    return bytes(c.sent)


AGENT_COMMANDS = [
    (b"\x03select name, ssn from patients", "result"),
    (b"\x03select 1; select 2; select ssn from clinical.patients where id = 1", "result"),
    (b"\x03delete from patients where id = 3", "result"),
    (b"\x03set sql_mode = 'ANSI_QUOTES'", "result"),
    (b"\x03select \"name\" from patients", "result"),
    (b"\x03set sql_mode = 'STRICT_TRANS_TABLES'", "result"),
    (b"\x03use clinical", "result"),
    (b"\x16select ssn from patients where id = ?", "prepare"),
    (lambda c: b"\x18" + struct.pack("<IH", c.stmt_id, 0) + b"12", "none"),
    (lambda c: execute(c.stmt_id), "result"),
    (lambda c: b"\x1a" + struct.pack("<I", c.stmt_id), "ok"),
    (lambda c: b"\x19" + struct.pack("<I", c.stmt_id), "none"),
    (b"\x16update patients set name = ? where id = 2", "prepare"),
    (lambda c: b"\x17" + struct.pack("<I", c.stmt_id) + b"\x00\x01\x00\x00\x00\x00\x01\xfd\x00"
     b"\x03Bob", "result"),
    (b"\x04patients\0", "fields"),
    (b"\x02clinical", "ok"),
    (b"\x0e", "ok"),
    (b"\x09", "one"),
    (b"\x1b\x01\x00", "one"),
    (b"\x1b\x00\x00", "one"),
    (b"\x0c\x9f\x86\x01\x00", "ok"),  # KILL 99999: no such thread
    (b"\x03select 2", "result"),
    (b"\x1f", "ok"),
    (b"\x03select * from patients where name = 'it''s' or ssn like '%6789'", "result"),
]


def crash_seeds(out, port, settings):
    """Reproducers of the engine's bugs the targets found (fuzz/my_fuzz.h "known bugs"): a
    real login, then a crafted answer. Each fails its target while the bug is there."""
    logins = {}
    for cfg in (0, 1, 2):  # plain, masking, CLIENT_DEPRECATE_EOF
        c = Client(port)
        prefix = bytes(c.got)  # the greeting
        login = c.login(AGENT_CAPS | (DEPRECATE_EOF if cfg & 2 else 0))
        logins[cfg] = prefix + login + c.cmd(b"\x03" + settings[cfg & 1], "result")
        c.close()

    def seed(name, answer, g, cfg=0):
        after = logins[cfg]
        d = [0, 0x41, 0, 0, 0x40 + len(list(packets(after))) - 1, 0]  # greeting; the rest
        d += [g, 0x40 + len(list(packets(answer))), 0]
        write(out, "mysql_server", "crash-" + name, after + answer + bytes(reversed([cfg] + d)))

    # 1. an OK hoopd cannot read (one byte) answers COM_PING, and is passed on
    seed("ok-unreadable", pkt(b"\x00", 1), 10)
    # 2. the server's refusal in place of the greeting, one byte long, passed on
    write(out, "mysql_server", "crash-err-greeting-short",
          pkt(b"\xff", 0) + bytes(reversed([0, 0, 0x41, 0])))
    # 9. ...and one byte "\xff" in place of the login's OK: passed on
    write(out, "mysql_server", "crash-err-auth-short",
          prefix + pkt(b"\xff", 2) + bytes(reversed([0, 0, 0x41, 0, 0, 0x41, 0])))
    # ...and an ERR whose '#' promises a SQLSTATE it does not hold
    seed("err-sqlstate-short", pkt(b"\xff\x10\x04#ab", 1), 10)
    # 4. COM_SET_OPTION answered with a row: passed on as its answer
    seed("set-option-row", pkt(b"\x011", 1), 0x1f)
    # 5. an ERR among a result's column definitions (masking off): hoopd counts it as one,
    # the client ends the answer there, and the rest reaches the agent as an answer to nothing
    coldef = b"\x03def\x08clinical\x08patients\x08patients\x03ssn\x03ssn\x0c\x2d\x00" \
             b"\x2c\x00\x00\x00\xfd\x00\x00\x00\x00\x00"
    seed("err-among-columns",
         pkt(b"\x02", 1) + pkt(b"\xff\x10\x04#HY000lost", 2) + pkt(coldef, 3) +
         pkt(b"\xfe\x00\x00\x02\x00", 4) + pkt(b"\x03Ada\x0b" + MARKER, 5) +
         pkt(b"\xfe\x00\x00\x02\x00", 6), 1)
    # 6. masking on: a column declared `SSN` in a table declared `Patients` (as MariaDB
    # reports them for `select ssn from Patients`); the rule patients.ssn must still apply
    coldef = b"\x03def\x08clinical\x08Patients\x08Patients\x03ssn\x03SSN\x0c\x2d\x00" \
             b"\x2c\x00\x00\x00\xfd\x00\x00\x00\x00\x00"
    seed("ssn-declared-upper",
         pkt(b"\x01", 1) + pkt(coldef, 2) + pkt(b"\xfe\x00\x00\x22\x00", 3) +
         pkt(b"\x0b" + MARKER, 4) + pkt(b"\xfe\x00\x00\x22\x00", 5), 2, cfg=1)
    # 8. under CLIENT_DEPRECATE_EOF, COM_FIELD_LIST's answer ended by an OK that does not read
    coldef = b"\x03def\x08clinical\x08patients\x08patients\x03ssn\x03ssn\x0c\x2d\x00" \
             b"\x2c\x00\x00\x00\xfd\x00\x00\x00\x00\x00\xfb"
    seed("field-list-end-unreadable", pkt(coldef, 1) + pkt(b"\xfe\x00\x00", 2), 9, cfg=2)


def record(out, port):
    settings = settings_queries()
    crash_seeds(out, port, settings)
    for name, steps in SERVER_SCENARIOS.items():
        for masking in (0, 1):
            for deprecate in (0, 1):
                seed = server_seed(port, steps, masking, deprecate, settings)
                write(out, "mysql_server", "%s%s%s" % (name, "-mask" if masking else "",
                                                       "-deprecate-eof" if deprecate else ""),
                      seed)

    sent = client_session(port, AGENT_COMMANDS)
    write(out, "mysql_agent", "client", cut(sent) + agent_decisions(0))
    write(out, "mysql_agent", "client-mask-ansi", cut(sent) + agent_decisions(0x12))
    sent = client_session(port, AGENT_COMMANDS, deprecate=True)
    write(out, "mysql_agent", "client-deprecate-eof", cut(sent) + agent_decisions(0x01))
    # packet by packet, the server answering between
    sent = cut(sent)
    write(out, "mysql_agent", "client-stepwise", sent + agent_decisions(0, 0, per_packet(sent)))

    rec = Recorder(port)
    try:
        rec.label = "cli"
        subprocess.run(["mariadb", "-h127.0.0.1", "-P%d" % rec.port, "-uagent", "-psecret",
                        "clinical", "-e",
                        "select name, ssn from patients; show tables; "
                        "select count(*) from patients where ssn like '%6789'; "
                        "update patients set name = 'Ada' where id = 1; "
                        "delete from patients where id = 9"],
                       check=False, capture_output=True, timeout=60)
        rec.label = "pymysql"
        import pymysql
        c = pymysql.connect(host="127.0.0.1", port=rec.port, user="agent", password="secret",
                            database="clinical", autocommit=True,
                            client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
        cur = c.cursor()
        for sql in ("select name, ssn from patients where id = %s",
                    "select name from patients where name = %s"):
            cur.execute(sql, ("1' or '1'='1",))
            cur.fetchall()
        cur.execute("select 1; select 2")
        while cur.nextset():
            pass
        c.ping()
        c.select_db("clinical")
        c.close()
        rec.settle()
    finally:
        rec.close()
    for name, (agent, _) in sorted(rec.sessions.items()):
        write(out, "mysql_agent", name, cut(agent) + agent_decisions(0))


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    print("  %-12s %-28s %6d bytes" % (target, name, len(data)))


def login_packet(caps, seq=1, db=b"clinical", plugin=b"mysql_native_password"):
    b = struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23 + b"agent\0"
    b += b"\x14" + b"x" * 20 + db + b"\0" + plugin + b"\0" + bytes([len(ATTRS)]) + ATTRS
    return pkt(b, seq)


def handmade(out):
    caps = AGENT_CAPS
    q = lambda s: pkt(b"\x03" + s, 0)  # noqa: E731
    body = (q(b"select name, ssn from patients") + q(b"select 2") +
            pkt(b"\x16select ssn from patients where id = ?", 0) +
            pkt(b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x01\x03\x00\x07\x00" +
                b"\x00\x00", 0) +
            q(b"delete from patients") + pkt(b"\x0e", 0) + pkt(b"\x01", 0))
    # the agent's SSLRequest, TLS, then its login again (numbered 2)
    ssl_req = pkt(struct.pack("<IIB", caps | SSL, 1 << 24, 45) + b"\0" * 23, 1)
    tls = [(0x40 + len(ssl_req) - 1, 0, 0, 0), (0xff, 0, 0, 0)]  # the request alone first
    write(out, "mysql_agent", "hand-agent-tls",
          ssl_req + login_packet(caps | SSL, 2) + body + agent_decisions(0x20, 0, tls))
    # ...with mysql_clear_password, which hoopd refuses over a plain database leg
    write(out, "mysql_agent", "hand-agent-tls-cleartext",
          ssl_req + login_packet(caps | SSL, 2, plugin=b"mysql_clear_password") + body +
          agent_decisions(0x20, 0, tls))
    # ...with data behind the request, which hoopd refuses (it would be TLS)
    write(out, "mysql_agent", "hand-agent-tls-pipelined",
          ssl_req + login_packet(caps | SSL, 2) + body + agent_decisions(0x20))
    # an auth switch: the agent answers it (numbered 3), then commands
    write(out, "mysql_agent", "hand-auth-switch",
          login_packet(caps) + pkt(b"y" * 20, 3) + body + agent_decisions(0x08))
    # hoopd's own TLS leg to the server (prefer, the server offers it), MySQL 8.0
    write(out, "mysql_agent", "hand-upstream-tls",
          login_packet(caps) + body + agent_decisions(0x41))
    write(out, "mysql_agent", "hand-upstream-require-refused",
          login_packet(caps) + body + agent_decisions(0x80))
    # statements held (last byte 1 mod 7), decided one way and another
    held = login_packet(caps) + q(b"select 2") + q(b"select 9") + q(b"select N")
    for name, d in (("approved", 0x40), ("denied", 0x80), ("failed", 0xc0), ("cancelled", 0xe0),
                    ("killed", 0xf0), ("killed-com", 0xf1)):
        write(out, "mysql_agent", "hand-hold-" + name,
              held + agent_decisions(0, 0, per_packet(held, hold=d)))
    # a SET of sql_mode before other statements in one query, and after it, alone
    sql_mode = (login_packet(caps) +
                q(b"set sql_mode = 'NO_BACKSLASH_ESCAPES'; select 'a\\'; delete from patients; "
                  b"-- '") +
                q(b"set @@session.sql_mode = 'ANSI_QUOTES'") + q(b"select \"ssn\" from patients") +
                q(b"set sql_mode = default") + q(b"select 'x\\'; delete from patients; -- '"))
    write(out, "mysql_agent", "hand-sql-mode", sql_mode + agent_decisions(0))
    write(out, "mysql_agent", "hand-sql-mode-nbe", sql_mode + agent_decisions(0x04))
    # 3. hoopd's ERR refusing a login (a user name without its NUL) is numbered 0, not 2
    bad = struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23 + b"agent"
    write(out, "mysql_agent", "crash-login-err-seq", pkt(bad, 1) + agent_decisions(0))
    # 7. a packet larger than hoopd takes before the login, and one after an answer of five
    # packets: hoopd's ERR is numbered as that answer left it, not 1
    write(out, "mysql_agent", "crash-oversize-login", b"\x80\x01\x03\x01" + agent_decisions(0))
    big = login_packet(caps) + q(b"select 1") + b"\x01\x00\x10\x00"
    write(out, "mysql_agent", "crash-oversize-command", big + agent_decisions(0))
    # the audit trail refusing a record
    write(out, "mysql_agent", "hand-audit-full",
          login_packet(caps) + body + agent_decisions(0, 0, [(0xff, 0, 0, 0xff)]))
    # a statement of more than 64 statements, KILL of its own connection, COM_CHANGE_USER
    # a read-only cursor: opened, fetched (1, 0, all, after the last), opened again, reset,
    # fetched; a FETCH of no statement, and one pipelined behind its EXECUTE
    ex = pkt(b"\x17\x01\x00\x00\x00\x01\x01\x00\x00\x00\x00\x01\x03\x00\x07\x00\x00\x00", 0)
    fetch = lambda n, sid=1: pkt(b"\x1c" + struct.pack("<II", sid, n), 0)  # noqa: E731
    cursor = (login_packet(caps) + pkt(b"\x16select ssn from patients where id = ?", 0) + ex +
              fetch(1) + fetch(0) + fetch(0xffffffff) + fetch(1) + ex + pkt(b"\x1a\x01\x00\x00\x00", 0) +
              fetch(1) + fetch(1, 9) + ex + fetch(2) + q(b"select 2") + fetch(5) + ex + fetch(1))
    write(out, "mysql_agent", "hand-cursor", cursor + agent_decisions(0))
    write(out, "mysql_agent", "hand-cursor-mask", cursor + agent_decisions(0x10))
    write(out, "mysql_agent", "hand-cursor-stepwise",
          cursor + agent_decisions(0x10, 0, per_packet(cursor)))
    write(out, "mysql_agent", "hand-cursor-deprecate-eof",
          login_packet(caps | DEPRECATE_EOF) + cursor[len(login_packet(caps)):] +
          agent_decisions(0x10))
    write(out, "mysql_agent", "hand-many",
          login_packet(caps) + q(b"select 1;" * 70) + pkt(b"\x0c\x07\x00\x00\x00", 0) +
          q(b"kill query 7") + pkt(b"\x11agent\0\0clinical\0", 0) + pkt(b"\x12", 0) +
          pkt(b"\x08", 0) + agent_decisions(0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--handmade-only", action="store_true",
                    help="rewrite the hand-made seeds only, keep the recordings")
    args = ap.parse_args()
    if not args.handmade_only:
        for target in ("mysql_agent", "mysql_server"):
            shutil.rmtree(os.path.join(args.out, target), ignore_errors=True)
        cleanup = Cleanup()
        try:
            port = free_port()
            m = MariaDB(cleanup, port=port)
            m.sql("create database clinical")
            m.sql("create table clinical.patients (id int primary key, name varchar(64), "
                  "ssn varchar(11))")
            m.sql("insert into clinical.patients values (1, 'Ada', %s), (2, 'Bob', %s)",
                  (MARKER.decode(), MARKER.decode()))
            m.sql("create user 'agent'@'127.0.0.1' identified via mysql_native_password "
                  "using password('secret')")
            m.sql("grant all on clinical.* to 'agent'@'127.0.0.1'")
            record(args.out, port)
        finally:
            cleanup.run()
    handmade(args.out)


if __name__ == "__main__":
    main()
