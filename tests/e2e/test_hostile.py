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
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from hooptest import (attach_agents, teardown, check_clean_stop, Cgroup, Cleanup, Hoopd, Netns,  # noqa: E402
                      Postgres, check, free_port, log, run_tests, wait_for)

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

def _own_hoopd(cl, policy, tag, *args):
    """A hoopd of the test's own (stopped by cl) with a fresh cgroup attached to it. Its log is
    shown if the test fails."""
    hd = Hoopd(cl, policy, tag=tag)
    _remember(cl, hd)
    hd.start(*args)
    cg = Cgroup(cl, "netid-" + tag)
    cl.push(lambda: hd.proc and hd.ctl("detach", "--cgroup", cg.path, check=False))
    return hd, cg


def _remember(cl, hd):
    cl.hoopds = getattr(cl, "hoopds", []) + [hd]


def _stop_clean(cl):
    """Stop the test's own hoopds: each exits cleanly, with no sanitizer report."""
    for hd in getattr(cl, "hoopds", []):
        hd.stop()
        bad = hd.sanitizer_reports()
        check(not bad, "hoopd %s reported:\n%s" % (hd.pin_root, "\n".join(bad[:20])))


def _show_logs(cl):
    """A failed test's own hoopds' logs (they are removed with the test)."""
    for hd in getattr(cl, "hoopds", []):
        lines = [l for l in hd.log_text().splitlines() if "libbpf" not in l]
        log("---- %s (last 30 lines) ----\n%s" % (hd.logf, "\n".join(lines[-30:])))


def _tcp_policy(*ports, extra=""):
    return "version: 1\ntargets:\n  - name: db\n    protocol: tcp\n    ports: [%s]\n%s" % (
        ", ".join(str(p) for p in ports), extra)


def _in_netns_and_cgroup(cg, ns):
    """A process that lives in the cgroup and the namespace (a pod), so that attaching the
    cgroup opens hoopd's listener in that namespace."""
    pod = cg.popen(["sleep", "120"], netns=ns)
    ino = os.stat("/run/netns/" + ns).st_ino
    wait_for(lambda: str(pod.pid) in open(os.path.join(cg.path, "cgroup.procs")).read()
             and os.stat("/proc/%d/ns/net" % pod.pid).st_ino == ino, 5, "the pod")
    return pod


# Says who connected: the peer address it sees, then whatever the caller asked it to say.
PEER_SERVER = r'''
import socket, sys, threading
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, a = s.accept()
    c.sendall(("%s %s\n" % (sys.argv[3], a[0])).encode())
    c.close()
'''

PEER_CLIENT = r'''
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam)
s.settimeout(10)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print(s.recv(200).decode().strip() or "EOF")
except OSError as e:
    print("error %s" % e.errno)
'''


def _server(cl, argv, netns=None):
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cl.push(lambda: (p.kill(), p.wait()))
    check(p.stdout.readline().strip() == "ready", "a test server did not start: %s" %
          (p.poll() is not None and p.stderr.read()))
    return p


def _peer(cg, host, port, netns=None):
    r = cg.run([PY, "-c", PEER_CLIENT, host, str(port)], netns=netns, timeout=30)
    return r.stdout.strip()


def test_scram_channel_binding_never_turns_the_database_leg_to_plaintext(ctx):
    """Issue 14 point 7: an agent whose SCRAM client-first says `y` (TLS to hoopd, no -PLUS
    offered) made hoopd redial the database without TLS under upstream_tls: prefer. Now it is
    refused with a clear error and the database leg is never plaintext."""
    cl = Cleanup()
    try:
        pg = Postgres(cl, ssl=True, extra=("password_encryption=scram-sha-256",),
                      hba_first=("host all scram_user 127.0.0.1/32 scram-sha-256",))
        pg.psql_direct("create user scram_user password 'scram-secret-pw'")
        hd, cg = _own_hoopd(cl, "version: 1\ntargets:\n  - name: pg\n    protocol: postgres\n"
                            "    ports: [%d]\n    upstream_tls: prefer\n" % pg.port, "scram")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        conn = ("host=127.0.0.1 port=%d user=scram_user dbname=postgres sslmode=require "
                "channel_binding=prefer" % pg.port)
        r = cg.run(["psql", conn, "-XAtc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"],
                   env=dict(os.environ, PGPASSWORD="scram-secret-pw"))
        check(r.stdout.strip() != "f", "the database leg went plaintext for the agent's SCRAM `y`")
        check(r.returncode != 0 and "channel binding" in r.stderr,
              "SCRAM `y` over a TLS database leg: rc %d %r %r" % (r.returncode, r.stdout, r.stderr))
        check("redialling" not in hd.log_text(), "hoopd redialled the database")
        # The same user with channel binding off logs in, with TLS on the database leg.
        r = cg.run(["psql", conn.replace("channel_binding=prefer", "channel_binding=disable"),
                    "-XAtc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"],
                   env=dict(os.environ, PGPASSWORD="scram-secret-pw"))
        check(r.returncode == 0 and r.stdout.strip() == "t", "SCRAM with binding off: %r %r" %
              (r.stdout, r.stderr))
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


