#!/usr/bin/python3
"""End-to-end tests of hoop against a hostile agent (issue 14, docs/threat-model.md): an agent that
is root in its own cgroup, speaks raw protocol bytes in any order, and tries to get PHI out, run a
statement no rule judged, change its identity, or take hoopd down for the other agents.

Real PostgreSQL 15 with a small clinical schema, hoopd with the shipped HIPAA policy
(policies/hipaa-agents.yaml, its ports pointed at the test server), agents in an attached cgroup
using a raw-protocol client (RawPg below) and real clients (psql, psycopg). Each test names the
numbered point of issue 14 it covers and fails on the code before the fix.

Usage (as root): tests/e2e/test_hostile.py [NAME-SUBSTRING ...]
"""
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from hooptest import (attach_agents, teardown, check_clean_stop, Cleanup, Hoopd, Postgres, check,  # noqa: E402
                      log, run_tests, wait_for)

PY = "/usr/bin/python3"
OWNER = "mallory@example.org"

# The rows every masking test looks for: none of these may reach an agent in clear.
PATIENTS = [
    # id, first, last, ssn, mrn, email, phone, dob, address
    (1, "Ada", "Okafor", "123-45-6789", "MRN-00000001", "ada.okafor@example.net", "(415) 555-0101",
     "1980-02-03", "12 Elm St"),
    (2, "Bjorn", "Lindqvist", "234-56-7890", "MRN-00000002", "bjorn@example.net", "(415) 555-0102",
     "1975-06-07", "9 Oak Ave"),
    (3, "Chidi", "Anagonye", "345-67-8901", "MRN-00000003", "chidi@example.net", "(415) 555-0103",
     "1990-10-11", "3 Pine Rd"),
]
SECRETS = [s for p in PATIENTS for s in (p[2], p[3], p[4].replace("-", ""), p[1] + p[2])] + \
    [p[2] for p in PATIENTS] + [p[3].replace("-", "") for p in PATIENTS] + [p[8] for p in PATIENTS]

SCHEMA = """
create table patients (id int primary key, first_name text, last_name text, ssn text, mrn text,
                       email text, phone text, dob date, address text, notes text);
create table encounters (id int primary key, patient_id int, notes text);
""" + "".join(
    "insert into patients values (%d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', '%s', 'note %d');\n"
    % (p + (p[0],)) for p in PATIENTS) + \
    "insert into encounters values (1, 1, 'seen'), (2, 2, 'seen');\n"


class Ctx:
    pass


def shipped_policy(ctx, upstream_tls=None, extra=""):
    """policies/hipaa-agents.yaml as shipped, with its target pointed at the test server (and the
    test's CA where the database leg verifies), approvers set to the test's uid group, and the
    catalog read as the test cluster's superuser."""
    with open(os.path.join(ROOT, "policies", "hipaa-agents.yaml")) as f:
        text = f.read()
    text = re.sub(r"ports: \[5432\]", "ports: [%d]" % ctx.pg.port, text, count=1)
    if upstream_tls:
        text = re.sub(r"upstream_tls: [a-z-]+", "upstream_tls: %s" % upstream_tls, text, count=1)
    if "ca_file:" not in text:
        text = re.sub(r"(upstream_tls: [a-z-]+.*\n)",
                      "\\1    ca_file: %s\n    tls_server_name: 127.0.0.1\n" % ctx.pg.ca, text,
                      count=1)
    text = text.replace('approvers: ["group:hoop-approvers"]', 'approvers: ["root"]')
    text = re.sub(r"catalog:\n  refresh: 60s\n",
                  "catalog:\n  refresh: 60s\n  user: postgres\n  password_file: %s\n"
                  % ctx.catpw, text, count=1)
    return text + extra


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.tmp = tempfile.mkdtemp(prefix="hoop-hostile-")
    os.chmod(ctx.tmp, 0o755)
    ctx.cleanup.push(shutil.rmtree, ctx.tmp, True)
    ctx.pg = Postgres(ctx.cleanup, ssl=True)
    ctx.pg.psql_direct("create database clinical")
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                    "-d", "clinical", "-qX", "-v", "ON_ERROR_STOP=1", "-c", SCHEMA],
                   check=True, capture_output=True)
    ctx.catpw = os.path.join(ctx.tmp, "catalog.password")
    with open(ctx.catpw, "w") as f:
        f.write("unused-with-trust\n")
    ctx.hd = Hoopd(ctx.cleanup, shipped_policy(ctx))
    ctx.hoopds = [ctx.hd]
    ctx.hd.start()
    ctx.cg = attach_agents(ctx, OWNER)
    return ctx


def direct(ctx, sql, db="clinical"):
    """psql straight to the database as its superuser (not through hoopd)."""
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                           "-d", db, "-tAX", "-c", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def dsn(ctx, db="clinical", user="postgres"):
    return "host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable" % (ctx.pg.port, db, user)


