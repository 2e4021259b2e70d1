#!/usr/bin/python3
"""End-to-end tests of the fleet's central store, audit half (docs/fleet.md): a central
PostgreSQL and a separate target PostgreSQL; `hoopctl central init`; hoopd started with
--central-dsn-file and --node, so that its broker runs and supervises `hoopctl central ship`;
psql and pgbench as agents in an attached cgroup. The central copy must equal the local trail
record for record (the `line` bytes by seq, and the segment each came from), also after the
central database was stopped under pgbench load and started again (the lag in status returns to
0); `hoopctl central verify` proves the chain from the central copy and fails, naming the seq,
when one byte of a central record is changed or a record deleted; a node's login role cannot
update or delete records, nor insert or read another node's (row-level security).

Usage (as root): tests/e2e/test_central.py [NAME-SUBSTRING ...]
"""
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import (HOOPCTL, PGBIN, attach_agents, teardown, check_clean_stop, Cleanup, Hoopd,  # noqa: E402
                      Postgres, check, log, run_tests, wait_for)

NODE = "nodea"
NODE_PW = "nodea-secret-pw"


class Ctx:
    pass


def su_dsn(ctx):
    return "host=127.0.0.1 port=%d user=postgres dbname=fleet" % ctx.central.port


def node_dsn(ctx, user=NODE, pw=NODE_PW):
    return "host=127.0.0.1 port=%d user=%s password=%s dbname=fleet" % (ctx.central.port, user, pw)


def central_sql(ctx, sql, args=None, dsn=None):
    with psycopg.connect(dsn or su_dsn(ctx), autocommit=True) as c:
        cur = c.execute(sql, args)
        return cur.fetchall() if cur.description else None


def central_start(pg):
    """Start a stopped hooptest.Postgres again with the options it was made with."""
    opts = "-p %d -k %s -c listen_addresses='127.0.0.1,::1' -c max_connections=200 -c fsync=off" % (
        pg.port, pg.dir)
    subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PGBIN, "pg_ctl"), "-D", pg.data,
                    "-o", opts, "-l", os.path.join(pg.dir, "log"), "-w", "start"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.central = Postgres(ctx.cleanup, hba_first=(
        "host all nodea 127.0.0.1/32 scram-sha-256", "host all nodeb 127.0.0.1/32 scram-sha-256",
        "host all auditor1 127.0.0.1/32 scram-sha-256"), extra=("password_encryption=scram-sha-256",))
    ctx.central.psql_direct("create database fleet")
    ctx.target = Postgres(ctx.cleanup)
    ctx.target.psql_direct("create database clinical")
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(ctx.target.port),
                    "-U", "postgres", "clinical"], check=True, capture_output=True)
    r = hoopctl("central", "init", "--dsn", su_dsn(ctx))
    check(r.returncode == 0, "central init: %s%s" % (r.stdout, r.stderr))
    for role, pw, grp in ((NODE, NODE_PW, "hoop_node"), ("nodeb", "nodeb-pw", "hoop_node"),
                          ("auditor1", "auditor-pw", "hoop_auditor")):
        central_sql(ctx, "create role %s login password '%s'; grant %s to %s" % (role, pw, grp, role))
    ctx.hd = Hoopd(ctx.cleanup, """version: 1
targets:
  - name: pg
    protocol: postgres
    ports: [%d]
audit:
  checkpoint_every: 40
  segment_bytes: 65536
""" % ctx.target.port)
    ctx.hoopds = [ctx.hd]
    ctx.dsn_file = os.path.join(ctx.hd.dir, "central.dsn")
    fd = os.open(ctx.dsn_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (node_dsn(ctx) + "\n").encode())
    os.close(fd)
    ctx.hd.start("--central-dsn-file", ctx.dsn_file, "--node", NODE)
    ctx.cg = attach_agents(ctx, "carol@example.org")
    return ctx


# ---- helpers ------------------------------------------------------------------------------------

def hoopctl(*args, timeout=300):
    return subprocess.run([HOOPCTL] + list(args), capture_output=True, text=True, timeout=timeout)