def test_agent_in_its_own_netns_cannot_see_the_database_leg(ctx):
    """Issue 14 point 7: hoopd dialled the database from inside the agent's network namespace,
    where a root agent with CAP_NET_RAW reads it. A destination hoopd can reach is now dialled
    from hoopd's own namespace (the server sees hoopd's address, not the pod's), and only one
    that exists in the agent's namespace alone (its loopback) from the agent's; the session
    says which (upstream_netns)."""
    cl = Cleanup()
    n = os.getpid() % 100000
    try:
        ns = Netns(cl, "hnd%d" % n, "198.18.2.1", "198.18.2.2")
        p_remote, p_local = free_port(), free_port()
        # The database hoopd can reach (on the host end of the veth), a database that exists
        # only on the agent's loopback, and a decoy on the host's loopback at the same port.
        _server(cl, [PY, "-c", PEER_SERVER, "198.18.2.1", str(p_remote), "remote"])
        _server(cl, [PY, "-c", PEER_SERVER, "127.0.0.1", str(p_local), "agent-loopback"], netns=ns.name)
        _server(cl, [PY, "-c", PEER_SERVER, "127.0.0.1", str(p_local), "host-loopback"])
        hd, cg = _own_hoopd(cl, _tcp_policy(p_remote, p_local), "ns")
        pod = _in_netns_and_cgroup(cg, ns.name)
        cl.push(lambda: (pod.kill(), pod.wait()))
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        before = hd.status()["stats"]["connections_accepted"]
        got = _peer(cg, "198.18.2.1", p_remote, netns=ns.name)
        check(got == "remote 198.18.2.1",
              "the database saw %r: the leg was not dialled from hoopd's namespace" % got)
        got = _peer(cg, "127.0.0.1", p_local, netns=ns.name)
        check(got == "agent-loopback 127.0.0.1", "the agent's own loopback database: %r" % got)
        check(hd.status()["stats"]["connections_accepted"] == before + 2,
              "the connections did not go through hoopd")
        log_text = hd.log_text()
        check("198.18.2.1:%d (target db, tcp, dialled from hoopd's netns)" % p_remote in log_text
              and "127.0.0.1:%d (target db, tcp, dialled from agent's netns)" % p_local in log_text,
              "the sessions do not say which namespace dialled")
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


def test_attach_warns_about_agents_with_raw_network_capabilities(ctx):
    """Issue 14 point 7: an agent that keeps CAP_NET_RAW or CAP_NET_ADMIN can read and forge the
    traffic of its own namespace; hoopctl attach names such processes (and stays quiet for an
    agent that dropped them)."""
    cl = Cleanup()
    try:
        cg = Cgroup(cl, "netid-caps")
        cl.push(lambda: ctx.hd.proc and ctx.hd.ctl("detach", "--cgroup", cg.path, check=False))
        meek = cg.popen(["setpriv", "--bounding-set=-net_raw,-net_admin", "sleep", "120"])
        cl.push(lambda: (meek.kill(), meek.wait()))
        wait_for(lambda: "sleep" in open("/proc/%d/comm" % meek.pid).read() and not
                 int(re.search(r"CapEff:\s*([0-9a-f]+)", open("/proc/%d/status" % meek.pid).read())
                     .group(1), 16) & (3 << 12), 5, "the capability drop")
        r = ctx.hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        check("CAP_NET" not in r.stderr, "warned about an agent without the caps: %r" % r.stderr)
        root = cg.popen(["sleep", "120"])
        cl.push(lambda: (root.kill(), root.wait()))
        wait_for(lambda: str(root.pid) in open(os.path.join(cg.path, "cgroup.procs")).read(), 5,
                 "the agent")
        r = ctx.hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        check("pid %d (sleep) holds CAP_NET_RAW and CAP_NET_ADMIN" % root.pid in r.stderr
              and "pid %d " % meek.pid not in r.stderr and "NET_RAW" in r.stderr,
              "hoopctl attach said: %r" % r.stderr)
    finally:
        cl.run()