def agent_psql(ctx, sql, db="clinical", timeout=60):
    """psql run as the agent (inside the attached cgroup): returns (rc, stdout, stderr)."""
    r = ctx.cg.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", dsn(ctx, db), "-c", sql],
                   timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def leaked(data):
    """The PHI values of PATIENTS found in bytes or text an agent received."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return sorted({s for s in SECRETS if s in data})


# ---- a raw PostgreSQL protocol client, run inside the agent cgroup ----------------------------
#
# RAW_CLIENT is a small program run by the agent: it connects, logs in with a startup packet,
# writes the frames it is given (hex on argv) in one go, reads until the server has answered
# `--ready N` ReadyForQuery messages or closes or `--timeout` passes, and prints every message it
# got as one line "<type> <hex body>". Tests build frames with the helpers below.

RAW_CLIENT = r'''
import binascii, socket, struct, sys, time
host, port, ready_want, timeout, startup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
frames = b"".join(binascii.unhexlify(a) for a in sys.argv[6:])
s = socket.create_connection((host, port), timeout=timeout)
s.sendall(binascii.unhexlify(startup))
buf = b""; got = 0; logged_in = False; end = time.time() + timeout
def msgs():
    global buf
    while len(buf) >= 5:
        n = struct.unpack("!i", buf[1:5])[0]
        if len(buf) < 1 + n: return
        t, body, buf = buf[:1], buf[5:1 + n], buf[1 + n:]
        yield t, body
try:
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        d = s.recv(65536)
        if not d: print("EOF"); break
        buf += d
        for t, body in msgs():
            print(t.decode("latin-1"), binascii.hexlify(body).decode(), flush=True)
            if t == b"Z":
                if not logged_in:
                    logged_in = True
                    if frames: s.sendall(frames)
                    if ready_want == 0: raise SystemExit(0)
                else:
                    got += 1
                    if got >= ready_want: raise SystemExit(0)
except socket.timeout:
    print("TIMEOUT")
'''


def pmsg(t, body):
    return t + struct.pack("!i", len(body) + 4) + body


def startup_packet(user="postgres", db="clinical", **params):
    kv = {"user": user, "database": db}
    kv.update(params)
    body = struct.pack("!i", 196608) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in kv.items()) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def Q(sql):
    return pmsg(b"Q", sql.encode() + b"\0")


def P(name, sql, ntypes=0):
    return pmsg(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0))


def B(portal="", stmt="", fmt=0):
    return pmsg(b"B", portal.encode() + b"\0" + stmt.encode() + b"\0" +
                struct.pack("!hhhh", 0, 0, 1, fmt))


def D(kind, name=""):
    return pmsg(b"D", kind + name.encode() + b"\0")


def E(portal="", n=0):
    return pmsg(b"E", portal.encode() + b"\0" + struct.pack("!i", n))


def C(kind, name=""):
    return pmsg(b"C", kind + name.encode() + b"\0")


def S():
    return pmsg(b"S", b"")


def H():
    return pmsg(b"H", b"")


def raw(ctx, frames, ready=1, timeout=20, startup=None):
    """Log in as the agent with a raw client, send frames, read until `ready` more ReadyForQuery.
    Returns the list of (type, body bytes) the agent received after login, and everything as
    bytes (for leak scans). 'EOF' and 'TIMEOUT' appear as types of their own."""
    path = os.path.join(ctx.tmp, "rawpg.py")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(RAW_CLIENT)
    argv = [PY, path, "127.0.0.1", str(ctx.pg.port), str(ready), str(timeout),
            (startup or startup_packet()).hex()] + [fr.hex() for fr in frames]
    r = ctx.cg.run(argv, timeout=timeout + 30)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(" ", 1)
        out.append((parts[0], bytes.fromhex(parts[1]) if len(parts) > 1 else b""))
    return out


def error_fields(body):
    """An ErrorResponse or NoticeResponse body as a dict of its one-letter fields."""
    f = {}
    for part in body.split(b"\0"):
        if part:
            f[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return f


def data_rows(msgs):
    """DataRow values as lists of str (None for NULL)."""
    rows = []
    for t, body in msgs:
        if t != "D":
            continue
        n = struct.unpack("!h", body[:2])[0]
        at, row = 2, []
        for _ in range(n):
            ln = struct.unpack("!i", body[at:at + 4])[0]
            at += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(body[at:at + ln].decode("utf-8", "replace"))
                at += ln
        rows.append(row)
    return rows


def all_bytes(msgs):
    return b"".join(body for _, body in msgs)


# ---- 1, 2: the response queue and named definitions follow the server ------------------------


# ---- 3, 6: errors and notices; SQL in strings and startup parameters --------------------------


# ---- 4, 5, 9: side channels, DDL laundering, detectors --------------------------------------


# ---- 7, 8, 16, 17: the database leg, the catalog, identity, fail-open edges -------------------


# ---- 10, 11, 12: one agent must not hurt the others -------------------------------------------

def agent_script(ctx, name, code):
    """A Python program for the agent to run (inside the attached cgroup); returns its path."""
    path = os.path.join(ctx.tmp, name)
    with open(path, "w") as f:
        f.write(code)
    return path


def hoopd_cpu_seconds(hd):
    with open("/proc/%d/stat" % hd.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hoopd_rss_kib(hd):
    with open("/proc/%d/status" % hd.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_sessions(hd):
    return [c for c in hd.status().get("connections", [])]


def wait_sessions_gone(ctx, before, timeout=15):
    """Wait until hoopd holds no more sessions than `before`; returns the count it ended at."""
    end = time.time() + timeout
    n = len(open_sessions(ctx.hd))
    while time.time() < end and n > before:
        time.sleep(0.25)
        n = len(open_sessions(ctx.hd))
    return n


def idle_cpu(hd, seconds=2.0):
    """hoopd's CPU use (0..1 of a core) over `seconds` of wall time."""
    c0, t0 = hoopd_cpu_seconds(hd), time.time()
    time.sleep(seconds)
    return (hoopd_cpu_seconds(hd) - c0) / (time.time() - t0)