def psql_argv(ctx, sql):
    return ["psql", "-h", "127.0.0.1", "-p", str(ctx.target.port), "-U", "postgres", "-d", "clinical",
            "-X", "-v", "ON_ERROR_STOP=1", "-c", sql]


def pgbench_argv(ctx, *extra):
    return ["pgbench", "-n", "-M", "simple", "-h", "127.0.0.1", "-p", str(ctx.target.port), "-U",
            "postgres", *extra, "clinical"]


def local_trail(hd):
    """{seq: (segment number, line bytes)} of every whole record of the local trail."""
    out = {}
    d = os.path.join(hd.state, "audit")
    nums = sorted({int(m.group(1)) for m in (re.fullmatch(r"seg-(\d{8})\.jsonl(\.gz)?", n)
                                             for n in os.listdir(d)) if m})
    for n in nums:
        p = os.path.join(d, "seg-%08d.jsonl" % n)
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            with gzip.open(p + ".gz", "rb") as f:
                data = f.read()
        for line in data.split(b"\n")[:-1]:
            seq = int(re.match(rb'\{"seq":(\d+),', line).group(1))
            check(seq not in out, "seq %d twice in the local trail" % seq)
            out[seq] = (n, line)
    return out


def central_trail(ctx, node=NODE):
    rows = central_sql(ctx, "select seq, seg, line from hoop.records where node = %s order by seq", (node,))
    return {seq: (seg, line.encode()) for seq, seg, line in rows}


def central_status(ctx):
    return ctx.hd.status().get("central") or {}


def wait_caught_up(ctx, timeout=60):
    """Until the lag in status is 0 and the central copy ends where the local trail does."""
    def done():
        st = central_status(ctx)
        return st.get("lag_records") == 0 and st.get("shipped_seq", 0) > 0 and st.get("connected")
    wait_for(done, timeout, "the central copy to catch up (status: %s)" % central_status(ctx))


def assert_same(ctx):
    """The central copy equals the local trail record for record."""
    wait_caught_up(ctx)
    local = local_trail(ctx.hd)
    central = central_trail(ctx)
    check(local, "no local records")
    missing = sorted(set(local) - set(central))
    extra = sorted(set(central) - set(local))
    check(not missing, "%d local record(s) missing centrally, first seq %s" % (len(missing), missing[:5]))
    check(not extra, "%d central record(s) not in the local trail: %s" % (len(extra), extra[:5]))
    for seq in sorted(local):
        check(local[seq] == central[seq], "seq %d differs:\n local   %r\n central %r" % (
            seq, local[seq], central[seq]))
    return local


def central_verify(ctx, *extra):
    return hoopctl("central", "verify", "--dsn", su_dsn(ctx), *extra)


# ---- tests -------------------------------------------------------------------------------------

def test_init_is_idempotent_and_makes_partitions(ctx):
    r = hoopctl("central", "init", "--dsn", su_dsn(ctx))
    check(r.returncode == 0 and "0 migration(s) applied now" in r.stdout, r.stdout + r.stderr)
    check(central_sql(ctx, "select max(version) from hoop.schema_version")[0][0] == 2, "schema version")
    parts = [p for (p,) in central_sql(ctx, "select c.relname from pg_inherits i join pg_class c "
                                            "on c.oid = i.inhrelid where i.inhparent = 'hoop.records'::regclass "
                                            "order by 1")]
    check("records_default" in parts and len([p for p in parts if re.fullmatch(r"records_\d{6}", p)]) >= 3,
          "partitions: %s" % parts)
    check(central_sql(ctx, "select hoop.ensure_partitions(3)")[0][0] == 0, "ensure_partitions made some again")