def test_agents_database_leg_is_recorded_with_its_namespace(ctx):
    """Issue 14 point 7: the session_start record says which namespace dialled the database."""
    rc, out, err = agent_psql(ctx, "select 1")
    check(rc == 0, err)
    starts = [e for e in ctx.hd.events() if e.get("kind") == "session_start"]
    check(starts and starts[-1].get("upstream_netns") == "hoopd",
          "session_start: %r" % (starts[-1] if starts else None))


# A PostgreSQL impostor: 'N' to SSLRequest; logs in whoever comes (or asks the catalog for a
# cleartext password), then never answers a query. Everything it receives goes to its log.
FAKE_PG = r'''
import socket, struct, sys, threading
mode, host, port, logf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
def note(b):
    with lock, open(logf, "ab") as f:
        f.write(b + b"\n")
def rd(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: raise EOFError
        b += d
    return b
def handle(c):
    try:
        while True:
            n = struct.unpack("!i", rd(c, 4))[0]
            body = rd(c, n - 4)
            if struct.unpack("!i", body[:4])[0] == 80877103:
                c.sendall(b"N")
                continue
            break
        parts = body[4:].split(b"\0")
        kv = dict(zip(parts[0::2], parts[1::2]))
        catalog = kv.get(b"application_name") == b"hoop-catalog"
        note(b"startup catalog=%d" % catalog)
        if catalog and mode == "cleartext":
            c.sendall(b"R" + struct.pack("!ii", 8, 3))
        else:
            ps = b"".join(b"S" + struct.pack("!i", 4 + len(k) + len(v) + 2) + k + b"\0" + v + b"\0"
                          for k, v in ((b"server_version", b"15.0"), (b"client_encoding", b"UTF8")))
            c.sendall(b"R" + struct.pack("!ii", 8, 0) + ps + b"Z" + struct.pack("!i", 5) + b"I")
        if catalog and mode == "flood":
            # Whatever it is asked: a result with the catalog's nine columns that never ends.
            c.recv(65536)
            desc = struct.pack("!h", 9) + b"".join(b"c%d\0" % i + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0)
                                                  for i in range(9))
            vals = [b"16384", b"public", b"t", b"r", b"1", b"a", b"25", b"x" * 100000, b""]
            row = struct.pack("!h", 9) + b"".join(struct.pack("!i", len(v)) + v for v in vals)
            c.sendall(b"1\0\0\0\4" + b"2\0\0\0\4" + b"T" + struct.pack("!i", 4 + len(desc)) + desc)
            chunk = (b"D" + struct.pack("!i", 4 + len(row)) + row) * 10
            note(b"flooding")
            while True:
                c.sendall(chunk)
        while True:
            d = c.recv(65536)
            if not d: break
            note(b"got " + d)
    except Exception:
        pass
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
'''


