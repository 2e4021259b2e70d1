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
#
# Every case here ends with the same real statement, whose computed columns derive from masked
# columns (the shipped policy masks *.ssn and *.last_name), after a decoy of the same column count
# whose columns are clean. If hoopd matched the real statement's answer to the decoy (the queue
# out of step with the server) or planned a name by a definition the server refused, the real
# values would reach the agent in clear.

REAL = "select upper(last_name), replace(ssn, '-', '') from patients limit 100"
DECOY = "select '', ''"

# A raw client that sends its frames in stages, each stage after the answers of the last: the
# order in which the server and the agent act is what these cases are about. The plan (a JSON
# file) is a list of [frames as hex, message type to wait for, how many]. Prints every message
# as "<type> <hex body>", and "STAGE n" when stage n is sent.
RAW_STAGED = r"""
import binascii, json, socket, struct, sys, time
host, port, timeout, startup = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
plan = json.load(open(sys.argv[5]))
s = socket.create_connection((host, port), timeout=timeout)
s.sendall(binascii.unhexlify(startup))
buf = b""; end = time.time() + timeout
def read_until(t, n):
    global buf
    seen = 0
    while seen < n:
        while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!i", buf[1:5])[0]:
            ln = struct.unpack("!i", buf[1:5])[0]
            typ, body, buf = buf[:1], buf[5:1 + ln], buf[1 + ln:]
            print(typ.decode("latin-1"), binascii.hexlify(body).decode(), flush=True)
            if typ.decode("latin-1") == t:
                seen += 1
                if seen >= n: return True
        s.settimeout(max(0.01, end - time.time()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            print("TIMEOUT"); return False
        if not d:
            print("EOF"); return False
        buf += d
    return True
if read_until("Z", 1):
    for i, (frames, t, n) in enumerate(plan):
        print("STAGE", i, flush=True)
        s.sendall(b"".join(binascii.unhexlify(f) for f in frames))
        if not read_until(t, n): break
"""


def raw_staged(ctx, stages, timeout=20):
    """Log in as the agent, then for each (frames, type, count): send the frames and read until
    count messages of that type arrived. Returns {stage number: [(type, body)]} with the
    messages each stage got (-1: login), plus 'EOF'/'TIMEOUT' entries where they happened."""
    path = os.path.join(ctx.tmp, "rawstaged.py")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(RAW_STAGED)
    plan = os.path.join(ctx.tmp, "plan-%d.json" % time.monotonic_ns())
    import json
    with open(plan, "w") as f:
        json.dump([[[fr.hex() for fr in frames], t, n] for frames, t, n in stages], f)
    os.chmod(plan, 0o644)
    r = ctx.cg.run([PY, path, "127.0.0.1", str(ctx.pg.port), str(timeout),
                    startup_packet().hex(), plan], timeout=timeout * (len(stages) + 1) + 30)
    out, stage = {-1: []}, -1
    for line in r.stdout.splitlines():
        parts = line.split(" ", 1)
        if parts[0] == "STAGE":
            stage = int(parts[1])
            out[stage] = []
            continue
        out[stage].append((parts[0], bytes.fromhex(parts[1]) if len(parts) > 1 else b""))
    return out


def Cd(data):
    return pmsg(b"d", data)


def Cdone():
    return pmsg(b"c", b"")


def check_real_masked(msgs, what):
    """The real statement's answer: rows that came masked (or were withheld), never raw."""
    got = all_bytes(msgs)
    check(not leaked(got), "%s: raw PHI reached the agent: %r" % (what, leaked(got)))
    rows = data_rows(msgs)
    errs = [error_fields(b).get("M", "") for t, b in msgs if t == "E"]
    check(rows or any("withheld" in e for e in errs),
          "%s: the real statement got neither rows nor a withholding error: %r" % (what, msgs))


def test_query_sent_while_server_skips_to_sync_gets_no_answer_of_its_own(ctx):
    """Issue 14 point 1, review PoC (a): after an extended-protocol error the server ignores a
    Query up to the next Sync; hoopd must not expect an answer for it, or every later answer is
    matched to the statement before it and a real query's rows are masked by a decoy's plan."""
    st = raw_staged(ctx, [
        ([D(b"S", "nope"), H()], "E", 1),
        ([Q("select 'x'"), S()], "Z", 1),
        ([Q(DECOY)], "Z", 1),
        ([Q(REAL)], "Z", 1),
    ])
    check(len(st) == 5, "the session did not get through its stages: %r" % st)
    check([t for t, _ in st[1]] == ["Z"], "the ignored Query was answered: %r" % st[1])
    check_real_masked(st[3], "skip-till-Sync")


def test_extended_copy_from_stdin_then_decoy_and_real(ctx):
    """Issue 14 point 1, review PoC (b): libpq's extended-protocol COPY FROM STDIN sends Parse,
    Bind, Describe, Execute, Sync, then the data, CopyDone and another Sync; the server ignores
    the first Sync (it is in the COPY) and answers one ReadyForQuery for the two. The COPY must
    work through hoopd and leave the queue in step."""
    direct(ctx, "drop table if exists states_copy; create table states_copy (t text)")
    st = raw_staged(ctx, [
        ([P("", "copy states_copy from stdin"), B(), D(b"P"), E(), S()], "G", 1),
        ([Cd(b"hello\n"), Cdone(), S()], "Z", 1),
        ([Q(DECOY)], "Z", 1),
        ([Q(REAL)], "Z", 1),
    ])
    check(len(st) == 5, "the session did not get through its stages: %r" % st)
    check([t for t, _ in st[1]] == ["C", "Z"], "COPY's end: %r" % st[1])
    check(direct(ctx, "select string_agg(t, ',') from states_copy") == "hello",
          "the COPY did not arrive")
    check_real_masked(st[3], "extended COPY FROM STDIN")