def timed_query(ctx, sql="select 1", timeout=60):
    """One statement run by the agent with psql; returns (seconds, rc, stdout)."""
    t0 = time.time()
    rc, out, err = agent_psql(ctx, sql, timeout=timeout)
    return time.time() - t0, rc, out + err


HANGUP_AGENT = r'''
import socket, struct, sys, time
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
startup = bytes.fromhex(sys.argv[4])
s = socket.create_connection((host, port), timeout=20)
if mode == "startup":
    # half a startup packet: the length word promises more than ever comes
    s.sendall(struct.pack("!i", 9000) + b"\0\3\0\0user\0" + b"x" * 3000)
elif mode == "pipelined":
    # the startup packet and part of a message at once, and gone before any answer: what
    # hoopd then writes to the closed socket draws a reset
    s.sendall(startup + b"p" + struct.pack("!i", 12000) + b"x" * 6000)
    s.close()
    print("done")
    sys.exit(0)
else:
    s.sendall(startup)
    buf = b""
    while b"Z\0\0\0\5" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("no login")
        buf += d
    # a Query whose length word says 4 MiB, and 1 MiB of it
    s.sendall(b"Q" + struct.pack("!i", 4 << 20) + b"select '" + b"x" * (1 << 20))
time.sleep(0.5)
# hang up with the message unfinished; SO_LINGER 0 makes it a reset, as a killed agent's may be
if mode == "reset":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("done")
'''


def test_agent_hanging_up_mid_message_leaves_no_session_behind(ctx):
    """Issue 14 point 10: an agent that sends a startup packet (or half of one), then part of a
    large message, then hangs up (FIN or reset) leaves no session in hoopd, and hoopd's CPU is
    idle afterwards (it used to keep the session and its buffer forever, spinning at 100%)."""
    path = agent_script(ctx, "hangup.py", HANGUP_AGENT)
    before = len(open_sessions(ctx.hd))
    for mode in ("after-login", "reset", "startup", "pipelined"):
        r = ctx.cg.run([PY, path, "127.0.0.1", str(ctx.pg.port), mode, startup_packet().hex()],
                       timeout=60)
        check(r.returncode == 0 and "done" in r.stdout, "%s agent: %s %s" % (mode, r.stdout,
                                                                            r.stderr))
        left = wait_sessions_gone(ctx, before)
        check(left <= before, "%s: hoopd still holds %d session(s) of an agent that hung up: %r"
              % (mode, left - before, open_sessions(ctx.hd)))
        cpu = idle_cpu(ctx.hd)
        check(cpu < 0.3, "%s: hoopd uses %.0f%% of a core with no agent connected"
              % (mode, cpu * 100))
    t, rc, out = timed_query(ctx)
    check(rc == 0 and t < 10, "a later query: rc %d after %.1fs: %s" % (rc, t, out))