def test_fake_database_does_not_stall_other_agents_catalog(ctx):
    """Issue 14 point 8: one catalog thread without a client-side timeout talked to whatever
    server the agent dialled; an impostor that never answers held it for every session. With a
    pool, one running load per destination and deadlines, another agent's first statement to the
    real database is answered at once, masked with the real catalog."""
    cl = Cleanup()
    try:
        fakelog = os.path.join(ctx.tmp, "fake-hang.log")
        _server(cl, [PY, "-c", FAKE_PG, "hang", "127.0.0.2", str(ctx.pg.port), fakelog])
        hd, cg = _own_hoopd(cl, shipped_policy(ctx, upstream_tls="prefer"), "cat")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        fake = cg.popen(["psql", "host=127.0.0.2 port=%d user=postgres dbname=clinical "
                         "sslmode=disable" % ctx.pg.port, "-XAtc", "select 1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cl.push(lambda: (fake.kill(), fake.wait()))
        wait_for(lambda: os.path.exists(fakelog) and b"catalog=1" in open(fakelog, "rb").read(),
                 15, "hoopd's catalog load to reach the impostor")
        t0 = time.time()
        r = cg.run(["psql", "-X", "-tA", dsn(ctx), "-c",
                    "select id, ssn from patients order by id limit 10"], timeout=40)
        took = time.time() - t0
        check(r.returncode == 0, "the real database's session failed: %r" % r.stderr)
        check(took < 8, "the real database's first statement took %.1f s" % took)
        rows = [l.split("|") for l in r.stdout.split()]
        check([x[0] for x in rows] == ["1", "2", "3"], "ids masked (no catalog?): %r" % rows)
        check(not leaked(r.stdout), "leaked %r" % leaked(r.stdout))
        # A load still waiting on the impostor does not hold hoopd's stop.
        t0 = time.time()
        check(hd.stop() == 0 and time.time() - t0 < 5, "hoopd did not stop cleanly and at once")
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


def test_catalog_password_goes_to_no_impostor(ctx):
    """Issue 14 point 8: the catalog role's password went to whatever server the agent dialled,
    in cleartext if it asked. The catalog now asks without a password first, and offers it only
    to SCRAM with channel binding: an impostor asking for a cleartext password gets nothing."""
    cl = Cleanup()
    try:
        secret = "catalog-secret-%d" % os.getpid()
        pwfile = os.path.join(ctx.tmp, "catalog-netid.password")
        with open(pwfile, "w") as f:
            f.write(secret + "\n")
        fakelog = os.path.join(ctx.tmp, "fake-clear.log")
        _server(cl, [PY, "-c", FAKE_PG, "cleartext", "127.0.0.3", str(ctx.pg.port), fakelog])
        policy = shipped_policy(ctx, upstream_tls="prefer").replace(ctx.catpw, pwfile)
        hd, cg = _own_hoopd(cl, policy, "pw")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        fake = cg.popen(["psql", "host=127.0.0.3 port=%d user=postgres dbname=clinical "
                         "sslmode=disable" % ctx.pg.port, "-XAtc", "select 1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cl.push(lambda: (fake.kill(), fake.wait()))
        wait_for(lambda: os.path.exists(fakelog) and b"catalog=1" in open(fakelog, "rb").read(),
                 15, "hoopd's catalog load to reach the impostor")
        wait_for(lambda: "catalog of 127.0.0.3" in hd.log_text(), 25, "the catalog load to end")
        time.sleep(0.5)
        check(secret.encode() not in open(fakelog, "rb").read(),
              "the catalog password reached the impostor")
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


def test_catalog_role_with_a_password_still_logs_in_by_scram(ctx):
    """Issue 14 point 8: the hardened catalog connection (no password until asked, then only
    SCRAM with channel binding over verified TLS) still reads the catalog of a real server whose
    catalog role has a SCRAM password."""
    cl = Cleanup()
    try:
        pg = Postgres(cl, ssl=True, extra=("password_encryption=scram-sha-256",),
                      hba_first=("host all hoop_catalog 127.0.0.1/32 scram-sha-256",))
        pg.psql_direct("create user hoop_catalog password 'catalog-scram-pw'")
        pg.psql_direct("create table visits (id int, ssn text); insert into visits values (7, '123-45-6789')")
        pwfile = os.path.join(ctx.tmp, "catalog-scram.password")
        with open(pwfile, "w") as f:
            f.write("catalog-scram-pw\n")
        policy = shipped_policy(ctx).replace("ports: [%d]" % ctx.pg.port, "ports: [%d]" % pg.port)
        policy = policy.replace(ctx.pg.ca, pg.ca).replace(ctx.catpw, pwfile)
        policy = policy.replace("  user: postgres\n", "  user: hoop_catalog\n")
        check("upstream_tls: verify-full" in policy and "user: hoop_catalog" in policy, policy)
        hd, cg = _own_hoopd(cl, policy, "scat")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        r = cg.run(["psql", "-X", "-tA", "host=127.0.0.1 port=%d dbname=postgres user=postgres "
                    "sslmode=disable" % pg.port, "-c", "select id, ssn from visits limit 5"])
        check(r.returncode == 0, r.stderr)
        check("read as hoop_catalog" in hd.log_text(), "the catalog was not read")
        check(r.stdout.split("|")[0] == "7" and "123-45-6789" not in r.stdout,
              "masked with the catalog: %r" % r.stdout)
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


def test_catalog_flood_is_cut_off(ctx):
    """Issue 14 point 8: a server the agent dialled could answer the catalog query with a result
    that never ends, and libpq kept all of it. Rows are now taken one at a time and a load stops
    at a bound (rows, bytes, deadline): hoopd's memory stays small and the load fails."""
    cl = Cleanup()
    try:
        fakelog = os.path.join(ctx.tmp, "fake-flood.log")
        _server(cl, [PY, "-c", FAKE_PG, "flood", "127.0.0.4", str(ctx.pg.port), fakelog])
        hd, cg = _own_hoopd(cl, shipped_policy(ctx, upstream_tls="prefer"), "flood")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        fake = cg.popen(["psql", "host=127.0.0.4 port=%d user=postgres dbname=clinical "
                         "sslmode=disable" % ctx.pg.port, "-XAtc", "select 1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cl.push(lambda: (fake.kill(), fake.wait()))
        wait_for(lambda: os.path.exists(fakelog) and b"flooding" in open(fakelog, "rb").read(),
                 15, "the impostor to flood hoopd's catalog load")

        def peak_mib():
            with open("/proc/%d/status" % hd.proc.pid) as f:
                return int(re.search(r"VmHWM:\s*(\d+)", f.read()).group(1)) // 1024
        try:
            wait_for(lambda: "catalog of 127.0.0.4" in hd.log_text() or peak_mib() > 700, 30,
                     "the catalog load to end")
        except AssertionError:
            pass
        check(peak_mib() <= 700, "hoopd grew to %d MiB on the flood" % peak_mib())
        check("not a catalog" in hd.log_text() or "catalog deadline" in hd.log_text(),
              "the flooded load did not stop at a bound")
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


MOVER = r'''
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
sys.stdin.readline()
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0clinical\0\0"
s.sendall(struct.pack("!i", len(body) + 4) + body)
buf = b""
while b"Z\0\0\0\5" not in buf:
    d = s.recv(65536)
    if not d: break
    buf += d
print("logged-in" if b"Z\0\0\0\5" in buf else "no-login", flush=True)
'''


def test_identity_is_the_cgroup_of_the_connect(ctx):
    """Issue 14 point 16: owner and cgroup were re-read from /proc at accept, so a process that
    moved to another cgroup between its connect and hoopd's accept took that cgroup's owner.
    They now come from what the BPF program captured at connect, and exe is marked as observed
    at accept."""
    cl = Cleanup()
    try:
        other = Cgroup(cl, "netid-other")
        cl.push(lambda: ctx.hd.proc and ctx.hd.ctl("detach", "--cgroup", other.path, check=False))
        ctx.hd.ctl("attach", "--cgroup", other.path, "--owner", "trusted@example.org")
        # hoopd stopped: the connection waits in the listen backlog, not yet accepted.
        os.kill(ctx.hd.proc.pid, signal.SIGSTOP)
        try:
            p = ctx.cg.popen([PY, "-c", MOVER, str(ctx.pg.port)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            cl.push(lambda: (p.kill(), p.wait()))
            check(p.stdout.readline().strip() == "connected", "the agent did not connect")
            with open(os.path.join(other.path, "cgroup.procs"), "w") as f:
                f.write(str(p.pid))
        finally:
            os.kill(ctx.hd.proc.pid, signal.SIGCONT)
        p.stdin.write("go\n")
        p.stdin.flush()
        check(p.stdout.readline().strip() == "logged-in", "the agent did not log in")
        start = wait_for(lambda: [e for e in ctx.hd.events() if e.get("kind") == "session_start"
                                  and e["agent"]["pid"] == p.pid], 10, "the session_start")[-1]
        a = start["agent"]
        check(a["owner"] == OWNER, "owner %r: taken from the cgroup at accept" % a["owner"])
        check(a["cgroup"].endswith("/" + os.path.basename(ctx.cg.path)), "cgroup %r" % a["cgroup"])
        check(a.get("exe_observed") == "accept", "exe not marked as observed at accept: %r" % a)
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


def test_missing_bpf_config_fails_closed(ctx):
    """Issue 14 point 17: with no usable BPF config (another ABI during an upgrade, or none
    written yet) a targeted connect went straight to the database, even without --fail-open.
    It now fails."""
    pin = os.path.join(ctx.hd.pin_root, "maps", "hoop_config")
    cur = json.loads(subprocess.run(["bpftool", "-j", "map", "lookup", "pinned", pin, "key",
                                     "0", "0", "0", "0"], check=True, capture_output=True,
                                    text=True).stdout)
    value = [str(int(x, 16)) for x in cur["value"]]
    subprocess.run(["bpftool", "map", "update", "pinned", pin, "key", "0", "0", "0", "0",
                    "value"] + ["0"] * len(value), check=True)
    try:
        r = ctx.cg.run([PY, "-c", PEER_CLIENT, "127.0.0.1", str(ctx.pg.port)])
        check(r.stdout.strip() == "error 1",  # EPERM: refused in the connect hook
              "a targeted connect with no BPF config was not refused: %r %r" % (r.stdout, r.stderr))
    finally:
        subprocess.run(["bpftool", "map", "update", "pinned", pin, "key", "0", "0", "0", "0",
                        "value"] + value, check=True)
    rc, out, err = agent_psql(ctx, "select 1")
    check(rc == 0, "not restored: %s" % err)


def test_fail_open_waits_for_a_running_hoopd_in_a_new_netns(ctx):
    """Issue 14 point 17: with --fail-open, the first connects from a namespace hoopd had not
    served yet (a new pod under an attached cgroup) went straight to the database while hoopd
    was running. Fail-open now applies only when hoopd is down (its heartbeat is stale): the
    new namespace's first connect is refused and hoopd opens a listener there; with hoopd
    stopped, fail-open still lets the agent through."""
    cl = Cleanup()
    n = os.getpid() % 100000
    try:
        ns = Netns(cl, "hfn%d" % n, "198.18.4.1", "198.18.4.2")
        port = free_port()
        _server(cl, [PY, "-c", PEER_SERVER, "127.0.0.1", str(port), "direct"], netns=ns.name)
        hd, cg = _own_hoopd(cl, _tcp_policy(port), "fn", "--fail-open")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        ino = os.stat("/run/netns/" + ns.name).st_ino
        check(not any(l["netns_inode"] == ino for l in hd.status()["listeners"]), "served already")
        got = _peer(cg, "127.0.0.1", port, netns=ns.name)
        check(not got.startswith("direct"), "a new namespace went around a running hoopd: %r" % got)
        wait_for(lambda: any(l["netns_inode"] == ino for l in hd.status()["listeners"]), 5,
                 "hoopd to serve the new namespace")
        hd.stop()
        got = _peer(cg, "127.0.0.1", port, netns=ns.name)
        check(got.startswith("direct"), "--fail-open with hoopd stopped: %r" % got)
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


SQUAT = r'''
import socket, sys, time
s = socket.socket(socket.AF_INET6)
s.bind(("::1", int(sys.argv[1])))
print("ready", flush=True)
time.sleep(3600)
'''


def test_fail_open_keeps_a_half_served_netns_closed(ctx):
    """Issue 14 point 17: with --fail-open, a namespace where hoopd's IPv6 listener could not be
    opened let IPv6 connects go straight to the database. Fail-open now applies only where hoopd
    serves neither family."""
    cl = Cleanup()
    n = os.getpid() % 100000
    try:
        ns = Netns(cl, "hfo%d" % n, "198.18.3.1", "198.18.3.2")
        port = free_port()
        hd = Hoopd(cl, _tcp_policy(port), tag="fo")
        _remember(cl, hd)
        # Something else holds [::1]:listen-port in the pod: hoopd's IPv6 listener fails there.
        _server(cl, ["ip", "netns", "exec", ns.name, PY, "-c", SQUAT, str(hd.listen_port)])
        _server(cl, [PY, "-c", PEER_SERVER, "::1", str(port), "direct"], netns=ns.name)
        hd.start("--fail-open")
        cg = Cgroup(cl, "netid-fo")
        cl.push(lambda: hd.proc and hd.ctl("detach", "--cgroup", cg.path, check=False))
        pod = _in_netns_and_cgroup(cg, ns.name)
        cl.push(lambda: (pod.kill(), pod.wait()))
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        ino = os.stat("/run/netns/" + ns.name).st_ino
        ls = [l for l in hd.status()["listeners"] if l["netns_inode"] == ino]
        check(ls and not ls[0]["ipv6"], "the test needs a namespace with no IPv6 listener: %r" % ls)
        got = _peer(cg, "::1", port, netns=ns.name)
        check(got.startswith("error"), "IPv6 went around hoopd under --fail-open: %r" % got)
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()



# ---- 10, 11, 12: one agent must not hurt the others -------------------------------------------


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