def test_copy_from_stdin_refuses_a_query_inside_the_copy(ctx):
    """Issue 14 point 1: during COPY FROM STDIN the server takes only COPY messages (a Sync or
    Flush it ignores) and swallows anything else into an error that ends the COPY, so the queue
    would lose a Query's entry; hoopd closes that one session instead, and nothing the agent
    sends after it (a decoy, then the real statement twice) gets masked by another's plan."""
    direct(ctx, "drop table if exists states_copy; create table states_copy (t text)")
    st = raw_staged(ctx, [
        ([Q("copy states_copy from stdin")], "G", 1),
        ([Cd(b"a\n"), S(), Q(DECOY)], "Z", 1),
        ([Q(REAL)], "Z", 1),
        ([Q(REAL)], "Z", 1),
    ])
    got = b"".join(all_bytes(m) for m in st.values())
    check(not leaked(got), "raw PHI reached the agent: %r" % leaked(got))
    errs = [error_fields(b) for t, b in st.get(1, []) if t == "E"]
    check(errs and errs[0].get("C") == "08P01" and errs[0].get("M", "").startswith("hoop:")
          and "COPY" in errs[0].get("M", ""), "not refused by hoop: %r" % errs)
    msgs = raw(ctx, [Q(REAL)])
    check(data_rows(msgs) and not leaked(all_bytes(msgs)), "the next session: %r" % msgs[-3:])


def test_duplicate_parse_keeps_the_servers_statement(ctx):
    """Issue 14 point 2, review PoC (c): a second Parse of an existing name fails on the server
    (42P05), which keeps the first; a Bind of that name must be masked by the first."""
    st = raw_staged(ctx, [
        ([P("s2", REAL), S()], "Z", 1),
        ([P("s2", DECOY), S()], "Z", 1),
        ([B("", "s2"), E(), S()], "Z", 1),
    ])
    check(len(st) == 4, "stages: %r" % st)
    check(any(t == "E" and error_fields(b).get("C") == "42P05" for t, b in st[1]),
          "the duplicate Parse did not fail as expected: %r" % st[1])
    check_real_masked(st[2], "duplicate Parse")


def test_duplicate_prepare_keeps_the_servers_statement(ctx):
    """Issue 14 point 2, review PoC (d): PREPARE of an existing name fails (42P05); EXECUTE runs
    the first text and must be masked by it."""
    msgs = raw(ctx, [Q("prepare s2 as " + REAL), Q("prepare s2 as " + DECOY), Q("execute s2")],
               ready=3)
    check(any(t == "E" and error_fields(b).get("C") == "42P05" for t, b in msgs),
          "the duplicate PREPARE did not fail as expected")
    check_real_masked(msgs, "duplicate PREPARE")


def test_unicode_escaped_prepare_name_is_the_servers_name(ctx):
    """Issue 14 point 2: U&"s\\0032" is s2 to the server; hoopd must resolve it the same way, or a
    later PREPARE s2 of a decoy (which fails) is taken for the definition."""
    msgs = raw(ctx, [Q('prepare U&"s\\0032" as ' + REAL), Q("prepare s2 as " + DECOY),
                     Q('execute "s2"')], ready=3)
    check(any(t == "E" and error_fields(b).get("C") == "42P05" for t, b in msgs),
          "the second PREPARE did not fail as expected")
    check_real_masked(msgs, "U& PREPARE name")


def test_duplicate_declare_keeps_the_servers_cursor(ctx):
    """Issue 14 point 2, review PoC (f): DECLARE of an existing cursor fails (42P03); FETCH reads
    the first and must be masked by its plan."""
    msgs = raw(ctx, [Q("declare c cursor with hold for " + REAL),
                     Q("declare c cursor with hold for " + DECOY), Q("fetch all from c")],
               ready=3)
    check(any(t == "E" and error_fields(b).get("C") == "42P03" for t, b in msgs),
          "the duplicate DECLARE did not fail as expected")
    check_real_masked(msgs, "duplicate DECLARE")


def test_close_sent_while_server_skips_keeps_the_statement(ctx):
    """Issue 14 points 1 and 2: a Close (and a Parse of a decoy under the same name) sent while
    the server skips to Sync does nothing on the server; hoopd must keep the statement too."""
    st = raw_staged(ctx, [
        ([P("s3", REAL), S()], "Z", 1),
        ([D(b"S", "nope"), H()], "E", 1),
        ([C(b"S", "s3"), P("s3", DECOY), S()], "Z", 1),
        ([B("", "s3"), E(), S()], "Z", 1),
    ])
    check(len(st) == 5, "stages: %r" % st)
    check_real_masked(st[3], "Close during skip")



# ---- 3, 6: errors and notices; SQL in strings and startup parameters --------------------------


# ---- 4, 5, 9: side channels, DDL laundering, detectors --------------------------------------


# ---- 7, 8, 16, 17: the database leg, the catalog, identity, fail-open edges -------------------


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