STALL_AGENT = r'''
import socket, struct, sys, threading, time
host, port, kind, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
startup = bytes.fromhex(sys.argv[5])

def login():
    s = socket.create_connection((host, port), timeout=60)
    s.sendall(startup)
    read_to_ready(s)
    return s

pending = {}

def read_to_ready(s):
    buf, msgs = pending.pop(s.fileno(), b""), []
    while True:
        while len(buf) >= 5:
            n = struct.unpack("!i", buf[1:5])[0]
            if len(buf) < 1 + n:
                break
            t, body, buf = buf[:1].decode("latin-1"), buf[5:1 + n], buf[1 + n:]
            msgs.append((t, body))
            if t == "Z":
                pending[s.fileno()] = buf
                return msgs
        d = s.recv(65536)
        if not d:
            msgs.append(("EOF", b""))
            return msgs
        buf += d

def q(s, sql):
    b = sql + b"\0"
    s.sendall(b"Q" + struct.pack("!i", len(b) + 4) + b)
    return read_to_ready(s)

kind_ = kind
kind = kind.replace("pipelined-", "")
if kind == "tokens":      # a flat list of many small tokens
    big = b"select 1 where 1 in (" + b"1," * ((size - 24) // 2) + b"1)"
elif kind == "nested":    # one long chain of binary operators: a tree as deep as it is long
    big = b"select " + b"a.b+c*d-" * ((size - 9) // 8) + b"1"
else:
    big = b"select '" + b"x" * (size - 9) + b"'"
kind = kind_
small = login()
worst, done, answer = [0.0], [False], []
def probe():
    while not done[0]:
        t0 = time.time()
        q(small, b"select 1")
        worst[0] = max(worst[0], time.time() - t0)
        time.sleep(0.02)
th = threading.Thread(target=probe)
th.start()
time.sleep(0.3)
t0 = time.time()
try:
    a = login()
    if kind.startswith("pipelined-"):
        # many costly statements in one write: hoopd has them all buffered at once
        b = big + b"\0"
        a.sendall((b"Q" + struct.pack("!i", len(b) + 4) + b) * 40)
        for _ in range(40):
            msgs = read_to_ready(a)
    else:
        for _ in range(3):
            msgs = q(a, big)
    answer = [m for m in msgs if m[0] in ("E", "C", "EOF")]
except OSError as e:
    answer = [("OSERROR", str(e).encode())]
big_s = time.time() - t0
time.sleep(0.3)
done[0] = True
th.join(30)
print("worst %.3f big %.3f" % (worst[0], big_s))
for t, body in answer[:2]:
    print(t, body.hex())
'''


def stall_probe(ctx, kind, size):
    """An agent sends a `kind` statement of `size` bytes three times while another session of
    the same cgroup runs `select 1` in a loop. Returns (worst small-query latency, the big
    statement's answers as (type, body))."""
    path = agent_script(ctx, "stall.py", STALL_AGENT)
    r = ctx.cg.run([PY, path, "127.0.0.1", str(ctx.pg.port), kind, str(size),
                    startup_packet().hex()], timeout=300)
    lines = r.stdout.splitlines()
    check(lines and lines[0].startswith("worst"), "stall agent: %s %s" % (r.stdout, r.stderr))
    worst = float(lines[0].split()[1])
    log("  %s %d bytes: worst small-query latency %.3fs, %s" % (kind, size, worst, lines[0]))
    answers = []
    for line in lines[1:]:
        t, _, h = line.partition(" ")
        answers.append((t, bytes.fromhex(h)))
    return worst, answers


def test_costly_statements_do_not_stall_other_agents(ctx):
    """Issue 14 point 10: statements that are costly to parse (a megabyte of small tokens, a
    100 kB chain of operators libpg_query recurses into, 40 pipelined statements of 30,000
    tokens each) do not stall another agent's queries: its `select 1` is answered within a
    couple of seconds throughout (it used to wait 4 s and more, or find hoopd crashed); the
    first two are refused with 54000 naming the limit."""
    for kind, size, refused in (("tokens", 1000000, "limits.statement_tokens"),
                                ("nested", 100000, "limits.statement_depth"),
                                ("pipelined-tokens", 30000, None)):
        worst, answers = stall_probe(ctx, kind, size)
        check(ctx.hd.proc.poll() is None, "hoopd died on a %s statement" % kind)
        check(worst < 2.0, "another agent's query waited %.1fs while one agent sent %s "
              "statements" % (worst, kind))
        if refused:
            f = error_fields(answers[0][1]) if answers and answers[0][0] == "E" else {}
            check(f.get("C") == "54000" and refused in f.get("M", ""),
                  "%s statement: %r" % (kind, answers))


