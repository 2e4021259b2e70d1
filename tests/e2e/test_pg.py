#!/usr/bin/python3
"""End-to-end tests of the PostgreSQL engine: real PostgreSQL 15 (ssl=on, SCRAM and md5 users),
real clients (psql, pgbench, psycopg) in an attached cgroup, results compared with a direct
connection, the event stream, TLS on the agent leg, cancel, bad input, many connections.

Usage (as root): tests/e2e/test_pg.py [NAME-SUBSTRING ...]
"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import (attach_agents, teardown, check_clean_stop, Cgroup, Cleanup, Hoopd, Postgres, check, log, run_tests,  # noqa: E402
                      wait_for)

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))


class Ctx:
    pass


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.pg = Postgres(ctx.cleanup, extra=("max_connections=1100", "password_encryption=scram-sha-256"),
                      hba_first=("host all scram_user 127.0.0.1/32 scram-sha-256",
                                 "host all scram_user ::1/128 scram-sha-256",
                                 "host all md5_user 127.0.0.1/32 md5"),
                      ssl=True)
    ctx.pg.psql_direct("create user scram_user password 'scram-secret-pw'")
    ctx.pg.psql_direct("set password_encryption = 'md5'; create user md5_user password 'md5-secret-pw'")
    ctx.pg.psql_direct("create database clinical")
    # limits: one cgroup holds 1000 sessions in test_thousand_concurrent_agent_connections (the
    # default cap is 256 per cgroup; docs/policy.md, Limits)
    ctx.hd = Hoopd(ctx.cleanup, """version: 1
targets:
  - name: pg
    protocol: postgres
    ports: [%d]
limits:
  connections_per_cgroup: 1100
""" % ctx.pg.port)
    ctx.hoopds = [ctx.hd]
    ctx.hd.start()
    ctx.cg = attach_agents(ctx, "carol@example.org")
    ctx.tmp = tempfile.mkdtemp(prefix="hoop-pgt-")
    os.chmod(ctx.tmp, 0o777)
    ctx.cleanup.push(subprocess.run, ["rm", "-rf", ctx.tmp])
    return ctx



def accepted(ctx):
    return ctx.hd.status()["stats"]["connections_accepted"]


def events(ctx):
    return ctx.hd.events()


def run_both(ctx, argv, env=None, timeout=300):
    """The same command directly and as an agent through hoopd; both results."""
    e = dict(os.environ, **(env or {}))
    direct = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout)
    before = accepted(ctx)
    via = ctx.cg.run(argv, env=e, timeout=timeout)
    check(accepted(ctx) > before, "the agent's run did not go through hoopd")
    return direct, via


PSQL_SCRIPT = r"""
\set ON_ERROR_STOP 0
set client_min_messages = warning;
drop table if exists t_items;
create table t_items (id int primary key, name text, price numeric, tags text[], doc jsonb, pic bytea);
insert into t_items select g, 'item ' || g, g * 1.5, array['a' || g, 'b'], jsonb_build_object('g', g), decode(md5(g::text), 'hex')
  from generate_series(1, 5000) g;