def test_psql_records_shipped_record_for_record(ctx):
    # a tab, a backslash and non-ASCII text in the statements: COPY's escaping, byte for byte
    script = "".join("select %d as n, '%s' as \"tab\tand\\\\backslash \u00e9\";\n" % (i, "x" * 1000)
                     for i in range(100))
    for i in range(3):
        r = ctx.cg.run(psql_argv(ctx, "select %d" % i))
        check(r.returncode == 0, "psql: %s" % r.stderr)
    r = ctx.cg.run(psql_argv(ctx, "select 1")[:-2] + ["-q", "-f", "-"], input=script)
    check(r.returncode == 0, "psql: %s" % r.stderr)
    local = assert_same(ctx)
    check(len({seg for seg, _ in local.values()}) >= 2, "expected several segments (segment_bytes 65536)")
    kinds = dict(central_sql(ctx, "select kind, count(*) from hoop.records where node = %s group by kind", (NODE,)))
    check(kinds.get("statement", 0) >= 30 and kinds.get("checkpoint", 0) >= 2, "kinds: %s" % kinds)
    sess = central_sql(ctx, "select count(*) from hoop.records where node = %s and kind = 'statement' "
                            "and session is null", (NODE,))[0][0]
    check(sess == 0, "statement records without their session column")
    row = central_sql(ctx, "select audit_pub, shipped_seq from hoop.nodes where node = %s", (NODE,))
    with open(os.path.join(ctx.hd.state, "audit.pub")) as f:
        check(row and row[0][0] == f.read(), "hoop.nodes.audit_pub is not the node's audit.pub")
    check(row[0][1] == max(local), "hoop.nodes.shipped_seq %s, local last seq %d" % (row[0][1], max(local)))
    m = ctx.hd.metrics()
    check(re.search(r"^hoop_central_lag_records 0$", m, re.M), "metrics lag:\n" + m[-600:])
    check(re.search(r"^hoop_central_connected 1$", m, re.M), "metrics connected")
    st = ctx.hd.ctl("status").stdout
    check("CENTRAL (node nodea)" in st and "lag 0 record(s)" in st, "status text:\n" + st)


