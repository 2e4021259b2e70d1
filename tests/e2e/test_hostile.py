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