select count(*), sum(price), md5(string_agg(name, ',' order by id)) from t_items;
select 1 as a; select 2 as b; select 'three' as c;
begin;
select 1/0;
select 'in failed transaction';
rollback;
do $$ begin raise warning 'a warning from the server'; end $$;
\copy t_items to '@TMP@/items.csv' csv
create temp table t_copy (like t_items);
\copy t_copy from '@TMP@/items.csv' csv
select count(*) from t_copy;
select format('select %s as gexec_%s', g, g) from generate_series(1, 3) g \gexec
select g, repeat('x', g % 97), md5(g::text) from generate_series(1, 20000) g;
prepare p1(int) as select name from t_items where id = $1;
execute p1(42);
listen chan; notify chan, 'payload';
select pg_notify('chan', 'second');
\echo done
"""


def psql_argv(ctx, extra=()):
    return ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical",
            "-X", "-q"] + list(extra)


def test_psql_script_same_as_direct(ctx):
    script = os.path.join(ctx.tmp, "script.sql")
    with open(script, "w") as f:
        f.write(PSQL_SCRIPT.replace("@TMP@", ctx.tmp))
    direct, via = run_both(ctx, psql_argv(ctx, ["-f", script]))
    check(direct.returncode == 0, "direct psql: " + direct.stderr)

    def norm(s):  # the notification line names the server process: the only varying part
        import re
        return re.sub(r'server process with PID \d+', 'server process with PID N', s)
    check(norm(via.stdout) == norm(direct.stdout), "stdout differs through hoopd")
    check(norm(via.stderr) == norm(direct.stderr), "stderr differs:\n%s\n---\n%s" % (via.stderr, direct.stderr))
    check("done" in via.stdout and "gexec_3" in via.stdout and "item 42" in via.stdout
          and "20000 | x" in via.stdout and "a warning from the server" in via.stderr,
          "the script did not run to its end: " + via.stdout[-300:])


def test_pgbench_all_query_modes(ctx):
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U",
                    "postgres", "clinical"], check=True, capture_output=True)
    for mode in ("simple", "extended", "prepared"):
        for builtin in ([], ["-S"]):
            argv = ["pgbench", "-n", "-M", mode, "-c", "4", "-j", "2", "-t", "150"] + builtin + [
                "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "clinical"]
            r = ctx.cg.run(argv, timeout=300)
            check(r.returncode == 0, "pgbench -M %s %s: %s" % (mode, builtin, r.stderr))
            check("number of transactions actually processed: 600/600" in r.stdout,
                  "pgbench -M %s %s:\n%s" % (mode, builtin, r.stdout))
            check("number of failed transactions: 0 " in r.stdout, r.stdout)


PSYCOPG_SCRIPT = r"""
import json, sys, psycopg
dsn = sys.argv[1]
out = {}
with psycopg.connect(dsn, autocommit=True) as c:
    c.execute("drop table if exists pc; create table pc (id int, v text, b bytea)")
    # binary parameters and binary results
    cur = c.cursor(binary=True)
    cur.execute("select %b::int + 1, %b::text, %b::bytea", [41, "héllo", b"\x00\x01\xff"])
    r = cur.fetchone(); out["binary"] = [r[0], r[1], r[2].hex()]
    # COPY in and out
    with c.cursor().copy("copy pc (id, v, b) from stdin") as cp:
        for i in range(2000):
            cp.write_row((i, "row %d" % i, bytes([i % 256])))
    with c.cursor().copy("copy (select id, v from pc order by id) to stdout") as cp:
        out["copy_out_bytes"] = sum(len(b) for b in cp)
    # server-side cursor
with psycopg.connect(dsn) as c:
    with c.cursor(name="big") as cur:
        cur.itersize = 333
        cur.execute("select g, md5(g::text) from generate_series(1, 10000) g")
        n = 0; h = 0
        for g, m in cur:
            n += 1; h = (h * 31 + int(m[:8], 16)) % (1 << 61)
        out["server_cursor"] = [n, h]
# pipeline mode
with psycopg.connect(dsn, autocommit=True) as c:
    with c.pipeline():
        curs = [c.execute("select %s::int * 2", [i]) for i in range(50)]
    out["pipeline"] = sum(cu.fetchone()[0] for cu in curs)
    # an error inside a pipeline does not break what came before
    try:
        with c.pipeline():
            a = c.execute("select 1")
            c.execute("select 1/0")
    except psycopg.errors.DivisionByZero:
        out["pipeline_error"] = "DivisionByZero"
# LISTEN/NOTIFY across two sessions
with psycopg.connect(dsn, autocommit=True) as l, psycopg.connect(dsn, autocommit=True) as n:
    l.add_notify_handler(lambda note: out.__setitem__("notify", note.payload))
    l.execute("listen hoopchan")
    n.execute("notify hoopchan, 'from the other session'")
    l.execute("select 1")  # notifications are delivered with the next result