def test_central_down_under_pgbench_loses_nothing(ctx):
    before = max(local_trail(ctx.hd))
    bench = ctx.cg.popen(pgbench_argv(ctx, "-c", "4", "-j", "2", "-T", "12"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    ctx.central.stop()
    log("  central stopped at local seq %d" % max(local_trail(ctx.hd)))
    wait_for(lambda: not central_status(ctx).get("connected"), 10, "the shipper to notice")
    time.sleep(3)
    st = central_status(ctx)
    check(st.get("lag_records", 0) > 0 and st.get("last_error"), "status while central is down: %s" % st)
    grown = max(local_trail(ctx.hd))
    check(grown > st["shipped_seq"], "the local trail did not grow while the central was down")
    central_start(ctx.central)
    log("  central started again at local seq %d (lag %d)" % (max(local_trail(ctx.hd)),
                                                               central_status(ctx)["lag_records"]))
    out, err = bench.communicate(timeout=60)
    check(bench.returncode == 0, "pgbench through hoopd failed while the central was down: %s" % err)
    txns = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    check(txns > 100, "pgbench processed only %d transactions" % txns)
    local = assert_same(ctx)
    log("  %d records after the outage (%d new), pgbench %d transactions" % (len(local), max(local) - before,
                                                                            txns))
    check(central_status(ctx)["lag_records"] == 0, "lag not back to 0")


def test_central_verify_passes(ctx):
    pub = os.path.join(ctx.hd.state, "audit.pub")
    r = central_verify(ctx, "--node", NODE, "--pub", pub)
    check(r.returncode == 0 and "node nodea" in r.stdout and "ok:" in r.stdout, r.stdout + r.stderr)
    r = central_verify(ctx)  # every node, each with the key it registered
    check(r.returncode == 0 and "ok:" in r.stdout, r.stdout + r.stderr)
    # the same for an auditor's login role (SELECT only)
    r = hoopctl("central", "verify", "--dsn", node_dsn(ctx, "auditor1", "auditor-pw"), "--node", NODE,
                "--pub", pub)
    check(r.returncode == 0, "as hoop_auditor: " + r.stdout + r.stderr)


def pick_seq(ctx):
    """A statement record in the middle of the central copy, followed by others."""
    rows = central_sql(ctx, "select seq from hoop.records where node = %s and kind = 'statement' "
                            "order by seq", (NODE,))
    return rows[len(rows) // 2][0]


def test_central_verify_fails_on_a_changed_byte(ctx):
    seq = pick_seq(ctx)
    (line,), = central_sql(ctx, "select line from hoop.records where node = %s and seq = %s", (NODE, seq))
    i = line.index('"kind":"') + 9
    bad = line[:i] + ("X" if line[i] != "X" else "Y") + line[i + 1:]
    central_sql(ctx, "update hoop.records set line = %s where node = %s and seq = %s", (bad, NODE, seq))
    try:
        r = central_verify(ctx, "--node", NODE, "--pub", os.path.join(ctx.hd.state, "audit.pub"))
        check(r.returncode == 1, "verify exit %d after a changed byte: %s%s" % (r.returncode, r.stdout, r.stderr))
        check("node nodea" in r.stdout and "TAMPERED" in r.stdout and ("seq %d" % seq) in r.stdout,
              "verify does not name seq %d:\n%s" % (seq, r.stdout))
        js = central_verify(ctx, "--node", NODE, "--json")
        rep = json.loads(js.stdout.strip().splitlines()[-1])
        check(rep.get("problem") == "hash_mismatch", "json: %s" % js.stdout)
    finally:
        central_sql(ctx, "update hoop.records set line = %s where node = %s and seq = %s", (line, NODE, seq))
    r = central_verify(ctx, "--node", NODE)
    check(r.returncode == 0, "verify after putting the byte back: " + r.stdout + r.stderr)


def test_central_verify_fails_on_a_deleted_or_reordered_record(ctx):
    seq = pick_seq(ctx) + 1
    row = central_sql(ctx, "delete from hoop.records where node = %s and seq = %s "
                           "returning node, seq, seg, ts, kind, session, line", (NODE, seq))
    check(len(row) == 1, "nothing deleted")
    try:
        r = central_verify(ctx, "--node", NODE)
        check(r.returncode == 1 and "TAMPERED" in r.stdout and ("seq %d" % seq) in r.stdout,
              "verify after deleting seq %d: %s%s" % (seq, r.stdout, r.stderr))
    finally:
        central_sql(ctx, "insert into hoop.records values (%s, %s, %s, %s, %s, %s, %s)", row[0])
    # two records' lines swapped (each row keeps its seq column): caught too
    a, b = seq, seq + 1
    la = central_sql(ctx, "select line from hoop.records where node = %s and seq = %s", (NODE, a))[0][0]
    lb = central_sql(ctx, "select line from hoop.records where node = %s and seq = %s", (NODE, b))[0][0]
    central_sql(ctx, "update hoop.records set line = %s where node = %s and seq = %s", (lb, NODE, a))
    central_sql(ctx, "update hoop.records set line = %s where node = %s and seq = %s", (la, NODE, b))
    try:
        r = central_verify(ctx, "--node", NODE)
        check(r.returncode == 1 and ("seq %d" % a) in r.stdout, "verify after a swap: " + r.stdout + r.stderr)
    finally:
        central_sql(ctx, "update hoop.records set line = %s where node = %s and seq = %s", (la, NODE, a))
        central_sql(ctx, "update hoop.records set line = %s where node = %s and seq = %s", (lb, NODE, b))
    r = central_verify(ctx, "--node", NODE)
    check(r.returncode == 0, "verify after restoring: " + r.stdout + r.stderr)


def expect_refused(ctx, sql, args, what, dsn=None):
    try:
        central_sql(ctx, sql, args, dsn=dsn or node_dsn(ctx))
    except psycopg.errors.InsufficientPrivilege as e:
        return str(e)
    raise AssertionError("a node's role could %s" % what)


def test_node_role_cannot_rewrite_or_impersonate(ctx):
    expect_refused(ctx, "update hoop.records set kind = 'x' where node = %s", (NODE,), "UPDATE records")
    expect_refused(ctx, "delete from hoop.records where node = %s", (NODE,), "DELETE records")
    expect_refused(ctx, "truncate hoop.records", None, "TRUNCATE records")
    msg = expect_refused(ctx, "insert into hoop.records values ('nodeb', 1, 1, now(), 'statement', null, '{}')",
                         None, "insert a record for another node")
    check("row-level security" in msg, "not refused by RLS: %s" % msg)
    expect_refused(ctx, "insert into hoop.nodes (node) values ('nodeb')", None, "register another node")
    expect_refused(ctx, "select * from hoop.records_default", None, "read a partition directly")
    # another node's rows are invisible to it
    central_sql(ctx, "insert into hoop.records values ('nodeb', 1, 1, now(), 'audit_open', null, '{}')")
    try:
        n = central_sql(ctx, "select count(*) from hoop.records where node = 'nodeb'", dsn=node_dsn(ctx))[0][0]
        check(n == 0, "nodea sees %d of nodeb's records" % n)
        n = central_sql(ctx, "select count(*) from hoop.records where node = 'nodeb'",
                        dsn=node_dsn(ctx, "auditor1", "auditor-pw"))[0][0]
        check(n == 1, "the auditor sees %d of nodeb's records" % n)
    finally:
        central_sql(ctx, "delete from hoop.records where node = 'nodeb'")
    expect_refused(ctx, "insert into hoop.records values ('auditor1', 1, 1, now(), 'x', null, '{}')", None,
                   "let an auditor insert", dsn=node_dsn(ctx, "auditor1", "auditor-pw"))
    # a shipper under another node's name is refused too, and says so in its status
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "audit"))
        shutil.copy(os.path.join(ctx.hd.state, "audit.pub"), d)
        r = hoopctl("central", "ship", "--once", "--dsn", node_dsn(ctx), "--node", "nodeb",
                    "--state-dir", d)
        check(r.returncode == 1 and "row-level security" in r.stderr,
              "ship --node nodeb as nodea: %s%s" % (r.stdout, r.stderr))
        with open(os.path.join(d, "central-shipped")) as f:
            check("row-level security" in json.load(f)["last_error"], "central-shipped")


def test_shipper_restarted_when_killed(ctx):
    st = central_status(ctx)
    pid, restarts = st["shipper_pid"], st["shipper_restarts"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: central_status(ctx).get("shipper_restarts", 0) > restarts and
             central_status(ctx).get("shipper_running"), 15, "the shipper to be restarted")
    for i in range(5):
        ctx.cg.run(psql_argv(ctx, "select 'after restart %d'" % i))
    assert_same(ctx)


def test_clean_stop(ctx):
    pid = central_status(ctx)["shipper_pid"]
    check_clean_stop(ctx.hd, ctx.cg.path)
    check(not os.path.exists("/proc/%d" % pid) or
          open("/proc/%d/stat" % pid).read().split()[2] == "Z", "the shipper outlived hoopd")
    # what hoopd wrote while stopping is shipped by hand (--once), and the copy is whole again
    r = hoopctl("central", "ship", "--once", "--dsn-file", ctx.dsn_file, "--node", NODE,
                "--state-dir", ctx.hd.state)
    check(r.returncode == 0, "ship --once: %s%s" % (r.stdout, r.stderr))
    local = local_trail(ctx.hd)
    central = central_trail(ctx)
    check(local == central, "after stop and ship --once: %d local, %d central" % (len(local), len(central)))
    r = central_verify(ctx, "--node", NODE, "--pub", os.path.join(ctx.hd.state, "audit.pub"))
    check(r.returncode == 0, r.stdout + r.stderr)
    with open(os.path.join(ctx.hd.state, "central-shipped")) as f:
        check(json.load(f)["lag_records"] == 0, "central-shipped says a lag")


TESTS = [
    test_init_is_idempotent_and_makes_partitions,
    test_psql_records_shipped_record_for_record,
    test_central_down_under_pgbench_loses_nothing,
    test_central_verify_passes,
    test_central_verify_fails_on_a_changed_byte,
    test_central_verify_fails_on_a_deleted_or_reordered_record,
    test_node_role_cannot_rewrite_or_impersonate,
    test_shipper_restarted_when_killed,
    test_clean_stop,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root")
    sys.exit(run_tests(TESTS, setup, teardown, sys.argv[1:]))
