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
from hooptest import (attach_agents, children, proc_status, teardown, check_clean_stop, Cgroup, Cleanup, Hoopd, Netns,  # noqa: E402
                      Postgres, check, free_port, log, run_tests, wait_for, HOOPCTL)

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

def _errors(msgs, kinds="EN"):
    return [error_fields(b) for t, b in msgs if t in kinds]


def test_error_text_of_a_masked_read_does_not_leak(ctx):
    """Point 3: casts to reg* types, nextval, current_setting and has_*_privilege quote their
    input in errors outside classes 22/23. A statement that read a masked column gets only the
    SQLSTATE and a fixed text, in the simple and the extended protocol; the original message is
    in the audit trail. A clean statement's error keeps the server's text."""
    probes = [
        ("select quote_ident(last_name || ' ' || address)::regclass from patients "
         "where id = 1 limit 1", "42P01"),
        ("select last_name::regrole from patients where id = 2 limit 1", "42704"),
        # nextval stores into a sequence: since point 4 a masked argument makes it a write,
        # refused (42501) before the server sees it; the cast below reaches the server.
        ("select nextval(last_name) from patients where id = 3 limit 1", "42501"),
        ("select last_name::regproc from patients where id = 3 limit 1", "42883"),
        ("select current_setting(last_name) from patients where id = 1 limit 1", "42704"),
        ("select has_database_privilege(last_name, 'connect') from patients where id = 2 limit 1",
         "3D000"),
        ("select (select max(first_name || last_name) from patients)::regnamespace limit 1",
         "3F000"),
        # no result column shows the value: a CTE computed for count(*) alone
        ("with x as materialized (select quote_ident(last_name)::regclass r from patients "
         "where id = 1) select count(*) from x limit 1", "42P01"),
    ]
    for sql, state in probes:
        for frames in ([Q(sql)], [P("", sql), B(), E(), S()]):
            msgs = raw(ctx, frames)
            errs = _errors(msgs, "E")
            check(errs and errs[0].get("C") == state,
                  "%s: want SQLSTATE %s, got %r" % (sql, state, errs))
            check(not leaked(all_bytes(msgs)),
                  "%s: error leaked %r: %r" % (sql, leaked(all_bytes(msgs)), errs))
            check(errs[0]["M"].startswith("hoop: "), "%s: server text kept: %r" % (sql, errs))
            check(set(errs[0]) <= set("SVCM"), "%s: fields beyond S V C M: %r" % (sql, errs))
    ev = [e for e in ctx.hd.events() if e.get("kind") == "error" and "Okafor" in e.get("message", "")]
    check(ev, "the original message is not in the audit trail")
    msgs = raw(ctx, [Q("select id from encounters order by 5 limit 1")])
    errs = _errors(msgs, "E")
    check(errs and "position 5" in errs[0].get("M", ""),
          "a clean statement's error lost its text: %r" % errs)


def test_raise_and_nested_errors_do_not_leak(ctx):
    """Point 3: RAISE (in a function, as in a DO block) chooses every field of its notice or
    error, SQLSTATE included; an error raised by SQL below the statement (a trigger here) comes
    from a statement hoop never planned. Neither reaches the agent with values."""
    direct(ctx, """
        create or replace function edges_shout(i int) returns int language plpgsql as $$
        declare n text; s text;
        begin
          select last_name, ssn into n, s from patients where id = i;
          raise notice 'patient %', n using detail = n, hint = s, column = n, table = n;
          raise warning '%', n using errcode = upper(substr(n, 1, 5));
          return 1;
        end $$;
        create or replace function edges_fail(i int) returns int language plpgsql as $$
        declare n text;
        begin
          select last_name into n from patients where id = i;
          raise exception '%', n using detail = n, errcode = 'P0002';
        end $$;
        create table if not exists edges_visits (id int, patient_id int);
        create or replace function edges_visit_check() returns trigger language plpgsql as $$
        begin
          perform (select last_name from patients where id = new.patient_id)::regclass;
          return new;
        end $$;
        drop trigger if exists edges_visit_check on edges_visits;
        create trigger edges_visit_check before insert on edges_visits
          for each row execute function edges_visit_check();
    """)
    try:
        msgs = raw(ctx, [Q("select edges_shout(1)")])
        notes = _errors(msgs, "N")
        check(len(notes) >= 2, "expected the two RAISE messages: %r" % msgs)
        check(not leaked(all_bytes(msgs)), "RAISE leaked %r: %r" % (leaked(all_bytes(msgs)), notes))
        check(all(n.get("C") == "P0001" for n in notes), "RAISE's own SQLSTATE passed: %r" % notes)
        msgs = raw(ctx, [Q("select edges_fail(2)")])
        check(not leaked(all_bytes(msgs)), "RAISE EXCEPTION leaked %r" % leaked(all_bytes(msgs)))
        # An INSERT of constants reads nothing masked; its trigger does, and fails with the name.
        msgs = raw(ctx, [Q("insert into edges_visits values (1, 3)")])
        errs = _errors(msgs, "E")
        check(errs and errs[0].get("C") == "42P01", "trigger error: %r" % msgs)
        check(not leaked(all_bytes(msgs)), "trigger error leaked %r: %r"
              % (leaked(all_bytes(msgs)), errs))
    finally:
        direct(ctx, "drop table if exists edges_visits; drop function if exists edges_shout(int);"
               " drop function if exists edges_fail(int);"
               " drop function if exists edges_visit_check()")


def test_sql_in_strings_is_refused(ctx):
    """Point 6: query_to_xml (and its kin, ts_stat, ts_rewrite's query form, dblink*) run SQL
    from a string that no rule sees: query_to_xml('select set_config(''role'', ...)') switched
    the role past no-set-config. The shipped policy refuses the kind opaque_sql."""
    direct(ctx, "create extension if not exists dblink")
    probes = [
        "select query_to_xml('select set_config(''role'', ''pg_read_all_data'', false)', "
        "true, true, '')",
        "select query_to_xmlschema('select 1', true, true, '')",
        "select * from ts_stat('select to_tsvector(last_name) from patients') limit 5",
        "select ts_rewrite('a'::tsquery, 'select ''a''::tsquery, ''b''::tsquery')",
        "select table_to_xml('patients', true, true, '')",
        "select dblink_build_sql_insert('patients', '1', 1, '{1}', '{1}')",
        "select * from dblink('%s', 'select last_name from patients') as t(n text) limit 3"
        % dsn(ctx).replace("sslmode=disable", ""),
    ]
    try:
        for sql in probes:
            rc, out, err = agent_psql(ctx, "select current_user; " + sql + "; select current_user")
            check(rc != 0 and "hoop:" in err,
                  "%s: not refused: rc=%d out=%r err=%r" % (sql, rc, out, err))
            check(not leaked(out + err), "%s: leaked %r" % (sql, leaked(out + err)))
        ev = [e for e in ctx.hd.events() if e.get("kind") == "statement"
              and "query_to_xml" in e.get("text", "")]
        check(ev and all(e.get("verdict") in ("deny", "not_run") for e in ev),
              "query_to_xml not recorded as denied: %r" % ev[-3:])
    finally:
        direct(ctx, "drop extension if exists dblink")


def test_startup_parameters_cannot_change_identity(ctx):
    """Point 6: the startup packet was forwarded verbatim, so options=-c role=... or a role or
    search_path parameter changed the session with no rule applied. They are refused with FATAL
    08004 naming the parameter; plain logins (and the harmless parameters drivers send) pass."""
    for params, name in (({"options": "-c role=pg_read_all_data"}, "options"),
                         ({"role": "pg_read_all_data"}, "role"),
                         ({"Session_Authorization": "postgres"}, "Session_Authorization"),
                         ({"search_path": "evil, public"}, "search_path"),
                         ({"replication": "database"}, "replication"),
                         ({"client_encoding": "SJIS"}, "client_encoding")):
        msgs = raw(ctx, [Q("select current_user, current_setting('search_path')")],
                   startup=startup_packet(**params))
        errs = _errors(msgs, "E")
        check(errs and errs[0].get("S") == "FATAL" and errs[0].get("C") == "08004"
              and ('"%s"' % name) in errs[0].get("M", ""),
              "%s: not refused: %r" % (name, msgs))
        check(not [t for t, _ in msgs if t in ("R", "Z", "D")], "%s: session started: %r"
              % (name, msgs))
    env = dict(os.environ, PGOPTIONS="-c role=pg_read_all_data")
    r = ctx.cg.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select current_user"], env=env)
    check(r.returncode != 0 and "options" in r.stderr, "PGOPTIONS passed: %r %r"
          % (r.stdout, r.stderr))
    msgs = raw(ctx, [Q("select 1")], startup=startup_packet(
        application_name="a", DateStyle="ISO", TimeZone="UTC", extra_float_digits="3",
        client_encoding="UTF8", IntervalStyle="postgres"))
    check(data_rows(msgs) == [["1"]], "a login with the harmless parameters failed: %r" % msgs)