print(json.dumps(out, sort_keys=True))
"""


def test_psycopg_features_same_as_direct(ctx):
    script = os.path.join(ctx.tmp, "pc.py")
    with open(script, "w") as f:
        f.write(PSYCOPG_SCRIPT)
    dsn = "host=127.0.0.1 port=%d user=postgres dbname=clinical" % ctx.pg.port
    direct, via = run_both(ctx, [PY, script, dsn])
    check(direct.returncode == 0, "direct: " + direct.stderr)
    check(via.returncode == 0, "through hoopd: " + via.stderr)
    d, v = json.loads(direct.stdout), json.loads(via.stdout)
    check(v == d, "psycopg results differ:\n%s\n%s" % (v, d))
    check(v["binary"] == [42, "héllo", "0001ff"] and v["notify"] == "from the other session", v)
    check(v["server_cursor"][0] == 10000 and v["pipeline"] == 2450, v)


def node_modules():
    """node-postgres from the npm registry, installed once under build/npm."""
    root = os.path.abspath(os.path.join(HERE, "..", "..", "build", "npm"))
    if not os.path.isdir(os.path.join(root, "node_modules", "pg")):
        os.makedirs(root, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", root, "--no-audit", "--no-fund", "--silent",
                        "pg@8"], check=True, capture_output=True, timeout=300)
    return os.path.join(root, "node_modules")


def test_node_postgres_same_as_direct(ctx):
    env = {"NODE_PATH": node_modules()}
    script = os.path.join(HERE, "node", "queries.js")
    direct, via = run_both(ctx, ["node", script, str(ctx.pg.port)], env=env)
    check(direct.returncode == 0, "direct: " + direct.stderr)
    check(via.returncode == 0, "through hoopd: " + via.stderr)
    d, v = json.loads(direct.stdout), json.loads(via.stdout)
    check(v == d, "node-postgres results differ:\n%s\n%s" % (v, d))
    check(v["sum"] == 3 * 199 * 200 // 2 and v["error"] == "22012" and v["big"]["n"] == 50000, v)


def test_events_describe_the_session(ctx):
    mark = len(events(ctx))
    p = ctx.cg.run(psql_argv(ctx, ["-c", "select id, name from t_items where id <= 3",
                                   "-c", "select 1/0"]))
    check("division by zero" in p.stderr, p.stderr)
    ev = [e for e in events(ctx)[mark:]]
    sess = [e for e in ev if e["kind"] == "session_start" and e["agent"]["comm"] == "psql"]
    check(sess, "no session_start: %r" % ev[:3])
    s0 = sess[-1]
    check(s0["user"] == "postgres" and s0["database"] == "clinical", s0)
    check(s0["agent"]["owner"] == "carol@example.org" and s0["agent"]["uid"] == 0, s0)
    check(s0["params"].get("application_name") == "psql", s0)
    sid = s0["session"]
    mine = [e for e in ev if e["session"] == sid]
    stmts = [e for e in mine if e["kind"] == "statement"]
    check([e["text"] for e in stmts] == ["select id, name from t_items where id <= 3", "select 1/0"],
          "statements: %r" % stmts)
    # Who: in the session's first statement record (of the segment), not repeated.
    check(stmts[0]["who"]["owner"] == "carol@example.org" and stmts[0]["who"]["user"] == "postgres"
          and stmts[0]["who"]["database"] == "clinical" and stmts[0]["who"]["exe"].endswith("/psql"), stmts[0])
    check("who" not in stmts[1], "who repeated: %r" % stmts[1])
    comp = [e for e in mine if e["kind"] == "complete"][0]
    check(comp["tag"] == "SELECT 3" and comp["rows"] == 3 and comp["stmt"] == stmts[0]["stmt"], comp)
    # The columns arrived with the rows and the completion: recorded with the completion.
    check(not [e for e in mine if e["kind"] == "result_columns"], "a result_columns record as well: %r" % mine)
    cols = comp["columns"]
    check([c["name"] for c in cols] == ["id", "name"] and cols[0]["table_oid"] > 0 and cols[1]["attnum"] == 2,
          comp)
    err = [e for e in mine if e["kind"] == "error"][0]
    check(err["sqlstate"] == "22012" and err["stmt"] == stmts[1]["stmt"] and not err["from_hoopd"], err)
    check(mine[-1]["kind"] == "session_end" and mine[-1]["statements"] == 2, mine[-1])


def test_kubernetes_identity_from_the_cgroup_path(ctx):
    # A cgroup laid out like the kubelet's (systemd driver): the pod UID and container id are
    # recorded with the session.
    uid = "11111111_2222_3333_4444_555555555555"
    cid = "ab" * 32
    rel = ("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/"
           "cri-containerd-%s.scope" % (uid, cid))
    parts = rel.split("/")
    base = os.path.dirname(ctx.cg.path)
    for i in range(1, len(parts) - 1):  # removed after the leaf and its parent (cleanup is LIFO)
        ctx.cleanup.push(lambda d=os.path.join(base, *parts[:i]): os.path.isdir(d) and os.rmdir(d))
    cg = Cgroup(ctx.cleanup, rel)
    ctx.hd.ctl("attach", "--cgroup", cg.path, "--owner", "k8s-agent")
    try:
        mark = len(events(ctx))
        r = cg.run(psql_argv(ctx, ["-Atc", "select 1"]))
        check(r.stdout.strip() == "1", r.stderr)
        st = [e for e in events(ctx)[mark:] if e["kind"] == "session_start"]
        check(st and st[-1]["agent"].get("pod_uid") == uid.replace("_", "-")
              and st[-1]["agent"].get("container_id") == cid, st)
        stmt = [e for e in events(ctx)[mark:] if e["kind"] == "statement"]
        check(stmt and stmt[-1]["who"]["owner"] == "k8s-agent" and stmt[-1]["who"]["user"] == "postgres"
              and stmt[-1]["who"]["database"] == "clinical", stmt)
    finally:
        ctx.hd.ctl("detach", "--cgroup", cg.path, check=False)


def test_extended_protocol_params_in_events(ctx):
    mark = len(events(ctx))
    code = ("import psycopg; c = psycopg.connect('host=127.0.0.1 port=%d user=postgres dbname=clinical'); "
            "print(c.execute('select id from t_items where name = %%s and id < %%s', ['item 77', 100])"
            ".fetchone()[0])" % ctx.pg.port)
    r = ctx.cg.run([PY, "-c", code])
    check(r.stdout.strip() == "77", r.stdout + r.stderr)
    st = [e for e in events(ctx)[mark:] if e["kind"] == "statement" and "t_items where name" in e["text"]]
    # psycopg sends the string as text and the int in binary (int2 100 = 0x0064).
    check(st and st[0]["protocol"] == "extended" and st[0]["params"] == ["item 77", {"binary": "0064"}], st)
    # SQL-level PREPARE / EXECUTE map back to the prepared text, quoting as the server folds it.
    mark = len(events(ctx))
    r = ctx.cg.run(psql_argv(ctx, ["-Atc", 'prepare "PQ"(int) as select $1 + 1; execute "PQ"(41); '
                                   'prepare pq2 as select 2; EXECUTE PQ2']))
    check(r.stdout.split() == ["42", "2"], r.stdout + r.stderr)
    ex = [e for e in events(ctx)[mark:] if e["kind"] == "statement" and e["text"].lower().startswith("execute")]
    check([(e.get("prepared"), e.get("prepared_text")) for e in ex] ==
          [("PQ", "select $1 + 1"), ("pq2", "select 2")], ex)


def test_tls_on_the_agent_leg(ctx):
    ca = os.path.join(ctx.hd.state, "tls", "ca.crt")
    for mode in ("disable", "prefer", "require", "verify-ca", "verify-full"):
        mark = len(events(ctx))
        conn = "host=127.0.0.1 port=%d user=postgres dbname=clinical sslmode=%s sslrootcert=%s" % (
            ctx.pg.port, mode, ca)
        r = ctx.cg.run(["psql", conn, "-XAtc", "select 'tls ' || current_setting('port')"])
        check(r.returncode == 0 and r.stdout.strip() == "tls %d" % ctx.pg.port,
              "sslmode=%s: %s%s" % (mode, r.stdout, r.stderr))
        st = [e for e in events(ctx)[mark:] if e["kind"] == "session_start"]
        check(st and st[-1]["agent_tls"] == (mode != "disable"), "sslmode=%s: %r" % (mode, st))
    # verify-full against a name the certificate does not carry fails, as it must.
    r = ctx.cg.run(["psql", "host=localhost hostaddr=127.0.0.1 port=%d user=postgres sslmode=verify-full "
                    "sslrootcert=%s sslsni=0" % (ctx.pg.port, ca), "-XAtc", "select 1"])
    check(r.returncode != 0 and "does not match" in r.stderr, "verify-full with a wrong name: " + r.stderr)


DIRECT_TLS = r"""
import socket, ssl, struct, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.set_alpn_protocols(["postgresql"])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")   # verifies the minted certificate
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0clinical\0\0"
s.sendall(struct.pack("!i", len(body) + 4) + body)
buf = b""
while not buf.endswith(b"Z\x00\x00\x00\x05I"):
    d = s.recv(65536)
    if not d: break
    buf += d
