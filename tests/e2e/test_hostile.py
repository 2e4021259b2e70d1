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
        ("select nextval(last_name) from patients where id = 3 limit 1", "42P01"),
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
    string and runs what follows, where hoop (parsing as PostgreSQL does by default) sees a
    comment; SJIS can likewise hide a quote. Such a SET is refused like unparseable text, so the
    hidden DROP never runs unjudged."""
    direct(ctx, "create table if not exists edges_victim (id int)")
    try:
        for sql in ("set standard_conforming_strings = off",
                    "set client_encoding = 'SJIS'"):
            rc, out, err = agent_psql(ctx, sql)
            check(rc != 0 and "hoop:" in err, "%s: not refused: rc=%d %r" % (sql, rc, err))
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