def test_oversized_statement_is_refused_and_recorded_by_hash(ctx):
    """Issue 14 point 10: a statement over limits.statement_bytes (1 MiB by default) is refused
    with 54000 naming the limit, by simple Query and by Parse, whether hoopd frames it whole or
    reads past it; the session goes on; its audit record keeps a prefix of the text, its length
    and its SHA-256, not the text."""
    texts = {
        "Q": "select '%s' as big_q" % ("q" * (2 << 20)),
        "P": "select '%s' as big_p" % ("p" * ((1 << 20) + 1000)),
        "P2": "select '%s' as big_p2" % ("r" * (3 << 20)),
    }
    msgs = raw_big(ctx, [Q(texts["Q"]), Q("select 41 + 1"),
                     P("bigp", texts["P"]), B(stmt="bigp"), E(), S(),
                     P("bigp2", texts["P2"]), S(), Q("select 43")], ready=5, timeout=60)
    errs = [error_fields(b) for t, b in msgs if t == "E"]
    check(len(errs) == 3 and all(e.get("C") == "54000" and "limits.statement_bytes" in e["M"]
                                 for e in errs), "errors: %r" % errs)
    rows = data_rows(msgs)
    check(["42"] in rows and ["43"] in rows, "the session did not go on: %r" % msgs[-6:])
    recs = [e for e in ctx.hd.events() if e.get("kind") == "statement" and
            e.get("reason") == "limits.statement_bytes"]
    for name, text in texts.items():
        mark = text[:30]
        rec = [r for r in recs if r.get("text", "").startswith(mark)]
        check(rec, "no record of the refused %s statement" % name)
        r = rec[-1]
        check(len(r["text"]) <= 1024 and r.get("text_truncated") is True and
              r.get("text_bytes") == len(text) and
              r.get("text_sha256") == hashlib.sha256(text.encode()).hexdigest(),
              "record of %s: %r" % (name, {k: (v if k != "text" else len(v))
                                           for k, v in r.items()}))


def raw_big(ctx, frames, ready=1, timeout=60):
    """raw() for frames too large for a command line: they go through a file."""
    path = os.path.join(ctx.tmp, "rawpg_file.py")
    with open(path, "w") as f:
        f.write(RAW_CLIENT.replace(
            'frames = b"".join(binascii.unhexlify(a) for a in sys.argv[6:])',
            'frames = open(sys.argv[6], "rb").read()'))
    fpath = os.path.join(ctx.tmp, "frames.bin")
    with open(fpath, "wb") as f:
        f.write(b"".join(frames))
    r = ctx.cg.run([PY, path, "127.0.0.1", str(ctx.pg.port), str(ready), str(timeout),
                    startup_packet().hex(), fpath], timeout=timeout + 30)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(" ", 1)
        out.append((parts[0], bytes.fromhex(parts[1]) if len(parts) > 1 else b""))
    return out


FLOOD_AGENT = r'''
import socket, struct, sys, time
host, port, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
startup = bytes.fromhex(sys.argv[5])
conns = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=30)
    s.setblocking(False)
    # a startup packet and, before any answer, a password message that says 8 MiB
    conns.append([s, startup + b"p" + struct.pack("!i", 8 << 20) + b"x" * (mib << 20)])
end = time.time() + 20
while time.time() < end and any(c[1] for c in conns):
    for c in conns:
        if c[1]:
            try:
                c[1] = c[1][c[0].send(c[1][:65536]):]
            except BlockingIOError:
                pass
            except OSError:
                c[1] = b""   # hoopd closed it: what we wanted
    time.sleep(0.005)
print("sent", flush=True)
time.sleep(float(sys.argv[6]))
'''