q = b"select 'direct tls'\0"
s.sendall(b"Q" + struct.pack("!i", len(q) + 4) + q)
r = s.recv(65536)
print(s.selected_alpn_protocol(), buf[:1].decode(), b"direct tls" in r)
"""


def test_direct_tls_with_alpn(ctx):
    # PostgreSQL 17 clients may open with TLS directly (sslnegotiation=direct, ALPN postgresql).
    ca = os.path.join(ctx.hd.state, "tls", "ca.crt")
    r = ctx.cg.run([PY, "-c", DIRECT_TLS, str(ctx.pg.port), ca])
    check(r.stdout.split() == ["postgresql", "R", "True"], r.stdout + r.stderr)


def test_scram_and_md5_through_hoopd(ctx):
    for user, pw in (("scram_user", "scram-secret-pw"), ("md5_user", "md5-secret-pw")):
        # channel_binding=disable: an agent on TLS to hoopd, with a TLS database leg, cannot bind
        # (test_upstream_tls_modes: it is refused, never downgraded).
        for extra in ("sslmode=disable", "sslmode=require channel_binding=disable"):
            conn = "host=127.0.0.1 port=%d user=%s dbname=clinical %s" % (ctx.pg.port, user, extra)
            r = ctx.cg.run(["psql", conn, "-XAtc", "select current_user"],
                           env=dict(os.environ, PGPASSWORD=pw))
            check(r.returncode == 0 and r.stdout.strip() == user, "%s %s: %s" % (user, extra, r.stderr))
        r = ctx.cg.run(["psql", "host=127.0.0.1 port=%d user=%s sslmode=disable" % (ctx.pg.port, user),
                        "-XAtc", "select 1"], env=dict(os.environ, PGPASSWORD="wrong"))
        check(r.returncode != 0 and "password authentication failed" in r.stderr, r.stderr)
    # hoopd keeps no secret: not in its events, not in its log.
    evs = json.dumps(ctx.hd.events())
    for secret in ("scram-secret-pw", "md5-secret-pw"):
        check(secret not in evs and secret not in ctx.hd.log_text(), "a password was recorded")


def test_cancel_reaches_the_server(ctx):
    code = r"""