def test_settings_that_change_how_statements_are_read_are_refused(ctx):
    """Point 6 (lexing): with standard_conforming_strings off the server reads 'a\\' -- ' as a
    string and runs what follows, where a parser reading standard strings sees a comment; SJIS
    can likewise hide a quote. SJIS is refused; standard_conforming_strings is followed as the
    server reports it (docs/policy.md), so the hidden DROP is judged, and never runs."""
    direct(ctx, "create table if not exists edges_victim (id int)")
    try:
        rc, out, err = agent_psql(ctx, "set client_encoding = 'SJIS'")
        check(rc != 0 and "hoop:" in err, "SJIS: not refused: rc=%d %r" % (rc, err))
        msgs = raw(ctx, [Q("set standard_conforming_strings = off"),
                         Q("select 'a\\' -- '; drop table edges_victim; --'")], ready=2)
        check(direct(ctx, "select count(*) from pg_class where relname = 'edges_victim'") == "1",
              "the hidden DROP ran: %r" % msgs)
    finally:
        direct(ctx, "drop table if exists edges_victim")


def test_alter_database_set_role_is_refused(ctx):
    """Point 6: ALTER DATABASE ... SET role/search_path/session_authorization is a SET applied at
    every later login, where no rule sees it; ALTER ROLE ... SET and ALTER SYSTEM likewise. The
    shipped policy refuses them and nothing is stored."""
    try:
        for sql in ("alter database clinical set role = 'pg_read_all_data'",
                    "alter database clinical set search_path = 'evil, pg_catalog'",
                    "alter database clinical set session_authorization = 'postgres'",
                    "alter role postgres in database clinical set role = 'pg_read_all_data'",
                    "alter system set search_path = 'evil'"):
            rc, out, err = agent_psql(ctx, sql)
            check(rc != 0 and "hoop:" in err,
                  "%s: not refused: rc=%d %r" % (sql, rc, err))
        stored = direct(ctx, "select count(*) from pg_db_role_setting")
        check(stored == "0", "settings were stored: %s" % direct(ctx, "table pg_db_role_setting"))
    finally:
        # from another database: a stored role would apply to a login to clinical itself
        direct(ctx, "alter database clinical reset all", db="postgres")
        direct(ctx, "alter role postgres in database clinical reset all", db="postgres")



# ---- 4, 5, 9: side channels, DDL laundering, detectors --------------------------------------

def refresh_catalog(ctx):
    """Make hoopd re-read the clinical catalog now (a statement naming a relation the catalog does
    not have marks it stale) and wait until the new one is published."""
    before = ctx.hd.log_text().count("catalog of ")
    time.sleep(1.2)  # on-demand reloads at most once a second
    agent_psql(ctx, "select 1 from hoop_no_such_relation_refresh")
    wait_for(lambda: ctx.hd.log_text().count("catalog of ") > before, 20, "a catalog refresh")


def test_advisory_lock_keys_are_no_channel_for_masked_values(ctx):
    """Point 4: pg_advisory_lock(f(last_name)) stores its argument where every session reads it
    (pg_locks): hoopd refuses it as a write of a masked value, and a lock key another session
    holds reads back masked from pg_locks."""
    rc, out, err = agent_psql(
        ctx, "select pg_advisory_lock(('x' || rpad(encode(convert_to(last_name, 'UTF8'), 'hex'),"
             " 16, '0'))::bit(64)::bigint) from patients where id = 1 limit 1")
    check(rc != 0 and "masked PHI" in err,
          "an advisory lock keyed by a masked value was not refused: rc=%d %r %r" % (rc, out, err))
    held = direct(ctx, "select count(*) from pg_locks where locktype = 'advisory'")
    check(held == "0", "the agent's advisory lock was taken: %s" % held)
    # a key that is an SSN's digits, held by another (direct) session
    p = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                          "-d", "clinical", "-tAX", "-c",
                          "select pg_advisory_lock(123456789), pg_sleep(60)"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx.cleanup.push(p.kill)
    try:
        wait_for(lambda: direct(ctx, "select count(*) from pg_locks where locktype = 'advisory'")
                 == "1", 10, "the direct session's advisory lock")
        rc, out, err = agent_psql(ctx, "select classid, objid, objsubid from pg_locks "
                                       "where locktype = 'advisory'")
        check(rc == 0, "reading pg_locks refused: %s" % err)
        check(out.strip(), "pg_locks read returned nothing")
        check(not leaked(out), "pg_locks showed a lock key in clear: %r" % out)
        msgs = raw(ctx, [Q("select l.objid::text || '' from pg_locks l "
                           "where l.locktype = 'advisory'")])
        check(not leaked(all_bytes(msgs)), "pg_locks (raw) leaked %r" % leaked(all_bytes(msgs)))
    finally:
        p.kill()
        p.wait()


def test_setval_of_a_masked_value_is_refused(ctx):
    """Point 4: setval('s', f(ssn)) keeps the value in a sequence that currval() and last_value
    read back: refused as a write of a masked value (also through the extended protocol)."""
    rc, out, err = agent_psql(ctx, "create sequence if not exists hostile_seq")
    check(rc == 0, "create sequence refused: %s" % err)
    rc, out, err = agent_psql(
        ctx, "select setval('hostile_seq', replace(ssn, '-', '')::bigint) from patients "
             "where id = 1 limit 1; select currval('hostile_seq')")
    check(rc != 0 and "masked PHI" in err, "setval of a masked value ran: %r %r" % (out, err))
    check(not leaked(out + err), "setval/currval leaked %r" % leaked(out + err))
    msgs = raw(ctx, [P("", "select setval('hostile_seq', replace(ssn, '-', '')::bigint) "
                           "from patients where id = 1 limit 1"), B(), E(), S()])
    check(any(t == "E" for t, _ in msgs), "extended-protocol setval was not refused")
    last = direct(ctx, "select last_value from hostile_seq")
    check(last != "123456789", "the sequence holds an SSN: %s" % last)
    rc, out, err = agent_psql(ctx, "select last_value from pg_sequences")
    check(not leaked(out), "pg_sequences leaked %r" % leaked(out))


def test_ddl_that_copies_or_drops_masked_columns_is_refused(ctx):
    """Point 5: ADD COLUMN ... GENERATED ALWAYS AS (last_name), ALTER COLUMN ... TYPE ... USING
    (ssn), RENAME COLUMN of a masked column, renaming the table, DROP COLUMN and OWNER TO are
    refused by the shipped policy; none of them reaches the server."""
    cases = [
        "alter table patients add column ln2 text generated always as (last_name) stored",
        "alter table patients add column ln3 text generated always as "
        "(translate(last_name, 'abcdefghijklmnopqrstuvwxyz', 'zyxwvutsrqponmlkjihgfedcba')) stored",
        "alter table encounters alter column notes type text using (select ssn from patients "
        "where patients.id = encounters.patient_id)",
        "alter table patients rename column last_name to ln",
        "alter table patients rename to people",
        "alter table patients drop column notes",
        "alter table patients owner to postgres",
    ]
    cols = lambda: direct(ctx, "select string_agg(attname, ',' order by attnum) from pg_attribute "
                               "where attrelid = 'patients'::regclass and attnum > 0 "
                               "and not attisdropped")
    before = cols()
    try:
        for sql in cases:
            rc, out, err = agent_psql(ctx, sql)
            check(rc != 0 and "hoop:" in err, "not refused by a rule: %s: %r" % (sql, err))
        check(cols() == before, "the DDL changed patients: %s -> %s" % (before, cols()))
    finally:
        direct(ctx, "alter table if exists people rename to patients")
        for c in ("ln2", "ln3"):
            direct(ctx, "alter table patients drop column if exists %s" % c)
        if "ln," in cols():
            direct(ctx, "alter table patients rename column ln to last_name")
    refresh_catalog(ctx)
    rc, out, err = agent_psql(ctx, "select * from patients order by id limit 3")
    check(not leaked(out), "patients leaked after the refused DDL: %r" % leaked(out))


def test_masking_follows_a_renamed_column_after_the_catalog_refresh(ctx):
    """Point 5: a masked column renamed (by a migration, outside hoop) stays masked for every new
    session after hoopd re-reads the catalog, and so do the masked columns of a renamed table."""
    try:
        direct(ctx, "alter table patients rename column last_name to surname_x")
        direct(ctx, "alter table patients rename column ssn to tax_id_x")
        direct(ctx, "alter table patients rename to people_x")
        refresh_catalog(ctx)
        for sql in ("select id, surname_x, tax_id_x from people_x order by id limit 3",
                    "select * from people_x order by id limit 3",
                    "select upper(p.surname_x) || p.tax_id_x from people_x p limit 3"):
            rc, out, err = agent_psql(ctx, sql)
            check(rc == 0, "%s refused: %s" % (sql, err))
            check(out.strip(), "%s returned nothing" % sql)
            check(not leaked(out), "%s leaked %r after the rename" % (sql, leaked(out)))
        msgs = raw(ctx, [P("", "select surname_x, tax_id_x from people_x limit 3"), B(fmt=1), E(),
                         S()])
        check(data_rows(msgs), "the raw client got no rows: %r" % msgs[-3:])
        check(not leaked(all_bytes(msgs)), "binary read leaked %r" % leaked(all_bytes(msgs)))
    finally:
        direct(ctx, "alter table if exists people_x rename to patients")
        direct(ctx, "alter table patients rename column surname_x to last_name")
        direct(ctx, "alter table patients rename column tax_id_x to ssn")
        refresh_catalog(ctx)