def test_flood_before_login_keeps_hoopd_small(ctx):
    """Issue 14 point 10: 40 connections that each send a startup packet and then 3 MiB of a
    message announced as 8 MiB, before any login, leave hoopd's memory bounded (it used to
    buffer up to 64 MiB per connection) while another agent's query is answered."""
    path = agent_script(ctx, "flood.py", FLOOD_AGENT)
    rss0 = hoopd_rss_kib(ctx.hd)
    p = ctx.cg.popen([PY, path, "127.0.0.1", str(ctx.pg.port), "40", "3",
                      startup_packet().hex(), "6"], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        check(line.startswith("sent"), "flood agent: %r" % line)
        grown = (hoopd_rss_kib(ctx.hd) - rss0) / 1024.0
        t, rc, out = timed_query(ctx)
        log("  flood of 40 x 3 MiB: hoopd RSS grew %.1f MiB; a query took %.2fs" % (grown, t))
        check(rc == 0 and t < 10, "query during the flood: rc %d after %.1fs: %s" % (rc, t, out))
        check(grown < 40, "hoopd's RSS grew %.0f MiB under the flood" % grown)
    finally:
        p.kill()
        p.wait()


HOLD_AGENT = r'''
import socket, sys, time
host, port, n, startup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
conns = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=20)
    s.sendall(startup)
    buf = b""
    while b"Z\0\0\0\5" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("connection %d closed before login" % i)
        buf += d
    conns.append(s)
print("held", n, flush=True)
time.sleep(float(sys.argv[5]))
'''


def test_connections_beyond_the_cgroup_cap_are_refused(ctx):
    """Issue 14 point 10: with limits.connections_per_cgroup: 5, an agent cgroup holding five
    sessions has its sixth refused with FATAL 53300 naming the limit, recorded in the audit
    trail, while an agent of another attached cgroup still connects and queries."""
    from hooptest import Cgroup
    hd = Hoopd(ctx.cleanup, shipped_policy(ctx, extra="limits:\n  connections_per_cgroup: 5\n"),
               tag="cap")
    hd.start()
    ctx.hoopds.append(hd)
    try:
        cga, cgb = Cgroup(ctx.cleanup, "cap-a"), Cgroup(ctx.cleanup, "cap-b")
        for cg in (cga, cgb):
            hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        path = agent_script(ctx, "hold.py", HOLD_AGENT)
        p = cga.popen([PY, path, "127.0.0.1", str(ctx.pg.port), "5", startup_packet().hex(),
                       "30"], stdout=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            check(line.startswith("held 5"), "holding agent: %r" % line)
            r = cga.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select 1"], timeout=30)
            check(r.returncode != 0 and
                  "too many connections" in r.stderr and "connections_per_cgroup" in r.stderr,
                  "sixth connection of the cgroup: rc %d %s %s" % (r.returncode, r.stdout,
                                                                   r.stderr))
            r = cgb.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select 7"], timeout=30)
            check(r.returncode == 0 and r.stdout.strip() == "7",
                  "the other cgroup's agent: rc %d %s %s" % (r.returncode, r.stdout, r.stderr))
            st = hd.status()
            check(st["limits"]["connections_refused_cgroup_limit"] >= 1, "status: %r"
                  % st["limits"])
            refused = [e for e in hd.events() if e.get("kind") == "connection_refused"]
            check(refused and refused[0]["sqlstate"] == "53300" and
                  refused[0]["agent"]["cgroup"].endswith("cap-a"), "records: %r" % refused)
        finally:
            p.kill()
            p.wait()
        for cg in (cga, cgb):
            hd.ctl("detach", "--cgroup", cg.path)
    finally:
        hd.stop()
        ctx.hoopds.remove(hd)
        bad = hd.sanitizer_reports()
        check(not bad, "hoopd reported:\n" + "\n".join(bad[:20]))


BUDGET_AGENT = r'''
import socket, struct, sys, time
host, port, n, mib, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[6])
startup = bytes.fromhex(sys.argv[5])
conns = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=20)
    s.sendall(startup)
    buf = b""
    while b"Z\0\0\0\5" not in buf:
        buf += s.recv(65536)
    s.setblocking(False)
    # a Bind that says 32 MiB, of which mib MiB come
    conns.append([s, b"B" + struct.pack("!i", 32 << 20) + b"\0\0" + b"x" * (mib << 20)])
end = time.time() + hold
while time.time() < end:
    for c in conns:
        if c[1]:
            try:
                c[1] = c[1][c[0].send(c[1][:65536]):]
            except BlockingIOError:
                pass
    time.sleep(0.005)
print("sent", sum(len(c[1]) for c in conns), flush=True)
time.sleep(30)
'''


UNREAD_RESULTS = r'''
import socket, struct, sys, time
host, port, n, startup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
conns = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(startup)
    buf = b""
    while b"Z\0\0\0\5" not in buf:
        buf += s.recv(65536)
    q = b"select repeat('x', 6000000)\0"
    s.sendall(b"Q" + struct.pack("!i", len(q) + 4) + q)
    conns.append(s)
print("asked", flush=True)
time.sleep(60)
'''


def test_unfinished_messages_of_one_cgroup_stay_within_its_budget(ctx):
    """Issue 14 point 10: with limits.cgroup_buffer_bytes: 4MiB, eight sessions of one cgroup
    pushing 8 MiB each of messages announced as 32 MiB make hoopd hold about the budget plus one
    message (not 64 MiB), and so do eight sessions that ask for a 6 MB row each and never read
    it (not 48 MB); an agent of another cgroup still queries."""
    from hooptest import Cgroup
    hd = Hoopd(ctx.cleanup, shipped_policy(ctx, extra="limits:\n  cgroup_buffer_bytes: 4MiB\n"),
               tag="budget")
    hd.start()
    ctx.hoopds.append(hd)
    try:
        cga, cgb = Cgroup(ctx.cleanup, "budget-a"), Cgroup(ctx.cleanup, "budget-b")
        for cg in (cga, cgb):
            hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        path = agent_script(ctx, "budget.py", BUDGET_AGENT)
        p = cga.popen([PY, path, "127.0.0.1", str(ctx.pg.port), "8", "8", startup_packet().hex(),
                       "6"], stdout=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            check(line.startswith("sent"), "budget agent: %r" % line)
            lim = hd.status()["limits"]
            held = max([c["bytes_buffered"] for c in lim["cgroups"]] or [0])
            log("  8 x 8 MiB from one cgroup (budget 4 MiB): %.1f MiB buffered, %s unsent"
                % (held / 1048576.0, line.split()[1]))
            check(held <= (4 + 8 + 1) << 20, "one cgroup holds %.1f MiB" % (held / 1048576.0))
            r = cgb.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select 5"], timeout=30)
            check(r.returncode == 0 and r.stdout.strip() == "5",
                  "the other cgroup's agent: rc %d %s %s" % (r.returncode, r.stdout, r.stderr))
        finally:
            p.kill()
            p.wait()
        wait_for(lambda: hd.status()["limits"]["bytes_buffered"] == 0, 10,
                 "the budget to be given back")
        # The other way: eight sessions ask for a 6 MB row each and never read it.
        p = cga.popen([PY, "-c", UNREAD_RESULTS, "127.0.0.1", str(ctx.pg.port), "8",
                       startup_packet().hex()], stdout=subprocess.PIPE, text=True)
        try:
            check(p.stdout.readline().startswith("asked"), "result agent")
            time.sleep(3)
            held = max([c["bytes_buffered"] for c in hd.status()["limits"]["cgroups"]] or [0])
            log("  8 unread 6 MB rows in one cgroup (budget 4 MiB): %.1f MiB held"
                % (held / 1048576.0))
            check(held <= (4 + 6 + 2) << 20, "one cgroup holds %.1f MiB" % (held / 1048576.0))
            r = cgb.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select 6"], timeout=30)
            check(r.returncode == 0 and r.stdout.strip() == "6",
                  "the other cgroup's agent: rc %d %s %s" % (r.returncode, r.stdout, r.stderr))
        finally:
            p.kill()
            p.wait()
        wait_for(lambda: hd.status()["limits"]["bytes_buffered"] == 0, 10,
                 "the budget to be given back")
        for cg in (cga, cgb):
            hd.ctl("detach", "--cgroup", cg.path)
    finally:
        hd.stop()
        ctx.hoopds.remove(hd)
        bad = hd.sanitizer_reports()
        check(not bad, "hoopd reported:\n" + "\n".join(bad[:20]))

def test_idle_metrics_connections_do_not_delay_agents(ctx):
    """Issue 14 point 11: connections to the metrics port that send nothing (40 held open, more
    opened all the while) do not delay an agent's queries (each used to stall the event loop
    for 200 ms, one after another); the endpoint still answers, and closes what stays silent.
    A non-loopback --metrics address is refused without --metrics-public."""
    import threading
    held, stop = [], [False]

    def opener():
        while not stop[0]:
            try:
                c = socket.create_connection(("127.0.0.1", ctx.hd.metrics_port), timeout=2)
                held.append(c)
            except OSError:
                pass
            time.sleep(0.02)
    for _ in range(40):
        held.append(socket.create_connection(("127.0.0.1", ctx.hd.metrics_port), timeout=2))
    th = threading.Thread(target=opener)
    th.start()
    try:
        times = []
        for _ in range(5):
            t, rc, out = timed_query(ctx)
            check(rc == 0, "query: %s" % out)
            times.append(t)
        log("  agent queries with idle metrics connections: %s" %
            ", ".join("%.2fs" % t for t in times))
        check(max(times) < 2.0, "an agent's query took %.1fs while metrics connections idled"
              % max(times))
    finally:
        stop[0] = True
        th.join()
    for c in held:
        c.close()
    m = ctx.hd.metrics()
    check("hoop_connections_accepted_total" in m and
          "hoop_metrics_connections_refused_total" in m, "metrics:\n" + m[:400])
    # A request that never ends is closed (within the 5 s deadline plus a tick).
    c = socket.create_connection(("127.0.0.1", ctx.hd.metrics_port), timeout=15)
    c.sendall(b"GET /metrics HTTP/1.0\r\n")
    t0 = time.time()
    try:
        got = c.recv(100)
    except OSError:
        got = b""
    c.close()
    check(got == b"" and time.time() - t0 < 10, "a silent metrics client was kept %.1fs"
          % (time.time() - t0))
    hd = Hoopd(ctx.cleanup, shipped_policy(ctx), tag="metrics")
    rc = hd.start("--metrics", "0.0.0.0:%d" % hd.metrics_port, expect_fail=True)
    check(rc not in (0, None) and "--metrics-public" in hd.log_text(),
          "hoopd with --metrics 0.0.0.0 and no --metrics-public: rc %r\n%s"
          % (rc, hd.log_text()[-500:]))


def test_shipped_deployments_serve_metrics_on_loopback_only(ctx):
    """Issue 14 point 11: the DaemonSet and the systemd unit do not serve the metrics endpoint
    beyond loopback (the DaemonSet used to serve it on 0.0.0.0:9477 to every pod)."""
    import yaml
    args = []
    with open(os.path.join(ROOT, "deploy", "daemonset.yaml")) as f:
        for d in yaml.safe_load_all(f):
            if d and d.get("kind") == "DaemonSet":
                for c in d["spec"]["template"]["spec"]["containers"]:
                    if c["name"] == "hoopd":
                        args = c.get("args", [])
    with open(os.path.join(ROOT, "deploy", "hoopd.service")) as f:
        unit = [l.split("=", 1)[1].split() for l in f if l.startswith("ExecStart=")][0]
    for where, argv in (("daemonset", args), ("hoopd.service", unit)):
        check("--metrics-public" not in argv, "%s serves metrics publicly: %r" % (where, argv))
        if "--metrics" in argv:
            addr = argv[argv.index("--metrics") + 1]
            check(":" not in addr or addr.startswith("127."), "%s: --metrics %s" % (where, addr))


SNI_AGENT = r'''
import json, socket, ssl, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
out = []
for n in sys.argv[3:]:
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(struct.pack("!ii", 8, 80877103))   # SSLRequest
    if s.recv(1) != b"S":
        sys.exit("no TLS offered")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        t = ctx.wrap_socket(s, server_hostname=n)
        out.append([n, "ok", t.getpeercert(binary_form=True).hex()])
        t.close()
    except (OSError, ssl.SSLError) as e:
        out.append([n, "refused", str(e)])
        s.close()
print(json.dumps(out))
'''


def cert_names(der_hex):
    """(subjectAltName text, serial) of a DER certificate."""
    r = subprocess.run(["openssl", "x509", "-inform", "der", "-noout", "-ext", "subjectAltName",
                        "-serial"], input=bytes.fromhex(der_hex), capture_output=True)
    text = r.stdout.decode()
    serial = re.search(r"serial=(\w+)", text)
    return text, serial.group(1) if serial else None


def test_tls_server_names_are_bounded_and_checked(ctx):
    """Issue 14 point 12: an agent asking for 100 distinct TLS server names gets a certificate
    naming each, while hoopd keeps at most 64 of them (it used to keep one key pair per name for
    ever); names that differ only in case share one certificate; a server name that is not a
    host name (a comma and "IP:" would add a subjectAltName) ends the handshake."""
    import json
    path = agent_script(ctx, "sni.py", SNI_AGENT)
    names = ["db%03d.agents.example" % i for i in range(100)] + \
        ["Db099.Agents.Example", "a,IP:10.0.0.1", "x y", "a=b", "-lead.example", "under_score.example"]
    r = ctx.cg.run([PY, path, "127.0.0.1", str(ctx.pg.port)] + names, timeout=120)
    check(r.returncode == 0, "sni agent: %s %s" % (r.stdout, r.stderr))
    res = {n: (st, v) for n, st, v in json.loads(r.stdout)}
    for n in names[:100]:
        st, v = res[n]
        check(st == "ok" and "DNS:" + n in cert_names(v)[0], "%s: %s %s" % (n, st, v[:200]))
    check(cert_names(res["Db099.Agents.Example"][1])[1] == cert_names(res["db099.agents.example"][1])[1],
          "a name differing only in case got a certificate of its own")
    for bad in names[101:]:
        st, v = res[bad]
        check(st == "refused", "server name %r: %s %s" % (bad, st, cert_names(v)[0] if st == "ok"
                                                          else v))
    leaves = ctx.hd.status().get("tls_leaf_certificates", {})
    check(leaves.get("kept", 999) <= 64 and leaves.get("server_names_refused", 0) >= 5,
          "leaf cache: %r" % leaves)
    t, rc, out = timed_query(ctx)
    check(rc == 0, "a query after the names: %s" % out)

# ---- 13, 14, 15, 18: the operator's side -----------------------------------------------------


# ---- the end ----------------------------------------------------------------------------------

def test_baseline_masks_through_the_shipped_policy(ctx):
    """The suite's own premise: a plain read of PHI through hoopd comes back masked, and the same
    read directly is raw (so every leak check below can fail)."""
    plain = direct(ctx, "select ssn, last_name from patients order by id")
    check("123-45-6789" in plain, "the test data is not what the suite expects")
    rc, out, err = agent_psql(ctx, "select id, ssn, last_name from patients order by id limit 10")
    check(rc == 0, "plain read refused: %s" % err)
    check(not leaked(out), "plain read leaked %r" % leaked(out))
    msgs = raw(ctx, [Q("select ssn, last_name from patients limit 5")])
    check(data_rows(msgs), "the raw client got no rows: %r" % msgs[-3:])
    check(not leaked(all_bytes(msgs)), "raw read leaked")


def test_hoopd_stops_cleanly(ctx):
    check_clean_stop(ctx.hd, ctx.cg.path)


def _tests():
    """Every test_* function of this file in the order written; the baseline first and the clean
    stop last."""
    g = globals()
    names = [n for n in g if n.startswith("test_") and callable(g[n])]
    first, last = "test_baseline_masks_through_the_shipped_policy", "test_hoopd_stops_cleanly"
    names = [first] + [n for n in names if n not in (first, last)] + [last]
    return [g[n] for n in names]


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(_tests(), setup, teardown, only=sys.argv[1:] or None))
