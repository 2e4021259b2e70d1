#!/usr/bin/python3
"""End-to-end tests of policy enforcement: policies/hipaa-agents.yaml in front of a real
PostgreSQL, agents using psql, psycopg (extended protocol, pipelines) and raw protocol messages.
Each denied statement must not have run (its effect is absent), the agent must get ERROR 42501
with the rule's message, the session must stay usable, and in a transaction the client's and the
server's state must agree.

Usage (as root): tests/e2e/test_policy.py [NAME-SUBSTRING ...]
"""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import attach_agents, teardown, check_clean_stop, Cgroup, Cleanup, Hoopd, Postgres, check, run_tests, ROOT  # noqa: E402

PY = "/usr/bin/python3"


class Ctx:
    pass


def hipaa(port, extra=""):
    with open(os.path.join(ROOT, "policies", "hipaa-agents.yaml")) as f:
        text = f.read()
    return text.replace("ports: [5432]", "ports: [%d]" % port).replace(
        "upstream_tls: verify-full", "upstream_tls: disable") + extra


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.pg = Postgres(ctx.cleanup)
    ctx.pg.psql_direct("create database clinical")
    for sql in ("create table patients (id int primary key, name text, ssn text)",
                "insert into patients select g, 'P' || g, lpad(g::text, 9, '0') from generate_series(1, 50) g",
                "create table notes (id int, body text)",
                "insert into notes select g, 'n' || g from generate_series(1, 10) g"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical",
                        "-qXc", sql], check=True, capture_output=True)
    ctx.hd = Hoopd(ctx.cleanup, hipaa(ctx.pg.port))
    ctx.hoopds = [ctx.hd]
    ctx.hd.start()
    ctx.cg = attach_agents(ctx, "dave@example.org")
    return ctx



def direct(ctx, sql):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical",
                           "-tAXc", sql], check=True, capture_output=True, text=True).stdout.strip()


def agent_psql(ctx, *cmds, script=None):
    argv = ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical", "-tAX"]
    for c in cmds:
        argv += ["-c", c]
    return ctx.cg.run(argv, input=script)


def events(ctx):
    return ctx.hd.events()


def test_denied_statement_did_not_run_and_session_goes_on(ctx):
    r = agent_psql(ctx, "drop table patients", "select count(*) from patients")
    check("ERROR:  hoop: destructive DDL is not allowed for agents" in r.stderr, r.stderr)
    check(r.stdout.strip() == "50", "the session did not go on: %r" % r.stdout)
    check(direct(ctx, "select count(*) from patients") == "50", "the table was dropped")
    ev = [e for e in events(ctx) if e["kind"] == "statement" and e["text"] == "drop table patients"]
    check(ev and ev[-1]["verdict"] == "deny" and ev[-1]["reason"] == "no-destructive-ddl", ev)
    err = [e for e in events(ctx) if e["kind"] == "error" and e.get("from_hoopd")]
    check(err and err[-1]["sqlstate"] == "42501", err)


def test_evasive_spellings_are_denied(ctx):
    for sql in ('DrOp /* hi */ TABLE "patients"',
                "drop table public.patients cascade",
                "with gone as (delete from patients returning *) select count(*) from gone",
                "explain analyze delete from patients",
                "update patients set ssn = null",
                "copy patients to program 'cat > /tmp/x'",
                "select pg_catalog.pg_read_file('/etc/hostname')",
                "select * from notes, lateral (select pg_ls_dir('.')) d",
                "set role postgres",
                "prepare p1 as delete from patients"):
        r = agent_psql(ctx, sql)
        check("ERROR:  hoop:" in r.stderr, "not denied: %s\n%s" % (sql, r.stderr + r.stdout))
    # text the grammar rejects is refused with the grammar's own error (see below)
    r = agent_psql(ctx, "selec * fro patients")
    check("ERROR:  syntax error at or near" in r.stderr, r.stderr + r.stdout)
    check(direct(ctx, "select count(*), count(ssn) from patients") == "50|50", "a denied statement ran")


def test_multi_statement_any_deny_none_runs(ctx):
    r = agent_psql(ctx, "insert into notes values (100, 'x'); drop table notes; insert into notes values (101, 'y')")
    check("destructive DDL" in r.stderr, r.stderr)
    check(direct(ctx, "select count(*) from notes where id >= 100") == "0", "part of a denied query ran")