import psycopg, threading, time, sys
c = psycopg.connect('host=127.0.0.1 port=%d user=postgres dbname=clinical')
threading.Timer(1.0, c.cancel).start()
t = time.time()
try:
    c.execute('select pg_sleep(30)')
    print('not cancelled')
except psycopg.errors.QueryCanceled:
    print('cancelled %%.1f' %% (time.time() - t))
""" % ctx.pg.port
    r = ctx.cg.run([PY, "-c", code], timeout=60)
    out = r.stdout.split()
    check(out and out[0] == "cancelled" and float(out[1]) < 10, r.stdout + r.stderr)
    check(any(e["kind"] == "cancel" and "forwarded" in e["outcome"] for e in events(ctx)),
          "no cancel event")


def set_target(ctx, extra):
    ctx.hd.write_policy("""version: 1
limits:
  connections_per_cgroup: 1100
targets:
  - name: pg
    protocol: postgres
    ports: [%d]
%s""" % (ctx.pg.port, "".join("    %s\n" % l for l in extra)))
    ctx.hd.ctl("reload")


def upstream_ssl(ctx, user="postgres", env=None, agent_mode="prefer"):
    conn = "host=127.0.0.1 port=%d user=%s dbname=clinical sslmode=%s" % (ctx.pg.port, user, agent_mode)
    return ctx.cg.run(["psql", conn, "-XAtc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"],
                      env=dict(os.environ, **(env or {})))


def test_upstream_tls_modes(ctx):
    try:
        # Default (prefer): the database leg is encrypted.
        r = upstream_ssl(ctx)
        check(r.returncode == 0 and r.stdout.strip() == "t", "default prefer: " + r.stdout + r.stderr)
        set_target(ctx, ["upstream_tls: disable"])
        r = upstream_ssl(ctx)
        check(r.stdout.strip() == "f", "disable: " + r.stdout + r.stderr)
        set_target(ctx, ["upstream_tls: require"])
        check(upstream_ssl(ctx).stdout.strip() == "t", "require")
        set_target(ctx, ["upstream_tls: verify-full", "ca_file: %s" % ctx.pg.ca])
        r = upstream_ssl(ctx)
        check(r.stdout.strip() == "t", "verify-full with the right CA: " + r.stdout + r.stderr)
        # A certificate that does not name what we expect is refused.
        set_target(ctx, ["upstream_tls: verify-full", "ca_file: %s" % ctx.pg.ca,
                         "tls_server_name: db.other.example"])
        r = upstream_ssl(ctx)
        check(r.returncode != 0 and "TLS handshake with the database failed" in r.stderr,
              "verify-full, wrong name: " + r.stdout + r.stderr)
        # ... and so is one from a CA we were not told to trust.
        set_target(ctx, ["upstream_tls: verify-ca", "ca_file: %s" % os.path.join(ctx.hd.state, "tls", "ca.crt")])
        r = upstream_ssl(ctx)
        check(r.returncode != 0 and "TLS handshake with the database failed" in r.stderr,
              "verify-ca, other CA: " + r.stdout + r.stderr)
        # SCRAM from an agent on TLS: with require it cannot pass, and says why.
        set_target(ctx, ["upstream_tls: require"])
        r = upstream_ssl(ctx, "scram_user", {"PGPASSWORD": "scram-secret-pw"}, "require")
        check(r.returncode != 0 and "channel binding" in r.stderr, "scram + require: " + r.stderr)
        r = upstream_ssl(ctx, "scram_user", {"PGPASSWORD": "scram-secret-pw"}, "disable")
        check(r.stdout.strip() == "t", "scram, plain agent leg, TLS database leg: " + r.stderr)
        # With prefer too: hoopd never drops the database leg's TLS for what an agent sends
        # (issue 14 point 7; it used to redial in plain TCP).
        set_target(ctx, [])
        r = upstream_ssl(ctx, "scram_user", {"PGPASSWORD": "scram-secret-pw"}, "require")
        check(r.returncode != 0 and "channel binding" in r.stderr and r.stdout.strip() != "f",
              "scram + prefer: " + r.stdout + r.stderr)
    finally:
        set_target(ctx, [])


def startup_bytes(user="postgres", db="clinical"):
    body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    return struct.pack("!i", len(body) + 4) + body


BAD = r"""
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
buf = b""
while not buf.endswith(b"Z\x00\x00\x00\x05I"):
    d = s.recv(65536)
    if not d: break
    buf += d