MEMO = "Patient Ada, SSN 123-45-6789, call back"


def memos_ready(ctx):
    """A table no masking rule names, holding an SSN inside free text, known to hoopd's catalog
    (its plain read comes back detector-masked, not redacted as unknown)."""
    direct(ctx, "create table if not exists memos (id int primary key, body text, tag varchar)")
    direct(ctx, "insert into memos values (1, '%s', 'x') on conflict do nothing" % MEMO)

    def known():
        rc, out, _ = agent_psql(ctx, "select body from memos")
        return rc == 0 and "6789" in out and "123-45" not in out
    if not known():
        refresh_catalog(ctx)
        wait_for(known, 20, "memos in hoopd's catalog")


def test_computed_values_of_detector_only_columns_are_redacted(ctx):
    """Point 9: a text column with no rule is protected by the detectors only as it is; values
    computed from it (translate, encode, string_to_array, a cast to tsvector, one character per
    row) would hide an SSN from them, so they are redacted (or withheld), and the plain column
    still comes back with only the SSN masked."""
    memos_ready(ctx)
    rc, out, err = agent_psql(ctx, "select body, tag from memos")
    check(rc == 0 and "Patient Ada" in out and "call back" in out,
          "the plain read of memos is over-masked: %r %r" % (out, err))
    digits = "0123456789"
    attacks = {
        "translate": ("select translate(body, '0123456789', 'abcdefghij') from memos",
                      lambda s: s.translate(str.maketrans("abcdefghij", digits))),
        "base64": ("select encode(convert_to(body, 'UTF8'), 'base64') from memos",
                   lambda s: _b64(s)),
        "hex": ("select encode(convert_to(body, 'UTF8'), 'hex') from memos",
                lambda s: _hex(s)),
        "array": ("select string_to_array(body, NULL) from memos",
                  lambda s: re.sub(r"[{},\"]", "", s)),
        "tsvector": ("select body::tsvector from memos", lambda s: s),
        "to_tsvector": ("select to_tsvector('simple', body) from memos", lambda s: s),
        "per-char": ("select string_agg(c, '' order by g) from (select g, substr(body, g, 1) c "
                     "from memos, generate_series(1, 60) g) x", lambda s: s),
        "one-char-per-row": ("select substr(body, g, 1) from memos, generate_series(1, 60) g "
                             "order by g", lambda s: s.replace("\n", "")),
        "reverse": ("select reverse(body) from memos", lambda s: s[::-1]),
        "digits-spread": ("select regexp_replace(body, '([0-9])', '\\1 ', 'g') from memos",
                          lambda s: re.sub(r"(\d) ", r"\1", s)),
    }
    for name, (sql, undo) in attacks.items():
        rc, out, err = agent_psql(ctx, sql)
        text = out + err
        try:
            back = undo(out)
        except Exception:
            back = out
        check(not leaked(text) and not leaked(back) and "123456789" not in back.replace("-", ""),
              "%s recovered the SSN from a detector-only column: %r" % (name, out[:200]))
    # the binary format and the extended protocol take the same plan
    msgs = raw(ctx, [P("", "select translate(body, '0123456789', 'abcdefghij') from memos"),
                     B(fmt=1), E(), S()])
    back = all_bytes(msgs).decode("utf-8", "replace").translate(
        str.maketrans("abcdefghij", digits))
    check("123-45-6789" not in back, "binary translate() leaked")


def _b64(s):
    import base64
    try:
        return base64.b64decode("".join(s.split())).decode("utf-8", "replace")
    except Exception:
        return s


def _hex(s):
    try:
        return bytes.fromhex("".join(s.split())).decode("utf-8", "replace")
    except Exception:
        return s


def test_detector_only_columns_of_unreadable_types_are_redacted(ctx):
    """Point 9: a column the detectors cannot read as text (citext, of an OID hoop does not know)
    is not passed through unread: with no rule it is redacted."""
    memos_ready(ctx)
    direct(ctx, "create extension if not exists citext")
    direct(ctx, "create table if not exists memos_ci (id int primary key, body citext)")
    direct(ctx, "insert into memos_ci values (1, '%s') on conflict do nothing" % MEMO)
    refresh_catalog(ctx)
    for sql in ("select body from memos_ci", "select * from memos_ci",
                "select body::citext from memos", "select upper(body) from memos_ci"):
        rc, out, err = agent_psql(ctx, sql)
        check(not leaked(out + err), "%s leaked %r" % (sql, leaked(out + err)))
    rc, out, err = agent_psql(ctx, "select body from memos_ci")
    check(rc == 0 and "call back" in out, "a citext column is over-masked in text: %r" % out)
    msgs = raw(ctx, [P("", "select body from memos_ci"), B(fmt=1), E(), S()])
    check(not leaked(all_bytes(msgs)), "binary citext leaked %r" % leaked(all_bytes(msgs)))
    # an enum column no rule names is not over-masked in text format
    direct(ctx, "do $$ begin create type memo_kind as enum ('call', 'visit'); "
                "exception when duplicate_object then null; end $$")
    direct(ctx, "create table if not exists memos_kind (id int primary key, kind memo_kind)")
    direct(ctx, "insert into memos_kind values (1, 'visit') on conflict do nothing")
    refresh_catalog(ctx)
    rc, out, err = agent_psql(ctx, "select id, kind from memos_kind order by id")
    check(rc == 0 and out.strip() == "1|visit", "an enum column is over-masked: %r %r" % (out, err))


def _notifications(msgs):
    """NotificationResponse payloads the agent received."""
    out = []
    for t, body in msgs:
        if t == "A":
            rest = body[4:].split(b"\0")
            out.append(rest[1].decode("utf-8", "replace") if len(rest) > 1 else "")
    return out