def test_deny_inside_transaction_client_and_server_agree(ctx):
    code = r"""
import psycopg, sys
c = psycopg.connect(sys.argv[1])
c.execute("insert into notes values (200, 'in tx')")
try:
    c.execute("truncate notes")
    print("not denied")
except psycopg.errors.InsufficientPrivilege as e:
    print("denied", str(e).strip())
print("client", c.info.transaction_status.name)
try:
    c.execute("select 1")
    print("server open")
except psycopg.errors.InFailedSqlTransaction:
    print("server failed")
c.rollback()
print("after", c.execute("select count(*) from notes where id = 200").fetchone()[0])
"""
    r = ctx.cg.run([PY, "-c", code, "host=127.0.0.1 port=%d user=postgres dbname=clinical" % ctx.pg.port])
    lines = r.stdout.splitlines()
    check(lines and lines[0].startswith("denied hoop: destructive DDL"), r.stdout + r.stderr)
    check("client INERROR" in lines and "server failed" in lines, "states disagree: %r" % lines)
    check("after 0" in lines, lines)
    check(direct(ctx, "select count(*) from notes") == "10", "truncate ran")


def test_extended_protocol_and_pipeline(ctx):
    code = r"""
import psycopg, sys
c = psycopg.connect(sys.argv[1], autocommit=True)
out = []
try:
    c.execute("delete from notes")
except psycopg.errors.InsufficientPrivilege as e:
    out.append("denied:" + str(e).strip())
out.append("usable:%d" % c.execute("select %s::int + 1", [1]).fetchone()[0])
try:
    with c.pipeline() as p:
        a = c.execute("insert into notes values (%s, 'pipe')", [300])
        p.sync()  # its own implicit transaction: an error after the Sync cannot undo it
        b = c.execute("update notes set body = 'gone'")
        d = c.execute("insert into notes values (%s, 'pipe')", [301])
except psycopg.errors.InsufficientPrivilege as e:
    out.append("pipeline-denied:" + str(e).strip())
out.append("usable2:%d" % c.execute("select 2").fetchone()[0])
print("\n".join(out))
"""
    r = ctx.cg.run([PY, "-c", code, "host=127.0.0.1 port=%d user=postgres dbname=clinical" % ctx.pg.port])
    out = r.stdout.splitlines()
    check("denied:hoop: UPDATE and DELETE need a WHERE clause" in out and "usable:2" in out, r.stdout + r.stderr)
    check(any(l.startswith("pipeline-denied:hoop: UPDATE and DELETE") for l in out) and "usable2:2" in out, out)
    check(direct(ctx, "select count(*) from notes where body = 'gone'") == "0", "the pipelined UPDATE ran")
    check(direct(ctx, "select count(*) from notes where id between 1 and 10") == "10", "a DELETE ran")
    # The batch before the denied one ran; after the error the server skipped to the Sync, as it
    # does for any error, so the insert queued behind the denied UPDATE did not run.
    check(direct(ctx, "select count(*) from notes where id = 300") == "1", "earlier pipelined insert lost")
    check(direct(ctx, "select count(*) from notes where id = 301") == "0", "ran past the error before Sync")


def test_statement_pipelined_behind_the_startup_is_judged(ctx):
    # Found by fuzzing: with trust authentication the server is ready right after the startup
    # packet; a Query sent in the same write must still be judged, not relayed with the login.
    code = r"""
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0clinical\0\0"
q = b"drop table notes\0"
s.sendall(struct.pack("!i", len(body) + 4) + body + b"Q" + struct.pack("!i", len(q) + 4) + q)
buf = b""
while buf.count(b"Z\x00\x00\x00\x05") < 2:
    d = s.recv(65536)
    if not d: break
    buf += d
print(b"42501" in buf, b"destructive DDL" in buf)
"""
    r = ctx.cg.run([PY, "-c", code, str(ctx.pg.port)])
    check(r.stdout.split() == ["True", "True"], r.stdout + r.stderr)
    check(direct(ctx, "select count(*) from notes") != "", "the table is gone")