s.sendall(bytes.fromhex(sys.argv[3]))
resp = b""
while True:
    d = s.recv(65536)
    if not d: break
    resp += d
print(resp[:1].decode(), b"08P01" in resp)
"""


def test_malformed_input_closes_only_that_session(ctx):
    other = ctx.cg.popen(psql_argv(ctx, ["-Atc", "select pg_sleep(2), 'other ok'"]),
                         stdout=subprocess.PIPE, text=True)
    for bad in (b"Y\x00\x00\x00\x05x",                 # unknown message type
                b"Q\x7f\xff\xff\xff",                  # oversized
                b"Q\x00\x00\x00\x02",                  # length below the minimum
                b"Q\x00\x00\x00\x08abcd"):            # text without its NUL
        r = ctx.cg.run([PY, "-c", BAD, str(ctx.pg.port), startup_bytes().hex(), bad.hex()], timeout=30)
        check(r.stdout.split() == ["E", "True"], "bad input %r: %s %s" % (bad, r.stdout, r.stderr))
    out, _ = other.communicate(timeout=30)
    check("other ok" in out, "another session was disturbed: %r" % out)
    check(ctx.hd.ctl_ok("ping"), "hoopd died")
    check(sum(1 for e in events(ctx) if e["kind"] == "protocol_error") >= 4, "protocol_error events")


def test_ssl_request_followed_by_data_is_refused(ctx):
    # CVE-2021-3935: bytes after SSLRequest, before the handshake, close the connection.
    code = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f" + b"Q\x00\x00\x00\x0dselect 1\x00")
d = s.recv(100)
print(d[:1].decode(errors="replace"), b"08P01" in d)
"""
    r = ctx.cg.run([PY, "-c", code, str(ctx.pg.port)])
    check(r.stdout.split() == ["E", "True"], r.stdout + r.stderr)