def _leaked_any_case(data):
    """leaked(), also in lower case (to_tsquery and regclass fold names)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    low = data.lower()
    return sorted({s for s in SECRETS if s in data or s.lower() in low})


def test_operators_over_builtins_are_judged_like_the_builtins(ctx):
    """Points 4 and 6: an operator runs a function as surely as a call does. The agent's CREATE
    OPERATOR is held like CREATE FUNCTION; and an operator that exists already (made here by the
    superuser, as a DBA or an earlier approval would) is no way around masking or opaque_sql:
    over pg_notify it gets no masked value to a listener, with a built-in's name (||) behind a
    search_path that puts public first it is refused, over ts_rewrite it runs no SQL from a
    string, over setval it stores nothing."""
    create = ("create operator public.~~~ (leftarg=text, rightarg=text, "
              "function=pg_catalog.pg_notify)")
    msgs = raw(ctx, [Q(create)], timeout=4)
    check(any(t in ("TIMEOUT", "E") for t, _ in msgs),
          "the agent's CREATE OPERATOR was answered as run: %r" % msgs[-3:])
    check(direct(ctx, "select count(*) from pg_operator where oprname = '~~~'") == "0",
          "the agent's CREATE OPERATOR was not held")
    made = ["public.~~~ (text, text)", "public.|| (text, text)", "public.%%% (tsquery, text)",
            "public.@@@@ (regclass, bigint)"]
    try:
        direct(ctx, create)
        direct(ctx, "create operator public.|| (leftarg=text, rightarg=text, function=pg_notify)")
        direct(ctx, "create operator public.%%% (leftarg=tsquery, rightarg=text, "
                    "function=pg_catalog.ts_rewrite)")
        direct(ctx, "create operator public.@@@@ (leftarg=regclass, rightarg=bigint, "
                    "function=pg_catalog.setval)")
        direct(ctx, "create sequence if not exists hostile_op_seq")
        refresh_catalog(ctx)
        # over pg_notify: the payload would be the name
        msgs = raw(ctx, [Q("listen c"),
                         Q("select 'c' ~~~ last_name from patients where id=1 limit 1")], ready=2)
        check(not leaked(all_bytes(msgs)), "~~~ over pg_notify leaked %r (notifications %r)"
              % (leaked(all_bytes(msgs)), _notifications(msgs)))
        check(any(t == "E" for t, _ in msgs), "~~~ over pg_notify was not refused")
        # the invisible form: || is the user's once public comes before pg_catalog
        msgs = raw(ctx, [Q("listen c"), Q("set search_path = public, pg_catalog"),
                         Q("select 'c' || last_name from patients where id=2 limit 1")], ready=3)
        errs = [error_fields(b).get("M", "") for t, b in msgs if t == "E"]
        check(any("pg_catalog" in e for e in errs), "SET search_path before pg_catalog was "
              "not refused: %r" % errs)
        check(not leaked(all_bytes(msgs)), "|| over pg_notify leaked %r (notifications %r)"
              % (leaked(all_bytes(msgs)), _notifications(msgs)))
        # SQL from a string under an operator: refused, and its error text quotes nothing
        for sql in ("select 'a'::tsquery %%% 'select ''a''::tsquery, plainto_tsquery(''simple'', "
                    "last_name||'' ''||ssn) from patients where id=1'",
                    "select 'a'::tsquery %%% 'select ''a''::tsquery, (last_name||ssn)::regclass"
                    "::text::tsquery from patients where id=1'"):
            msgs = raw(ctx, [Q(sql)])
            check(any(t == "E" for t, _ in msgs), "%s: not refused" % sql)
            check(not _leaked_any_case(all_bytes(msgs)),
                  "%s leaked %r" % (sql, _leaked_any_case(all_bytes(msgs))))
            rc, out, err = agent_psql(ctx, sql)
            check(rc != 0 and "hoop:" in err, "%s: not refused by hoop: %r" % (sql, err))
            check(not _leaked_any_case(out + err), "%s leaked %r" % (sql, out + err))
        # over setval: a masked value stored in a sequence
        msgs = raw(ctx, [Q("select 'hostile_op_seq'::regclass @@@@ replace(ssn, '-', '')::bigint "
                           "from patients where id=1 limit 1")])
        check(any(t == "E" for t, _ in msgs), "@@@@ over setval was not refused")
        last = direct(ctx, "select last_value from hostile_op_seq")
        check(last != "123456789", "the sequence holds an SSN: %s" % last)
        # built-in operators on masked values stay as they were
        rc, out, err = agent_psql(ctx, "select 'x' ~~ 'x%', 1 + 2, '{\"a\":1}'::json->>'a'")
        check(rc == 0 and out.strip() == "t|3|1", "built-in operators refused: %r %r" % (out, err))
    finally:
        for op in made:
            direct(ctx, "drop operator if exists %s" % op)
        direct(ctx, "drop sequence if exists hostile_op_seq")
        refresh_catalog(ctx)


def test_casts_and_domains_that_run_user_code_are_judged(ctx):
    """Point 4: a cast runs code too. The agent's CREATE CAST and CREATE DOMAIN are held like
    CREATE FUNCTION; a cast that exists already (a superuser's CREATE CAST (text AS int4) WITH
    FUNCTION, a domain whose CHECK notifies) gets no masked value: `last_name::int4` and
    `last_name::d` are refused as writes of a masked value."""
    msgs = raw(ctx, [Q("create domain hostile_d as text "
                       "check (pg_notify('c', value) is not null)")], timeout=4)
    check(any(t in ("TIMEOUT", "E") for t, _ in msgs),
          "the agent's CREATE DOMAIN was answered as run: %r" % msgs[-3:])
    check(direct(ctx, "select count(*) from pg_type where typname = 'hostile_d'") == "0",
          "the agent's CREATE DOMAIN was not held")
    try:
        direct(ctx, "create function hostile_leak(text) returns int4 language sql as "
                    "$$ select pg_notify('c', $1); select 1 $$")
        direct(ctx, "create cast (text as int4) with function hostile_leak(text)")
        direct(ctx, "create domain hostile_d as text "
                    "check (length(pg_notify('c', value)::text) >= 0)")
        refresh_catalog(ctx)
        for sql in ("select last_name::int4 from patients where id=1 limit 1",
                    "select last_name::hostile_d from patients where id=2 limit 1",
                    "select cast(upper(last_name) as hostile_d) from patients where id=3 limit 1"):
            msgs = raw(ctx, [Q("listen c"), Q(sql)], ready=2)
            check(not _leaked_any_case(all_bytes(msgs)), "%s leaked %r (notifications %r)"
                  % (sql, _leaked_any_case(all_bytes(msgs)), _notifications(msgs)))
            check(any(t == "E" for t, _ in msgs), "%s was not refused" % sql)
        # casts that run no user code stay as they were
        rc, out, err = agent_psql(ctx, "select '7'::int8, 'x'::text")
        check(rc == 0 and out.strip() == "7|x", "built-in casts refused: %r %r" % (out, err))
    finally:
        direct(ctx, "drop cast if exists (text as int4)")
        direct(ctx, "drop function if exists hostile_leak(text)")
        direct(ctx, "drop domain if exists hostile_d")
        refresh_catalog(ctx)


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


FAKE_SCRAM_PG = r'''
import base64, socket, ssl, struct, sys, threading
host, port, logf, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
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
def msg(c):
    t = rd(c, 1)
    return t, rd(c, struct.unpack("!i", rd(c, 4))[0] - 4)
def handle(c):
    try:
        while True:
            body = rd(c, struct.unpack("!i", rd(c, 4))[0] - 4)
            if struct.unpack("!i", body[:4])[0] == 80877103:
                c.sendall(b"S")
                c = tls.wrap_socket(c, server_side=True)
                continue
            break
        parts = body[4:].split(b"\0")
        kv = dict(zip(parts[0::2], parts[1::2]))
        catalog = kv.get(b"application_name") == b"hoop-catalog"
        note(b"startup catalog=%d" % catalog)
        if not catalog:
            c.sendall(b"R" + struct.pack("!ii", 8, 0) + b"Z" + struct.pack("!i", 5) + b"I")
            while c.recv(65536):
                pass
            return
        # SCRAM, and the server proves nothing before the client's proof: salt and 1 iteration
        mechs = b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"
        c.sendall(b"R" + struct.pack("!ii", 8 + len(mechs), 10) + mechs)
        t, body = msg(c)
        note(b"client-first " + body)
        first = body.split(b"\0", 1)[1][4:]
        nonce = first.split(b"r=", 1)[1].split(b",")[0]
        sf = b"r=" + nonce + b"fake,s=" + base64.b64encode(b"salt" * 4) + b",i=1"
        c.sendall(b"R" + struct.pack("!ii", 8 + len(sf), 11) + sf)
        t, body = msg(c)
        note(b"client-final " + body)
    except Exception as e:
        note(b"ended " + repr(e).encode())
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
'''


def test_catalog_password_goes_only_to_a_pinned_server(ctx):
    """Issue 14 point 8 (review C): a SCRAM client sends its proof before the server proves
    anything, so a server the agent names could pick the salt and 1 iteration and crack the
    catalog password offline. hoopd now offers it only to a target pinned by verify-full with
    ca_file and tls_server_name: a TLS impostor of a `prefer` target asking for SCRAM never gets
    a client-final message (nor a client-first), and the catalog load says why it failed."""
    cl = Cleanup()
    try:
        pwfile = os.path.join(ctx.tmp, "catalog-pin.password")
        with open(pwfile, "w") as f:
            f.write("catalog-pin-secret\n")
        d = os.path.join(ctx.tmp, "fakecert")
        os.makedirs(d, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.4", "-keyout", d + "/k.pem", "-out", d + "/c.pem"],
                       check=True, capture_output=True)
        fakelog = os.path.join(ctx.tmp, "fake-scram.log")
        _server(cl, [PY, "-c", FAKE_SCRAM_PG, "127.0.0.4", str(ctx.pg.port), fakelog,
                     d + "/c.pem", d + "/k.pem"])
        # prefer and no CA: TLS without a certificate check, as to a server not pinned
        policy = shipped_policy(ctx, upstream_tls="prefer").replace(ctx.catpw, pwfile)
        pin = "    ca_file: %s\n    tls_server_name: 127.0.0.1\n" % ctx.pg.ca
        check(pin in policy, "the test policy's CA lines moved")
        policy = policy.replace(pin, "")
        hd, cg = _own_hoopd(cl, policy, "pin")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        fake = cg.popen(["psql", "host=127.0.0.4 port=%d user=postgres dbname=clinical "
                         "sslmode=disable" % ctx.pg.port, "-XAtc", "select 1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cl.push(lambda: (fake.kill(), fake.wait()))
        wait_for(lambda: os.path.exists(fakelog) and b"catalog=1" in open(fakelog, "rb").read(),
                 15, "hoopd's catalog load to reach the impostor")
        wait_for(lambda: "catalog of 127.0.0.4" in hd.log_text(), 25, "the catalog load to end")
        time.sleep(0.5)
        got = open(fakelog, "rb").read()
        check(b"client-final" not in got and b"client-first" not in got,
              "the impostor got a SCRAM exchange: %r" % got[-400:])
        check("pinned" in hd.log_text(), "the log does not say why no password was offered")
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
        # the ring buffer's report and the listener: quick, but a loaded machine under ASan
        # has taken more than 5 s (what is tested is that it comes, not how fast)
        wait_for(lambda: any(l["netns_inode"] == ino for l in hd.status()["listeners"]), 20,
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


HALFCLOSE_SERVER = r"""
import hashlib, socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
c.sendall(b"bye"); c.shutdown(socket.SHUT_WR)   # the database's side is done at once
time.sleep(float(sys.argv[2]))                  # and only then reads, slowly at first
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(65536)
    if not d: break
    h.update(d); n += len(d)