def test_function_call_message_denied(ctx):
    code = r"""
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0clinical\0\0"
s.sendall(struct.pack("!i", len(body) + 4) + body)
def until_ready():
    buf = b""
    while not buf.endswith(b"Z\x00\x00\x00\x05I"):
        d = s.recv(65536)
        if not d: break
        buf += d
    return buf
until_ready()
# FunctionCall: oid 2624 is pg_read_file(text) in PostgreSQL 15; one text argument.
arg = b"/etc/hostname"
f = struct.pack("!ih", 2624, 1) + struct.pack("!h", 0) + struct.pack("!h", 1) + struct.pack("!i", len(arg)) + arg + struct.pack("!h", 0)
s.sendall(b"F" + struct.pack("!i", len(f) + 4) + f)
r = until_ready()
print(r[:1].decode(), b"42501" in r, b"FunctionCall" in r or b"function" in r)
q = b"select 7\0"
s.sendall(b"Q" + struct.pack("!i", len(q) + 4) + q)
print(until_ready()[:1].decode())
"""
    r = ctx.cg.run([PY, "-c", code, str(ctx.pg.port)])
    check(r.stdout.split() == ["E", "True", "True", "T"], r.stdout + r.stderr)


def test_execute_judged_by_the_policy_in_force(ctx):
    # PREPARE is allowed; the policy then changes (psql runs the reload between the two
    # statements, on the same session); EXECUTE, the session's next statement, obeys the new one.
    hoopctl = os.path.join(os.path.dirname(ctx.hd.proc.args[0]), "hoopctl")
    nxt = ctx.hd.policy + ".next"
    with open(nxt, "w") as f:
        f.write(hipaa(ctx.pg.port, """
  - name: no-notes-writes
    action: deny
    match: {tables_written: [notes]}
    message: "hoop: notes are read-only now"
"""))
    script = ("prepare ins(int) as insert into notes values ($1, 'prepared');\n"
              "\\! cp %s %s && %s --control %s reload >/dev/null\n"
              "execute ins(400);\n"
              "select 'still here';\n") % (nxt, ctx.hd.policy, hoopctl, ctx.hd.control)
    try:
        r = agent_psql(ctx, script=script)
        check("hoop: notes are read-only now" in r.stderr and "still here" in r.stdout, r.stdout + r.stderr)
        check(direct(ctx, "select count(*) from notes where id = 400") == "0", "EXECUTE ran")
    finally:
        ctx.hd.write_policy(hipaa(ctx.pg.port))
        ctx.hd.ctl("reload")


def test_approval_rules_refuse_at_once_without_approvers(ctx):
    ctx.hd.write_policy(hipaa(ctx.pg.port).replace('approvers: ["group:hoop-approvers"]', "approvers: []"))
    ctx.hd.ctl("reload")
    try:
        t0 = time.time()
        r = agent_psql(ctx, "select * from patients", "select name from patients order by id limit 2")
        check(time.time() - t0 < 10, "the agent waited for an approver who cannot exist")
        check("names no approvers" in r.stderr and "phi-export-needs-approval" in r.stderr, r.stderr)
        check(r.stdout.split() == ["P1", "P2"], r.stdout)
    finally:
        ctx.hd.write_policy(hipaa(ctx.pg.port))
        ctx.hd.ctl("reload")


def test_bypass_attempts_found_in_review(ctx):
    # Each of these once got PHI or privileges past the HIPAA policy. (Without approvers, so
    # that what needs approval is refused at once instead of waiting.)
    ctx.hd.write_policy(hipaa(ctx.pg.port).replace('approvers: ["group:hoop-approvers"]', "approvers: []"))
    ctx.hd.ctl("reload")
    try:
        bypass_attempts(ctx)
    finally:
        ctx.hd.write_policy(hipaa(ctx.pg.port))
        ctx.hd.ctl("reload")


def bypass_attempts(ctx):
    many = ", ".join("pg_catalog.lower('x%d')" % i for i in range(70))
    for sql in ("select %s, pg_read_file('/etc/hostname')" % many,
                "prepare px as select * from patients; execute px",
                "prepare py as select * from patients; /* x */ EXECUTE py",
                "declare c cursor for select * from patients",
                "select * from patients limit all",
                "select * from patients limit null",
                "select set_config('role', 'postgres', false)",
                "select max((select string_agg(ssn, ',') from patients))",
                "select 1; selec 2; drop table patients"):
        r = agent_psql(ctx, "begin", sql, "rollback")
        # (text the grammar rejects is refused with the grammar's own error)
        check("ERROR:  hoop:" in r.stderr or "ERROR:  syntax error" in r.stderr,
              "not refused: %s\n%s%s" % (sql[:80], r.stdout, r.stderr))
        check("P1" not in r.stdout and "localhost" not in r.stdout, "data came back: " + r.stdout[:200])