def test_thousand_concurrent_agent_connections(ctx):
    code = r"""
import socket, struct, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0clinical\0\0"
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    socks.append(s)
ok = 0
for s in socks:
    buf = b""
    s.settimeout(60)
    while not buf.endswith(b"Z\x00\x00\x00\x05I"):
        d = s.recv(65536)
        if not d: break
        buf += d
    q = b"select 1\0"
    s.sendall(b"Q" + struct.pack("!i", len(q) + 4) + q)
    buf = b""
    while not buf.endswith(b"Z\x00\x00\x00\x05I"):
        d = s.recv(65536)
        if not d: break
        buf += d
    ok += buf.startswith(b"T")
print(ok)
"""
    r = ctx.cg.run([PY, "-c", code, str(ctx.pg.port), "1000"], timeout=300)
    check(r.stdout.strip() == "1000", "concurrent sessions answered: %r %s" % (r.stdout, r.stderr[-500:]))


def test_hoopd_stops_cleanly_without_sanitizer_reports(ctx):
    check_clean_stop(ctx.hd, ctx.cg.path)


TESTS = [
    test_psql_script_same_as_direct,
    test_pgbench_all_query_modes,
    test_psycopg_features_same_as_direct,
    test_node_postgres_same_as_direct,
    test_events_describe_the_session,
    test_extended_protocol_params_in_events,
    test_kubernetes_identity_from_the_cgroup_path,
    test_tls_on_the_agent_leg,
    test_direct_tls_with_alpn,
    test_scram_and_md5_through_hoopd,
    test_cancel_reaches_the_server,
    test_upstream_tls_modes,
    test_malformed_input_closes_only_that_session,
    test_ssl_request_followed_by_data_is_refused,
    test_thousand_concurrent_agent_connections,
    test_hoopd_stops_cleanly_without_sanitizer_reports,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