print(n, h.hexdigest(), flush=True)
"""

HALFCLOSE_AGENT = r"""
import hashlib, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
data = bytes(range(256)) * (int(sys.argv[2]) // 256)
s.sendall(data); s.shutdown(socket.SHUT_WR)     # everything sent, then FIN
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
print(len(data), hashlib.sha256(data).hexdigest(), got.decode(), flush=True)
"""


def test_agent_half_close_while_the_database_is_slow_loses_nothing(ctx):
    """Issue 14 point 10 (found while checking the hang-up fix): an agent that sends its last
    bytes and closes its sending side while the database has already finished and is slow to
    read must have every byte delivered. hoopd used to take epoll's HUP (the agent's FIN plus
    its own shut side) for a reset and kill the session with the agent's last bytes unread."""
    port = free_port()
    hd = Hoopd(ctx.cleanup, "version: 1\ntargets:\n  - name: raw\n    protocol: tcp\n"
               "    ports: [%d]\n" % port, tag="halfclose")
    ctx.hoopds.append(hd)
    hd.start()
    try:
        cg = Cgroup(ctx.cleanup, "halfclose")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        srv_path = os.path.join(ctx.tmp, "halfclose_server.py")
        cli_path = os.path.join(ctx.tmp, "halfclose_agent.py")
        with open(srv_path, "w") as f:
            f.write(HALFCLOSE_SERVER)
        with open(cli_path, "w") as f:
            f.write(HALFCLOSE_AGENT)
        size = 32 << 20
        srv = subprocess.Popen([PY, srv_path, str(port), "2"], stdout=subprocess.PIPE, text=True)
        try:
            check(srv.stdout.readline().strip() == "ready", "test server did not start")
            cli = cg.run([PY, cli_path, str(port), str(size)], timeout=120)
            check(cli.returncode == 0, "agent: %s" % cli.stderr[-500:])
            sent, sent_sha, reply = cli.stdout.split()
            got, got_sha = srv.communicate(timeout=120)[0].split()
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait()
        check(reply == "bye", "the agent got %r from the database" % reply)
        check(int(got) == int(sent) and got_sha == sent_sha,
              "the database got %s of the agent's %s bytes" % (got, sent))
        hd.ctl("detach", "--cgroup", cg.path, check=False)
    finally:
        hd.stop()
        ctx.hoopds.remove(hd)


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