def test_hot_reload_under_load(ctx):
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U",
                    "postgres", "clinical"], check=True, capture_output=True)
    bench = ctx.cg.popen(["pgbench", "-n", "-c", "6", "-j", "2", "-T", "8", "-h", "127.0.0.1", "-p",
                          str(ctx.pg.port), "-U", "postgres", "clinical"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bad = 0
    try:
        for i in range(6):
            time.sleep(1)
            if i == 2:
                with open(ctx.hd.policy, "a") as f:
                    f.write("  - name: broken\n    action: maybe\n    match: {}\n")
                r = ctx.hd.ctl("reload", check=False)
                bad += r.returncode == 1 and re.search(r"policy.yaml:\d+:\d+: action must be", r.stderr) is not None
                ctx.hd.write_policy(hipaa(ctx.pg.port))
            else:
                ctx.hd.ctl("reload")
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
    check(bad == 1, "the invalid policy was not refused with its position")
    check(bench.returncode == 0, "pgbench: " + err)
    check("number of failed transactions: 0 " in out, out)
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    check(m and int(m.group(1)) > 100, out)
    st = ctx.hd.status()["stats"]
    check(st["connections_upstream_failed"] == 0, st)


def test_standard_conforming_strings_off_judged_as_the_server_reads_it(ctx):
    # With standard_conforming_strings off the server reads '...' strings with backslash
    # escapes: 'a\' || '; drop table x; --' is one string and then a DROP TABLE to it. hoopd
    # follows the session's setting (the server's ParameterStatus), so such a statement is
    # judged by what it does: allowed like its standard-strings twin, denied when it drops a
    # table, masked when it reads a masked column. (Before the dialect seam hoopd read every
    # text with standard strings: the first was refused as unparseable, the DROP ran.)
    direct(ctx, "create table if not exists scs_victim (id int)")
    r = agent_psql(ctx, "set standard_conforming_strings = off",
                   r"select 'it\'s ' || id from notes where id = 1",
                   r"select 'a\' || '; drop table scs_victim; --'",
                   r"select 'x\'y' as t, ssn from patients where id = 1 limit 1",
                   r"select 'back\\slash\'s'")
    out = r.stdout.splitlines()
    check("it's 1" in out, "an escaped string was not judged as the server reads it: %r %s"
          % (out, r.stderr))
    check("destructive DDL" in r.stderr, "the hidden DROP TABLE was not denied: " + r.stderr)
    check(direct(ctx, "select count(*) from pg_tables where tablename = 'scs_victim'") == "1",
          "the DROP TABLE hidden in an escaped string ran")
    masked = [l for l in out if l.startswith("x'y|")]
    check(masked and masked[0] != "x'y|000000001" and masked[0].endswith("0001"),
          "ssn not masked (partial) under escape strings: %r" % out)
    check("back\\slash's" in out, "escaped backslash: %r" % out)
    ev = [e for e in events(ctx) if e["kind"] == "statement" and "scs_victim" in e.get("text", "")]
    check(ev and ev[-1]["verdict"] == "deny" and ev[-1]["reason"] == "no-destructive-ddl", ev)

    # Pipelined behind the SET that turns escapes on or off, a text that reads differently
    # under the two values waits for the server's answer (its new ParameterStatus) first.
    code = r"""
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0clinical\0\0"
s.sendall(struct.pack("!i", len(body) + 4) + body)
def until(n):
    buf = b""
    while buf.count(b"Z\x00\x00\x00\x05") < n:
        d = s.recv(65536)
        if not d: break
        buf += d
    return buf
until(1)
def q(t):
    t = t.encode() + b"\0"
    return b"Q" + struct.pack("!i", len(t) + 4) + t
s.sendall(q("set standard_conforming_strings = off") +
          q("select 'a\\' || '; drop table scs_victim; --'"))
r = until(2)
print(b"destructive DDL" in r)
# and back: the same text after SET ... = on is two string constants, allowed
s.sendall(q("set standard_conforming_strings = on") +
          q("select 'a\\' || '; drop table scs_victim; --'"))
r = until(2)
print(b"destructive DDL" in r, b"; drop table scs_victim; --" in r)
"""
    r = ctx.cg.run([PY, "-c", code, str(ctx.pg.port)])
    check(r.stdout.split() == ["True", "False", "True"], r.stdout + r.stderr)
    check(direct(ctx, "select count(*) from pg_tables where tablename = 'scs_victim'") == "1",
          "the pipelined DROP TABLE hidden in an escaped string ran")


def test_syntax_error_answered_as_the_server_would(ctx):
    # Text PostgreSQL's grammar rejects is refused (on_parse_error: deny), and the agent gets
    # what the server would have said: SQLSTATE 42601, the grammar's message and the position
    # psql draws as LINE n: ... ^, so an agent can correct its query. Same bytes on stderr as
    # psql connected directly; the record says hoop refused it unparsed.
    def psql(run, sql=None, script=None):
        argv = ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d",
                "clinical", "-X"]
        argv += ["-c", sql] if sql is not None else ["-f", "-"]
        if run is None:
            return subprocess.run(argv, input=script, capture_output=True, text=True)
        return run(argv, input=script)

    for sql in ("selec * fro patients",
                "select * from patients where",
                "select id, name from notes order by id collate",
                "select 1 +",
                "select * from patients\nwhere id = 1 and and ssn = 'x'",
                "select 'é' || 'ü', * fro notes",
                "select 1; selec 2"):
        direct_r = psql(None, sql)
        agent_r = psql(ctx.cg.run, sql)
        check("ERROR:  syntax error" in direct_r.stderr and "LINE" in direct_r.stderr,
              direct_r.stderr)
        check(agent_r.stderr == direct_r.stderr,
              "%r: through hoopd\n%s\ndirectly\n%s" % (sql, agent_r.stderr, direct_r.stderr))
    ev = [e for e in events(ctx) if e["kind"] == "statement" and e.get("text") == "select 1 +"]
    check(ev and ev[-1]["verdict"] == "deny" and ev[-1].get("refused") == "unparsed" and
          ev[-1].get("parse_error") is True and ev[-1].get("reason") == "on_parse_error", ev)
    # inside a transaction (hoopd's poison answers in its place) and after it
    script = "begin;\nselect 1;\nselec 2 from notes;\nselect 3;\nrollback;\n"
    direct_r = psql(None, script=script)
    agent_r = psql(ctx.cg.run, script=script)
    check(agent_r.stderr == direct_r.stderr and agent_r.stdout == direct_r.stdout,
          "in a transaction, through hoopd\n%s%s\ndirectly\n%s%s"
          % (agent_r.stdout, agent_r.stderr, direct_r.stdout, direct_r.stderr))
    # the extended protocol: the same error fields for a Parse
    code = r"""
import psycopg, sys
c = psycopg.connect(sys.argv[1], autocommit=True)
try:
    c.execute("select %s as x fro notes", (1,))
except psycopg.Error as e:
    print(e.sqlstate, e.diag.message_primary, e.diag.statement_position)
"""
    dsn = "host=127.0.0.1 port=%d user=postgres dbname=clinical" % ctx.pg.port
    direct_r = subprocess.run([PY, "-c", code, dsn], capture_output=True, text=True)
    agent_r = ctx.cg.run([PY, "-c", code, dsn])
    check(direct_r.stdout.startswith("42601 syntax error") and agent_r.stdout == direct_r.stdout,
          "Parse: through hoopd %r, directly %r %s" % (agent_r.stdout, direct_r.stdout,
                                                      agent_r.stderr))
    # a rule's refusal keeps hoop's message
    r = agent_psql(ctx, "drop table notes")
    check("ERROR:  hoop: destructive DDL" in r.stderr and "LINE" not in r.stderr, r.stderr)


def test_hoopd_stops_cleanly_without_sanitizer_reports(ctx):
    check_clean_stop(ctx.hd, ctx.cg.path)


TESTS = [
    test_denied_statement_did_not_run_and_session_goes_on,
    test_evasive_spellings_are_denied,
    test_multi_statement_any_deny_none_runs,
    test_deny_inside_transaction_client_and_server_agree,
    test_extended_protocol_and_pipeline,
    test_statement_pipelined_behind_the_startup_is_judged,
    test_function_call_message_denied,
    test_execute_judged_by_the_policy_in_force,
    test_approval_rules_refuse_at_once_without_approvers,
    test_bypass_attempts_found_in_review,
    test_hot_reload_under_load,
    test_standard_conforming_strings_off_judged_as_the_server_reads_it,
    test_syntax_error_answered_as_the_server_would,
    test_hoopd_stops_cleanly_without_sanitizer_reports,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