def test_child_cgroups_share_their_attached_cgroups_caps(ctx):
    """Issue 14 point 10 (review B): the caps per cgroup count the attached cgroup with all its
    descendants, which an agent can create at will. With connections_per_cgroup: 5 and
    approvals.max_waiting: 2 on an attached capx, five sessions from capx/k1 leave none for
    capx/k2, and two statements held from k1 and k2 leave none for k3."""
    from hooptest import Cgroup
    pol = shipped_policy(ctx, extra="limits:\n  connections_per_cgroup: 5\n")
    pol = pol.replace("approvals:\n", "approvals:\n  max_waiting: 2\n", 1)
    hd = Hoopd(ctx.cleanup, pol, tag="capx")
    hd.start()
    ctx.hoopds.append(hd)
    procs, top = [], None
    try:
        # capx goes with its last child (Cgroup.remove takes the parent when it is empty)
        top = Cgroup(Cleanup(), "capx")
        kids = [Cgroup(ctx.cleanup, "capx/k%d" % i) for i in (1, 2, 3)]
        hd.ctl("attach", "--cgroup", top.path, "--owner", OWNER)
        path = agent_script(ctx, "hold.py", HOLD_AGENT)
        p = kids[0].popen([PY, path, "127.0.0.1", str(ctx.pg.port), "5", startup_packet().hex(),
                           "30"], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        line = p.stdout.readline()
        check(line.startswith("held 5"), "holding agent: %r" % line)
        r = kids[1].run(["psql", "-X", "-tA", dsn(ctx), "-c", "select 1"], timeout=30)
        check(r.returncode != 0 and "connections_per_cgroup" in r.stderr,
              "a sibling cgroup got its own budget: rc %d %s %s" % (r.returncode, r.stdout,
                                                                     r.stderr))
        p.kill()
        p.wait()
        wait_for(lambda: not hd.status().get("connections"), 15, "the held sessions to end")
        for i, k in enumerate(kids[:2]):
            sql = "select * from patients -- child %d" % i
            procs.append(k.popen(["psql", "-X", "-tA", dsn(ctx), "-c", sql],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            wait_for(lambda: any(a["statement"] == sql for a in
                                 json.loads(hd.ctl("approvals", "--json").stdout)["approvals"]),
                     15, "statement %d held" % i)
        r = kids[2].run(["psql", "-X", "-tA", dsn(ctx), "-c", "select * from patients -- k3"],
                        timeout=30)
        check(r.returncode != 0 and "too many statements" in r.stderr,
              "a third child parked a statement: rc %d %s %s" % (r.returncode, r.stdout,
                                                                 r.stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if top:
            hd.ctl("detach", "--cgroup", top.path, check=False)
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

AGENT_USER = "nobody"  # the agent's uid: root is the approver in this suite, and nobody approves
                       # a request from their own uid


def raw_agent(ctx, frames, ready=1):
    """The raw client as the agent (uid nobody), in the background: its process."""
    path = os.path.join(ctx.tmp, "rawpg.py")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(RAW_CLIENT)
    argv = ["runuser", "-u", AGENT_USER, "--", PY, path, "127.0.0.1", str(ctx.pg.port), str(ready),
            "60", startup_packet().hex()] + [fr.hex() for fr in frames]
    p = ctx.cg.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx.cleanup.push(lambda: p.poll() is None and p.kill())
    return p


def wait_held(ctx, sql):
    """The request holding exactly this text, as `hoopctl approvals --json` lists it."""
    key = sql.encode()

    def find():
        r = ctx.hd.ctl("approvals", "--json")
        for a in json.loads(r.stdout)["approvals"]:
            if a["statement"].encode() == key:
                return a
        return None
    return wait_for(find, 15, "the request holding %r" % sql[:40])


def held_query(ctx, sql):
    """A raw agent whose Query an approve rule holds: (the agent process, its request)."""
    p = raw_agent(ctx, [Q(sql)])
    return p, wait_held(ctx, sql)


def ctl_raw(ctx, req):
    """One JSON request on hoopd's control socket, as any client may send it (not hoopctl)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(ctx.hd.control)
    s.sendall(json.dumps(req).encode() + b"\n")
    out = b""
    while not out.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return json.loads(out)


def trail_lines(ctx):
    """Every line of the open segment, raw (bytes), so that a record split in two shows."""
    d = os.path.join(ctx.hd.state, "audit")
    plain = sorted(n for n in os.listdir(d) if re.fullmatch(r"seg-\d{8}\.jsonl", n))
    with open(os.path.join(d, plain[-1]), "rb") as f:
        return f.read().split(b"\n")[:-1]


def test_approvals_show_held_text_escaped_with_its_hash(ctx):
    """Point 13: a held statement with ESC, CR and bidi bytes in a comment is shown by `hoopctl
    approvals` escaped (\\x1b, \\r, \\u202e), with its byte count and SHA-256, and a long one is cut
    with a "more bytes" marker."""
    sql = ("select * from patients /*\r\x1b[2K\x1b[1A select count(*) from encounters \u202e"
           "\x1b[8m*/" + " " * 3000 + "-- tail")
    p, a = held_query(ctx, sql)
    r = ctx.hd.ctl("approvals")
    out = r.stdout
    for bad in ("\x1b", "\r", "\u202e"):
        check(bad not in out, "hoopctl approvals printed %r raw: %r" % (bad, out[:300]))
    check("\\x1b[2K" in out and "\\r" in out and "\\u202e" in out,
          "the control bytes are not shown escaped: %r" % out[:300])
    digest = hashlib.sha256(sql.encode()).hexdigest()
    check("%d bytes, sha256 %s" % (len(sql.encode()), digest) in out,
          "no byte count and hash of the held text: %r" % out[:400])
    check(re.search(r"\u2026 \d+ more bytes", out), "a long statement is not cut visibly: %r" % out[-300:])
    check(a["sha256"] == digest and a["bytes"] == len(sql.encode()), a)
    ctx.hd.ctl("deny", a["id"], "--reason", "test")
    p.wait(timeout=30)


def test_approvals_show_what_an_execute_runs(ctx):
    """Point 13: a held EXECUTE is shown with the text of the prepared statement it runs, as
    hoopd recorded it for the session (its name alone says nothing)."""
    prep = "PREPARE innocent AS select * from patients /* bulk */"
    p = raw_agent(ctx, [Q(prep), Q("EXECUTE innocent")], ready=2)
    a = wait_held(ctx, prep)
    ctx.hd.ctl("approve", a["id"], "--sha256", a["sha256"][:16])
    b = wait_held(ctx, "EXECUTE innocent")  # the agent's next Query, judged by what it runs
    runs = b.get("runs") or []
    check(runs and runs[0]["what"] == "prepared statement" and runs[0]["name"] == "innocent" and
          "select * from patients" in runs[0].get("text", ""), "runs: %r" % b)
    out = ctx.hd.ctl("approvals").stdout
    check("which runs prepared statement innocent: " in out and "select * from patients" in out,
          "hoopctl approvals does not show what EXECUTE runs: %r" % out)
    ctx.hd.ctl("deny", b["id"], "--reason", "test over")
    p.wait(timeout=30)


def test_approvals_show_how_hoopd_splits_the_held_text(ctx):
    """An approver reads SQL as it is usually lexed; with standard_conforming_strings off the
    session reads '\\' -- ' differently, and what looks like a comment is a second statement.
    The request says how hoopd split the text, which statement is held by which rule, and the
    setting the reading depends on."""
    text = ("select count(*) from patients where ssn like '123%' and notes <> '\\' -- '; "
            "do $$begin perform pg_sleep(0); end$$; --'")
    p = raw_agent(ctx, [Q("set standard_conforming_strings = off"), Q(text)], ready=2)
    a = wait_held(ctx, text)
    ra = a.get("read_as") or {}
    stmts = ra.get("statements") or []
    check(ra.get("standard_conforming_strings") == "off" and len(stmts) == 2,
          "the request does not say how hoopd reads the text: %r" % a)
    check(stmts[1]["text"].startswith("do $$") and stmts[1]["held"],
          "the DO block is not shown as a statement of its own: %r" % stmts)
    out = ctx.hd.ctl("approvals").stdout
    check("hoopd reads it as 2 statements (the session has standard_conforming_strings off"
          in out and "2. HELD by" in out and "do $$begin" in out,
          "hoopctl approvals does not show the split: %r" % out)
    ctx.hd.ctl("deny", a["id"], "--reason", "test over")
    p.wait(timeout=30)
    ev = [e for e in ctx.hd.events() if e.get("kind") == "approval_request"]
    check(ev and (ev[-1].get("read_as") or {}).get("statements"),
          "the approval_request record lacks the split: %r" % ev[-1:])


def test_approve_with_a_wrong_hash_is_refused_by_hoopd(ctx):
    """Point 13: hoopd itself refuses an approval whose SHA-256 does not match the held text (a
    request straight on the control socket, not only hoopctl), and runs it with the right one."""
    sql = "select * from patients -- approve me"
    p, a = held_query(ctx, sql)
    r = ctl_raw(ctx, {"cmd": "approve", "id": a["id"], "sha256": "deadbeefdeadbeef",
                      "reason": "", "scope": "once", "for_s": 0})
    check(not r.get("ok") and "does not match" in r.get("error", ""), "wrong hash: %r" % r)
    r = ctl_raw(ctx, {"cmd": "approve", "id": a["id"], "reason": "", "scope": "once", "for_s": 0})
    check(not r.get("ok") and "sha256" in r.get("error", ""), "no hash: %r" % r)
    time.sleep(0.3)
    check(p.poll() is None, "a refused approval ran the statement")
    r = ctx.hd.ctl("approve", a["id"], "--sha256", "0123456789", check=False)
    check(r.returncode == 1 and "does not match" in r.stderr, "hoopctl wrong hash: %r" % r.stderr)
    ctx.hd.ctl("approve", a["id"], "--sha256", a["sha256"][:16], "--reason", "right text")
    out, _ = p.communicate(timeout=30)
    check(b"\nD " in out or out.startswith(b"D "), "the approved statement did not run: %r" % out[-200:])
    refused = [e for e in ctx.hd.events() if e["kind"] == "approval_refused" and e.get("approval") == a["id"]]
    check(len(refused) >= 2 and any("does not match" in e["refused"] for e in refused), refused)


def test_held_approvals_are_capped_per_agent_cgroup(ctx):
    """Point 10 (held approvals, the operator's part): one agent cgroup parks at most
    approvals.max_waiting statements (16 by default); the next one is refused at once with a
    clear error and an approval_not_opened record, and nothing waits behind it."""
    held = []
    try:
        for i in range(16):
            held.append(held_query(ctx, "select * from patients where %d = %d" % (i, i)))
        t0 = time.time()
        msgs = raw(ctx, [Q("select * from patients where 99 = 99")], timeout=10)
        errs = [error_fields(b) for t, b in msgs if t == "E"]
        check(errs and errs[0].get("C") == "53400" and "too many statements" in errs[0].get("M", ""),
              "the 17th held statement: %r" % msgs[-3:])
        check(time.time() - t0 < 8, "the refusal waited")
        check([e for e in ctx.hd.events() if e["kind"] == "approval_not_opened"],
              "no approval_not_opened record")
    finally:
        for p, a in held:
            ctx.hd.ctl("deny", a["id"], "--reason", "test over", check=False)
            p.wait(timeout=30)


def test_a_second_uid_cannot_exhaust_the_control_slots(ctx):
    """Point 14: a local user who may not control hoopd holds as many control connections as it
    can for seconds; root's hoopctl still gets answers every time."""
    os.chmod(ctx.hd.dir, 0o755)  # the socket is reachable by every local user, as deployed
    ctx.cleanup.push(os.chmod, ctx.hd.dir, 0o700)
    st = os.stat(ctx.hd.control)
    check(st.st_mode & 0o777 == 0o666, "control socket mode %o" % (st.st_mode & 0o777))
    hog = (
        "import socket, sys, time\n"
        "socks = []\n"
        "end = time.time() + 8\n"
        "while time.time() < end:\n"
        "    socks = [s for s in socks if s.fileno() >= 0]\n"
        "    while len(socks) < 200:\n"
        "        s = socket.socket(socket.AF_UNIX)\n"
        "        try:\n"
        "            s.connect(sys.argv[1])\n"
        "        except OSError:\n"
        "            break\n"
        "        socks.append(s)\n"
        "    time.sleep(0.2)\n"
        "    for s in list(socks):\n"
        "        s.setblocking(False)\n"
        "        try:\n"
        "            if s.recv(1) == b'':\n"
        "                s.close()\n"
        "        except BlockingIOError:\n"
        "            pass\n"
        "        except OSError:\n"
        "            s.close()\n")
    p = subprocess.Popen(["runuser", "-u", AGENT_USER, "--", PY, "-c", hog, ctx.hd.control])
    ctx.cleanup.push(lambda: p.poll() is None and p.kill())
    time.sleep(1.5)
    fails = []
    for i in range(8):
        r = ctx.hd.ctl("ping", check=False)
        if r.returncode != 0:
            fails.append(r.stderr.strip())
        time.sleep(0.6)
    p.wait(timeout=30)
    check(not fails, "root's hoopctl was locked out %d of 8 times: %r" % (len(fails), fails[:2]))


def test_scope_with_quotes_and_newline_stays_one_valid_record(ctx):
    """Point 14: an approver's scope with quotes and a newline, and a reason of 5000 bytes,
    leave every line of the trail one valid JSON record (the reason cut, and said so)."""
    before = len(trail_lines(ctx))
    p, a = held_query(ctx, "select * from patients -- scope")
    evil = 'once","decision":"denied"\n{"forged":1'
    r = ctl_raw(ctx, {"cmd": "approve", "id": a["id"], "sha256": a.get("sha256", ""), "scope": evil,
                      "reason": "x", "for_s": 0})
    check(not r.get("ok"), "an invalid scope was taken: %r" % r)
    r = ctl_raw(ctx, {"cmd": "deny", "id": a["id"], "reason": "r" * 5000, "scope": evil,
                      "for_s": 0})
    check(not r.get("ok"), "an invalid scope was taken on deny: %r" % r)
    ctx.hd.ctl("deny", a["id"], "--reason", "\"quoted\"\nline two " + "y" * 5000)
    p.wait(timeout=30)
    lines = trail_lines(ctx)[before:]
    for l in lines:
        try:
            rec = json.loads(l)
        except ValueError:
            check(False, "a trail line is not one JSON record: %r" % l[:200])
        check("forged" not in rec, "a field was injected: %r" % l[:200])
    dec = [json.loads(l) for l in lines if b'"approval_decision"' in l]
    dec = [d for d in dec if d.get("approval") == a["id"] and d.get("decision") == "denied"]
    check(dec and dec[0]["reason_truncated"] and len(dec[0]["reason"]) == 512 and
          dec[0]["reason_bytes"] > 5000, "long reason: %r" % [str(d)[:200] for d in dec])
    refused = [json.loads(l) for l in lines if b'"approval_refused"' in l]
    check(any(x.get("refused", "").startswith("scope") for x in refused), refused)


def test_fingerprint_grants_never_cover_code(ctx):
    """Point 13 (review A, L6): hoopd refuses `approve --scope fingerprint` for statements whose
    meaning lives in a string or in a name defined elsewhere (DO, CREATE FUNCTION, EXECUTE, a
    function given a string) with an error naming --scope once; after the approver tried, another
    DO block with other code is held again, not run under the first one's grant."""
    probe = "DO $$ begin perform 1; end $$"
    cases = [probe,
             "CREATE FUNCTION fp_f(t text) RETURNS text LANGUAGE sql AS 'select t'",
             "select upper('x'), * from patients"]
    for sql in cases:
        p, a = held_query(ctx, sql)
        r = ctx.hd.ctl("approve", a["id"], "--sha256", a["sha256"], "--scope", "fingerprint",
                       check=False)
        ctx.hd.ctl("deny", a["id"], "--reason", "test over", check=False)
        p.wait(timeout=30)
        check(a.get("fingerprint_refused"), "approvals --json does not say so: %r" % a)
        check(r.returncode != 0 and "--scope once" in r.stderr,
              "a fingerprint grant was given for %r: %r" % (sql, r.stdout + r.stderr))
    leak = ("DO $$ begin create table fp_leak as select translate(ssn,'0123456789','abcdefghij') s "
            "from patients; end $$")
    p = raw_agent(ctx, [Q(leak)])
    b = None
    try:
        b = wait_held(ctx, leak)
    finally:
        if b:
            ctx.hd.ctl("deny", b["id"], "--reason", "test over", check=False)
        p.wait(timeout=30)
        direct(ctx, "drop table if exists fp_leak")
    # EXECUTE: a grant for `EXECUTE s1` would cover whatever s1 is later
    prep = "PREPARE fp_s1 AS select * from patients /* fp */"
    p = raw_agent(ctx, [Q(prep), Q("EXECUTE fp_s1")], ready=2)
    a = wait_held(ctx, prep)
    ctx.hd.ctl("approve", a["id"], "--sha256", a["sha256"])
    b = wait_held(ctx, "EXECUTE fp_s1")
    r = ctx.hd.ctl("approve", b["id"], "--sha256", b["sha256"], "--scope", "fingerprint",
                   check=False)
    check(r.returncode != 0 and "--scope once" in r.stderr,
          "a fingerprint grant was given for EXECUTE: %r" % (r.stdout + r.stderr))
    ctx.hd.ctl("deny", b["id"], "--reason", "test over", check=False)
    p.wait(timeout=30)


def test_approve_needs_sixteen_hex_digits_of_the_hash(ctx):
    """Point 13 (review A): hoopd takes an approval only with 16 or more hex digits of the held
    text's SHA-256 (with 8, an agent can search 2^32 variants for a prefix the approver saw)."""
    sql = "select * from patients -- sixteen"
    p, a = held_query(ctx, sql)
    for n in (8, 12, 15):
        r = ctl_raw(ctx, {"cmd": "approve", "id": a["id"], "sha256": a["sha256"][:n], "reason": "",
                          "scope": "once", "for_s": 0})
        check(not r.get("ok") and "sha256" in r.get("error", ""), "%d digits taken: %r" % (n, r))
    time.sleep(0.3)
    check(p.poll() is None, "a short prefix ran the statement")
    ctx.hd.ctl("approve", a["id"], "--sha256", a["sha256"][:16])
    out, _ = p.communicate(timeout=30)
    check(b"\nD " in out or out.startswith(b"D "), "16 digits did not run it: %r" % out[-200:])


def restart(ctx):
    check(ctx.hd.stop() == 0, "hoopd did not stop cleanly")
    ctx.hd.start()


def crash(ctx):
    """SIGKILL hoopd, on purpose: its exit is not one the suite's clean-stop check counts."""
    ctx.hd.stop(signal.SIGKILL)
    if ctx.hd.exit_codes and ctx.hd.exit_codes[-1] == -signal.SIGKILL:
        ctx.hd.exit_codes.pop()


def read_segment(path):
    """A segment's lines, plain or (once hoopd's compressor took it) gzip'd."""
    import gzip
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        with gzip.open(path + ".gz", "rb") as f:
            data = f.read()
    return data.split(b"\n")[:-1]


def test_symlinks_in_the_state_directory_are_not_followed(ctx):
    """Point 15: a symlink planted at the attachment record's .tmp name, at the next
    compressed segment's .gz.tmp name and at audit.pub is not followed: the files they point to
    stay intact."""
    victim = os.path.join(ctx.tmp, "victim-attach")
    with open(victim, "w") as f:
        f.write("precious\n")
    cgid = [a["cgroup_id"] for a in ctx.hd.status()["attachments"] if a["cgroup"] == ctx.cg.path][0]
    tmp = os.path.join(ctx.hd.state, "attachments", "%d.json.tmp" % cgid)
    os.symlink(victim, tmp)
    ctx.hd.ctl("attach", "--cgroup", ctx.cg.path, "--owner", OWNER)  # rewrites the record
    with open(victim) as f:
        check(f.read() == "precious\n", "the attachment .tmp symlink was followed")
    check(not os.path.islink(tmp), "the planted link is still there")
    # The open segment is compressed when hoopd stops: plant a link at its .gz.tmp first.
    victim2 = os.path.join(ctx.tmp, "victim-audit")
    with open(victim2, "w") as f:
        f.write("precious\n")
    d = os.path.join(ctx.hd.state, "audit")
    seg = sorted(n for n in os.listdir(d) if re.fullmatch(r"seg-\d{8}\.jsonl", n))[-1]
    os.symlink(victim2, os.path.join(d, seg + ".gz.tmp"))
    # audit.pub, which hoopd rewrites at start when it is not the public key: replaced by a
    # file of its own, the link's target untouched.
    victim3 = os.path.join(ctx.tmp, "victim-pub")
    with open(victim3, "w") as f:
        f.write("precious\n")
    pub = os.path.join(ctx.hd.state, "audit.pub")
    os.unlink(pub)
    os.symlink(victim3, pub)
    restart(ctx)
    wait_for(lambda: os.path.exists(os.path.join(d, seg + ".gz")), 15, "the segment compressed")
    with open(victim2) as f:
        check(f.read() == "precious\n", "the .gz.tmp symlink was followed")
    with open(victim3) as f:
        check(f.read() == "precious\n", "the audit.pub symlink was followed")
    check(not os.path.islink(pub) and "BEGIN PUBLIC KEY" in open(pub).read(), "audit.pub was not rewritten")
    r = subprocess.run([HOOPCTL, "verify", "--state-dir", ctx.hd.state], capture_output=True, text=True)
    check(r.returncode == 0, "the trail does not verify after the restart: %s" % r.stdout)


def test_backdated_segment_mtimes_do_not_trigger_retention(ctx):
    """Point 15: retention (90d in the shipped policy) goes by the trail's own timestamps: closed
    segments whose files are backdated by years are kept, and no retention record is written."""
    d = os.path.join(ctx.hd.state, "audit")
    restart(ctx)  # closes a segment, so that there is one to backdate
    closed = sorted(n for n in os.listdir(d) if n.endswith(".jsonl.gz"))
    check(closed, "no closed segment")
    old = time.time() - 10 * 365 * 86400
    for n in closed:
        os.utime(os.path.join(d, n), (old, old))
    restart(ctx)  # retention runs on hoopd's first housekeeping round
    time.sleep(3)
    left = [n for n in closed if os.path.exists(os.path.join(d, n))]
    check(left == closed, "retention removed backdated segments: %r" % sorted(set(closed) - set(left)))
    check(not [e for e in ctx.hd.events() if e["kind"] == "retention"], "a retention record was written")


def test_an_edited_tail_is_not_sealed_with_a_valid_checkpoint(ctx):
    """Point 15: records after the last checkpoint, rewritten (chain and all) while hoopd was
    down after a crash, are not vouched for by the checkpoint hoopd closes the segment with at its
    next start: hoopctl verify says so. A tail whose chain does not hold is not sealed at all."""
    rc, out, err = agent_psql(ctx, "select 'tail-marker-1'")
    check(rc == 0, err)
    d = os.path.join(ctx.hd.state, "audit")
    crash(ctx)
    seg = sorted(n for n in os.listdir(d) if re.fullmatch(r"seg-\d{8}\.jsonl", n))[-1]
    p = os.path.join(d, seg)
    with open(p, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    i = max(k for k, l in enumerate(lines) if b"tail-marker-1" in l)
    # Rewrite that record and re-chain the rest, as anyone could without the key.
    lines[i] = lines[i].replace(b"tail-marker-1", b"tail-marker-X")
    for k in range(i + 1, len(lines)):
        prev = hashlib.sha256(lines[k - 1]).hexdigest().encode()
        lines[k] = re.sub(rb'^(\{"seq":\d+,"prev":")[0-9a-f]{64}', lambda m: m.group(1) + prev, lines[k])
    check(not any(b'"kind":"checkpoint"' in l for l in lines[i:]), "a checkpoint follows the record")
    with open(p, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    ctx.hd.start()
    r = subprocess.run([HOOPCTL, "verify", "--state-dir", ctx.hd.state], capture_output=True, text=True)
    check("does not vouch" in r.stdout and seg in r.stdout,
          "verify does not say the recovered tail is unvouched: %r" % r.stdout[-600:])
    # A tail whose own chain is broken: never sealed, and the next segment says so.
    rc, out, err = agent_psql(ctx, "select 'tail-marker-2'")
    check(rc == 0, err)
    crash(ctx)
    seg = sorted(n for n in os.listdir(d) if re.fullmatch(r"seg-\d{8}\.jsonl", n))[-1]
    p = os.path.join(d, seg)
    with open(p, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    check(len(lines) >= 2, "too few records in %s" % seg)
    lines[-2] = lines[-2][:-1] + b',"x":1}'
    with open(p, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    ctx.hd.start()
    after = read_segment(p)
    check(after == lines, "the broken tail was changed (sealed?)")
    check([e for e in ctx.hd.events() if e["kind"] == "audit_tail_unverified"],
          "no audit_tail_unverified record")
    r = subprocess.run([HOOPCTL, "verify", "--state-dir", ctx.hd.state], capture_output=True, text=True)
    check(r.returncode == 1 and seg in r.stdout, "verify: %r" % r.stdout[-400:])


def test_an_edited_attachment_record_stops_hoopd_and_keeps_the_cgroup_attached(ctx):
    """Point 15: an attachment record edited to another cgroup path makes hoopd refuse to start,
    naming the record; the cgroup stays attached (its agents are refused, never direct); with the
    record restored hoopd starts and carries the attachment over."""
    cgid = [a["cgroup_id"] for a in ctx.hd.status()["attachments"] if a["cgroup"] == ctx.cg.path][0]
    rec = os.path.join(ctx.hd.state, "attachments", "%d.json" % cgid)
    ctx.hd.stop()
    with open(rec) as f:
        orig = f.read()
    with open(rec, "w") as f:
        f.write(orig.replace(ctx.cg.path, ctx.cg.path + "-gone"))
    rc = ctx.hd.start(expect_fail=True)
    check(rc != 0, "hoopd started on an edited attachment record")
    check("%d.json does not match its cgroup" % cgid in ctx.hd.log_text(), "the log does not name the record")
    check(os.path.isdir(os.path.join(ctx.hd.pin_root, "cgroups", str(cgid))),
          "the cgroup was detached")
    rc, out, err = agent_psql(ctx, "select 'went direct'", timeout=20)
    check(rc != 0 and "went direct" not in out, "an agent reached the database around hoopd")
    with open(rec, "w") as f:
        f.write(orig)
    ctx.hd.start()
    check(any(a["cgroup_id"] == cgid for a in ctx.hd.status()["attachments"]), "not carried over")
    rc, out, err = agent_psql(ctx, "select 'through hoopd'")
    check(rc == 0 and "through hoopd" in out, err)


def test_policy_test_agrees_with_hoopd_on_approve_without_approvers(ctx):
    """Point 18: with no approvers named, `hoopctl policy test` shows the verdict hoopd gives (a
    refusal, with hoopd's message), not `approve`."""
    pol = os.path.join(ctx.tmp, "no-approvers.yaml")
    with open(pol, "w") as f:
        f.write(shipped_policy(ctx).replace('approvers: ["root"]', "approvers: []"))
    sql = "select * from patients"
    r = subprocess.run([HOOPCTL, "policy", "test", pol, "--sql", sql, "--json"], capture_output=True,
                       text=True, check=True)
    ctl = json.loads(r.stdout.splitlines()[0])
    check(ctx.hd.stop() == 0, "hoopd did not stop cleanly")  # one hoopd at a time
    try:
        hd = Hoopd(ctx.cleanup, "version: 1\n", tag="noappr")
        hd.write_policy(open(pol).read())
        hd.start()
        ctx.hoopds.append(hd)
        cg = Cgroup(ctx.cleanup, "agents-noappr")
        ctx.cleanup.push(lambda: hd.proc and hd.ctl("detach", "--cgroup", cg.path, check=False))
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        r = cg.run(["psql", "-X", "-tA", dsn(ctx), "-c", sql], timeout=30)
        hd.ctl("detach", "--cgroup", cg.path)
        check(hd.stop() == 0, "the second hoopd did not stop cleanly")
    finally:
        ctx.hd.start()
    check(r.returncode != 0 and "names no approvers" in r.stderr, "hoopd: %r" % r.stderr)
    check(ctl["verdict"] == "deny", "policy test says %r where hoopd refuses" % ctl["verdict"])
    check(ctl["message"] in r.stderr, "messages differ: %r vs %r" % (ctl["message"], r.stderr))



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


def catalog_loaders(hd):
    """hoopd's catalog loader processes: pid -> /proc/PID/status as a dict."""
    out = {}
    for pid in children(hd.proc.pid, b"--catalog-loader"):
        try:
            out[pid] = proc_status(pid)
        except OSError:
            continue
    return out


def test_catalog_is_read_by_an_unprivileged_process_of_its_own(ctx):
    """Issue 15: libpq parses what a server the agent may have picked answers, so it runs in a
    process of its own, exec'd fresh for each load (no key, no descriptor of hoopd's, nothing
    left from another server's job), as an unprivileged user with no capability, no_new_privs
    and a seccomp filter. Seen while it waits on an impostor that never answers; killed, its
    job fails alone, and the real database's catalog is read by a new one, which does not
    outlive its job."""
    cl = Cleanup()
    try:
        fakelog = os.path.join(ctx.tmp, "fake-hang-loader.log")
        _server(cl, [PY, "-c", FAKE_PG, "hang", "127.0.0.3", str(ctx.pg.port), fakelog])
        hd, cg = _own_hoopd(cl, shipped_policy(ctx, upstream_tls="prefer"), "ldr")
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        fake = cg.popen(["psql", "host=127.0.0.3 port=%d user=postgres dbname=clinical "
                         "sslmode=disable" % ctx.pg.port, "-XAtc", "select 1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cl.push(lambda: (fake.kill(), fake.wait()))
        wait_for(lambda: os.path.exists(fakelog) and b"catalog=1" in open(fakelog, "rb").read(),
                 15, "hoopd's catalog load to reach the impostor")
        loaders = wait_for(lambda: catalog_loaders(hd), 5, "the loader of that load")
        for pid, st in loaders.items():
            check(all(u != "0" for u in st["Uid"].split()) and
                  all(g != "0" for g in st["Gid"].split()),
                  "loader %d runs as root: %r %r" % (pid, st["Uid"], st["Gid"]))
            for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
                check(int(st[cap], 16) == 0, "loader %d %s is %s" % (pid, cap, st[cap]))
            check(st["NoNewPrivs"] == "1" and st["Seccomp"] == "2",
                  "loader %d: NoNewPrivs %s Seccomp %s" % (pid, st["NoNewPrivs"], st["Seccomp"]))
            fds = os.listdir("/proc/%d/fd" % pid)
            check(len(fds) <= 6, "loader %d holds %d descriptors: %r" % (pid, len(fds), fds))
            os.kill(pid, signal.SIGKILL)
        r = cg.run(["psql", "-X", "-tA", dsn(ctx), "-c",
                    "select id, ssn from patients order by id limit 3"], timeout=40)
        check(r.returncode == 0 and not leaked(r.stdout), "masked read: %r %r" % (r.stdout, r.stderr))
        wait_for(lambda: "catalog of 127.0.0.1:%d/clinical read as" % ctx.pg.port in hd.log_text(),
                 20, "the real database's catalog, read by a new loader")
        wait_for(lambda: not (set(catalog_loaders(hd)) - set(loaders)), 10,
                 "the new loader to end with its job")
        check(hd.stop() == 0, "hoopd did not stop cleanly")
        _stop_clean(cl)
    except BaseException:
        _show_logs(cl)
        raise
    finally:
        cl.run()


def test_prepared_text_is_masked_as_the_server_read_it(ctx):
    """A prepared statement runs what the server lexed at PREPARE. hoopd plans its result from
    the stored text: read under the standard_conforming_strings of that moment, not of the
    EXECUTE's, both ways round (the text's meaning flips between a column and a constant)."""
    body_on = ("select '\\' as a, last_name || '' as b -- ' as a, 'x' as b\n"
               " from patients limit 100")
    out = raw_staged(ctx, [([Q("prepare leak_on as " + body_on)], "Z", 1),
                           ([Q("set standard_conforming_strings = off")], "Z", 1),
                           ([Q("execute leak_on")], "Z", 1)])
    msgs = sum(out.values(), [])
    check(data_rows(msgs), "the EXECUTE returned no rows: %r" % msgs[-6:])
    check(not leaked(all_bytes(msgs)), "PHI through a PREPARE read under 'on', run under 'off': %r"
          % leaked(all_bytes(msgs)))
    body_off = ("select '\\' as a, 1::text as b -- ' as a, last_name || '' as b\n"
                " from patients limit 100")
    out = raw_staged(ctx, [([Q("set standard_conforming_strings = off")], "Z", 1),
                           ([Q("prepare leak_off as " + body_off)], "Z", 1),
                           ([Q("set standard_conforming_strings = on")], "Z", 1),
                           ([Q("execute leak_off")], "Z", 1)])
    msgs = sum(out.values(), [])
    check(data_rows(msgs), "the EXECUTE returned no rows: %r" % msgs[-6:])
    check(not leaked(all_bytes(msgs)), "PHI through a PREPARE read under 'off', run under 'on': %r"
          % leaked(all_bytes(msgs)))


def test_a_text_without_statements_is_recorded_under_its_own_number(ctx):
    """A Query of only comments is forwarded (the server answers it empty), so it is on record,
    and its completion is filed under its own statement number, never under the statement
    before it (which here was denied: it must not read as if it completed)."""
    mark = "/* nothing here %d */" % os.getpid()
    msgs = raw(ctx, [Q("drop table patients"), Q(mark), Q("-- nothing\n;;")], ready=3)
    check(sum(1 for t, _ in msgs if t == "I") == 2, "two empty answers: %r" % msgs)
    time.sleep(1.5)
    ev = ctx.hd.events()
    blank = [e for e in ev if e.get("kind") == "statement" and e.get("text") == mark]
    check(len(blank) == 1 and blank[0].get("verdict") == "allow",
          "the comment-only Query on record once, allowed: %r" % blank)
    sess = blank[0]["session"]
    stmts = {e["stmt"]: e for e in ev if e.get("kind") == "statement" and e.get("session") == sess}
    denied = [n for n, e in stmts.items() if e.get("verdict") == "deny"]
    check(denied, "the DROP denied on record: %r" % stmts)
    done = [e for e in ev if e.get("kind") == "complete" and e.get("session") == sess]
    check(done and all(e.get("stmt") in stmts and stmts[e["stmt"]].get("verdict") == "allow"
                       for e in done),
          "every completion under an allowed statement of its own: %r" % done)
    check(not any(e.get("stmt") in denied for e in done), "a denied statement reads as completed")


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
