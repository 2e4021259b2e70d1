#!/usr/bin/python3
"""End-to-end tests of approvals across nodes (docs/fleet.md, Approvals): a central PostgreSQL,
a target PostgreSQL and three hoopd instances on this machine (nodea, nodeb, nodec: each its own
pin root, control socket, listen port, state dir, attached agent cgroup and central login role),
each running its shipper. A statement held on a node appears in `hoopctl central approvals`, is
decided with `hoopctl central approve|deny` by approvers' login roles (members of hoop_approver)
and runs once (or is refused) on that node; an approve and a deny at once yield exactly one
decision; self-approval and a wrong sha256 are refused by hoop.decide; a decision taken while
the node could not hear it, for a request that timed out meanwhile, is not applied and the
central row is closed saying so; a local `hoopctl approve` still works and closes the central row.

Usage (as root): tests/e2e/test_central_approvals.py [NAME-SUBSTRING ...]
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import (HOOPCTL, Cgroup, Cleanup, Hoopd, Postgres, check, check_clean_stop, log,  # noqa: E402
                      run_tests, teardown, wait_for)

NODES = ("nodea", "nodeb", "nodec")
LOCAL_APPR = "hoopcappr%d" % (os.getpid() % 100000)
# approvers' login roles; carol is also the owner of nodea's agents (self-approval)
APPROVERS = ("appr1", "appr2", "carol")
OWNERS = {"nodea": "carol@example.org", "nodeb": "dave@example.org", "nodec": "erin@example.org"}


class Ctx:
    pass


def su_dsn(ctx):
    return "host=127.0.0.1 port=%d user=postgres dbname=fleet" % ctx.central.port


def role_dsn(ctx, role):
    return "host=127.0.0.1 port=%d user=%s password=%s-pw dbname=fleet" % (ctx.central.port, role, role)


def central_sql(ctx, sql, args=None, dsn=None):
    with psycopg.connect(dsn or su_dsn(ctx), autocommit=True) as c:
        cur = c.execute(sql, args)
        return cur.fetchall() if cur.description else None


def policy(ctx, timeout="60s"):
    return """version: 1
targets:
  - name: pg
    protocol: postgres
    ports: [%d]
approvals:
  approvers: [%s]
  timeout: %s
rules:
  - name: patients-need-approval
    action: approve
    match: {statements: [select], tables: [patients]}
    message: "hoop: reading patients needs approval"
""" % (ctx.target.port, LOCAL_APPR, timeout)


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", LOCAL_APPR], check=True)
    ctx.cleanup.push(subprocess.run, ["userdel", LOCAL_APPR])
    roles = NODES + APPROVERS + ("auditor1",)
    ctx.central = Postgres(ctx.cleanup, hba_first=tuple(
        "host all %s 127.0.0.1/32 scram-sha-256" % r for r in roles),
        extra=("password_encryption=scram-sha-256",))
    ctx.central.psql_direct("create database fleet")
    ctx.target = Postgres(ctx.cleanup)
    ctx.target.psql_direct("create database clinical")
    for sql in ("create table patients (id int primary key, name text)",
                "insert into patients select g, 'P' || g from generate_series(1, 50) g",
                "create sequence ran"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.target.port), "-U", "postgres", "-d",
                        "clinical", "-qXc", sql], check=True, capture_output=True)
    r = hoopctl("central", "init", "--dsn", su_dsn(ctx))
    check(r.returncode == 0, "central init: %s%s" % (r.stdout, r.stderr))
    for role in roles:
        grp = "hoop_node" if role in NODES else "hoop_auditor" if role == "auditor1" else "hoop_approver"
        central_sql(ctx, "create role %s login password '%s-pw'; grant %s to %s" % (role, role, grp, role))
    ctx.hd, ctx.cg, ctx.hoopds = {}, {}, []
    for node in NODES:
        hd = Hoopd(ctx.cleanup, policy(ctx), tag=node)
        os.chmod(hd.dir, 0o755)  # the local approver reaches the control socket
        dsn_file = os.path.join(hd.dir, "central.dsn")
        fd = os.open(dsn_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (role_dsn(ctx, node) + "\n").encode())
        os.close(fd)
        hd.start("--central-dsn-file", dsn_file, "--node", node)
        cg = Cgroup(ctx.cleanup, "agents-" + node)
        ctx.cleanup.push(lambda hd=hd, cg=cg: hd.proc and hd.ctl("detach", "--cgroup", cg.path, check=False))
        hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNERS[node])
        ctx.hd[node], ctx.cg[node] = hd, cg
        ctx.hoopds.append(hd)
    for node in NODES:
        wait_for(lambda node=node: (ctx.hd[node].status().get("central") or {}).get("connected"), 30,
                 "the shipper of %s to connect" % node)
    return ctx


# ---- helpers ------------------------------------------------------------------------------------

def hoopctl(*args, timeout=60):
    return subprocess.run([HOOPCTL] + list(args), capture_output=True, text=True, timeout=timeout)


def central(ctx, role, *args, timeout=60):
    cmd, rest = args[0], list(args[1:])
    return hoopctl("central", cmd, "--dsn", role_dsn(ctx, role), *rest, timeout=timeout)


def central_pending(ctx, role="appr1"):
    r = central(ctx, role, "approvals", "--json")
    check(r.returncode == 0, "central approvals: " + r.stdout + r.stderr)
    return json.loads(r.stdout)["approvals"]


def ran(ctx):
    """How often a held statement has run: the target's sequence, advanced by each run."""
    with psycopg.connect("host=127.0.0.1 port=%d user=postgres dbname=clinical" % ctx.target.port,
                         autocommit=True) as c:
        last, called = c.execute("select last_value, is_called from ran").fetchone()
    return last if called else 0


def held_psql(ctx, node, tag):
    argv = ["psql", "-h", "127.0.0.1", "-p", str(ctx.target.port), "-U", "postgres", "-d", "clinical",
            "-tAX", "-c", "select nextval('ran'), count(*), '%s' from patients" % tag]
    return ctx.cg[node].popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)


def wait_central(ctx, node, tag, timeout=15):
    return wait_for(lambda: next((a for a in central_pending(ctx) if a["node"] == node and tag in a["statement"]),
                                 None), timeout, "the request %s of %s in the central queue" % (tag, node))


def local_records(ctx, node, kind, approval):
    return [e for e in ctx.hd[node].events() if e["kind"] == kind and e.get("approval") == approval]


def row(ctx, node, ident):
    r = central_sql(ctx, "select state, decided_by, applied_at is not null, outcome from hoop.approvals "
                         "where node = %s and id = %s", (node, ident))
    return r[0] if r else None


# ---- tests -------------------------------------------------------------------------------------

def test_held_on_a_approved_centrally_runs_once(ctx):
    before = ran(ctx)
    p = held_psql(ctx, "nodea", "t-once")
    a = wait_central(ctx, "nodea", "t-once")
    check(a["owner"] == "carol@example.org" and a["rule"] == "patients-need-approval" and len(a["sha256"]) == 64,
          "central row: %s" % a)
    local = json.loads(ctx.hd["nodea"].ctl("approvals", "--json").stdout)["approvals"]
    check([x["sha256"] for x in local if x["id"] == a["id"]] == [a["sha256"]], "local and central sha256 differ")
    for other in ("nodeb", "nodec"):
        check(not json.loads(ctx.hd[other].ctl("approvals", "--json").stdout)["approvals"],
              "%s holds something" % other)
    txt = central(ctx, "appr1", "approvals")
    check("nodea %s" % a["id"] in txt.stdout and "t-once" in txt.stdout and a["sha256"] in txt.stdout, txt.stdout)
    time.sleep(0.3)
    check(p.poll() is None, "the held statement did not wait")
    t0 = time.time()
    r = central(ctx, "appr1", "approve", "nodea", a["id"], "--sha256", a["sha256"][:16], "--reason", "ticket 7")
    out, err = p.communicate(timeout=30)
    took = time.time() - t0
    check(r.returncode == 0 and "approved nodea/%s" % a["id"] in r.stdout and "node nodea ran it" in r.stdout,
          "central approve: %s%s" % (r.stdout, r.stderr))
    check(out.strip().endswith("|50|t-once"), "psql after the central approval: %r %r" % (out, err))
    check(took < 4, "the node took %.1f s to apply the decision" % took)
    check(ran(ctx) == before + 1, "ran %d time(s)" % (ran(ctx) - before))
    dec = wait_for(lambda: local_records(ctx, "nodea", "approval_decision", a["id"]), 10,
                   "the local decision record")
    check(len(dec) == 1 and dec[0]["decision"] == "approved" and dec[0]["by"] == "central:appr1" and
          dec[0]["via"] == "central" and dec[0]["reason"] == "ticket 7" and dec[0]["sha256"] == a["sha256"],
          "local record: %s" % dec)
    wait_for(lambda: row(ctx, "nodea", a["id"])[2], 5, "the central row to be marked applied")
    st = row(ctx, "nodea", a["id"])
    check(st[0] == "approved" and st[1] == "appr1" and "applied" in st[3], "central row: %s" % (st,))
    check(not central_pending(ctx), "still pending centrally")
    log("  held on nodea, approved centrally, ran once %.2f s after the approve" % took)


def race_once(ctx, node, tag):
    """A held statement on node; appr1 approves and appr2 denies at the same moment."""
    before = ran(ctx)
    p = held_psql(ctx, node, tag)
    a = wait_central(ctx, node, tag)
    go = threading.Barrier(2)
    res = {}

    def decide(role, *args):
        go.wait()
        res[role] = central(ctx, role, *args)
    th = [threading.Thread(target=decide, args=("appr1", "approve", node, a["id"], "--sha256", a["sha256"],
                                                 "--wait", "0")),
          threading.Thread(target=decide, args=("appr2", "deny", node, a["id"], "--reason", "race", "--wait", "0"))]
    for t in th:
        t.start()
    for t in th:
        t.join()
    won = [k for k, v in res.items() if v.returncode == 0]
    check(len(won) == 1, "%s: winners %s: %s" % (tag, won, {k: v.stdout + v.stderr for k, v in res.items()}))
    lost = [v for k, v in res.items() if k not in won][0]
    check(lost.returncode == 1 and "already" in lost.stderr, "the loser's answer: %s" % lost.stderr)
    out, err = p.communicate(timeout=30)
    # the decision's record reaches the trail through the broker's store, which may be a
    # moment behind the agent's answer (the worker answers once it has handed it over)
    dec = wait_for(lambda: local_records(ctx, node, "approval_decision", a["id"]), 10,
                   "%s: the local decision record" % tag)
    check(len(dec) == 1, "%s: %d local decisions" % (tag, len(dec)))
    if won == ["appr1"]:
        check(out.strip().endswith("|50|" + tag) and ran(ctx) == before + 1 and
              dec[0]["by"] == "central:appr1" and dec[0]["decision"] == "approved", "%s: %r %r %s" % (tag, out, err, dec))
    else:
        check("denied by central:appr2: race" in err and ran(ctx) == before and
              dec[0]["by"] == "central:appr2" and dec[0]["decision"] == "denied", "%s: %r %r %s" % (tag, out, err, dec))
    return won[0]


def test_concurrent_approve_and_deny_one_decision(ctx):
    wins = [race_once(ctx, NODES[i % 3], "t-race%d" % i) for i in range(6)]
    log("  through the nodes: winners %s" % wins)
    # hoop.decide alone, many times: rows of a node that does not run, two approvers at once
    central_sql(ctx, "insert into hoop.approvals (node, id, sha256, owner) select 'nodex', 'x' || g, "
                     "repeat('ab', 32), 'zed@example.org' from generate_series(1, 40) g")
    counts = {"approve": 0, "deny": 0}
    for i in range(1, 41):
        go = threading.Barrier(2)
        res = {}

        def decide(role, dec):
            with psycopg.connect(role_dsn(ctx, role), autocommit=True) as c:
                go.wait()
                try:
                    c.execute("select hoop.decide('nodex', %s, %s, %s, 'r')", ("x%d" % i, dec, "ab" * 8))
                    res[dec] = True
                except psycopg.Error as e:
                    res[dec] = str(e)
        th = [threading.Thread(target=decide, args=("appr1", "approve")),
              threading.Thread(target=decide, args=("appr2", "deny"))]
        for t in th:
            t.start()
        for t in th:
            t.join()
        winners = [k for k, v in res.items() if v is True]
        check(len(winners) == 1, "x%d: %s" % (i, res))
        check("already" in [v for v in res.values() if v is not True][0], "x%d loser: %s" % (i, res))
        counts[winners[0]] += 1
        st = central_sql(ctx, "select state, decided_by from hoop.approvals where node = 'nodex' and id = %s",
                         ("x%d" % i,))[0]
        check(st == (("approved", "appr1") if winners[0] == "approve" else ("denied", "appr2")), "x%d: %s" % (i, st))
    central_sql(ctx, "delete from hoop.approvals where node = 'nodex'")
    log("  hoop.decide raced 40 times: %s" % counts)


def test_self_approval_and_wrong_sha256_refused(ctx):
    before = ran(ctx)
    p = held_psql(ctx, "nodea", "t-self")
    a = wait_central(ctx, "nodea", "t-self")
    r = central(ctx, "carol", "approve", "nodea", a["id"], "--sha256", a["sha256"][:16])
    check(r.returncode == 1 and "owner may not decide its own request" in r.stderr, "self: " + r.stderr)
    wrong = ("0" if a["sha256"][0] != "0" else "1") + a["sha256"][1:16]
    r = central(ctx, "appr1", "approve", "nodea", a["id"], "--sha256", wrong)
    check(r.returncode == 1 and "does not match" in r.stderr, "wrong sha256: " + r.stderr)
    r = central(ctx, "appr1", "approve", "nodea", a["id"], "--sha256", a["sha256"][:15])
    check(r.returncode == 1 and "16 or more hex digits" in r.stderr, "short sha256: " + r.stderr)
    r = central(ctx, "auditor1", "approve", "nodea", a["id"], "--sha256", a["sha256"])
    check(r.returncode == 1 and "permission denied" in r.stderr, "auditor: " + r.stderr)
    # a node's role can neither call hoop.decide nor write decided_by
    for sql in ("select hoop.decide('nodea', '%s', 'approve', '%s', 'x')" % (a["id"], a["sha256"]),
                "update hoop.approvals set decided_by = 'appr1', state = 'approved' where id = '%s'" % a["id"]):
        try:
            central_sql(ctx, sql, dsn=role_dsn(ctx, "nodea"))
            raise AssertionError("nodea's role could: " + sql)
        except psycopg.errors.InsufficientPrivilege:
            pass
    time.sleep(1.5)
    check(p.poll() is None and row(ctx, "nodea", a["id"])[0] == "pending", "a refused attempt decided it")
    r = central(ctx, "appr2", "deny", "nodea", a["id"], "--reason", "not today")
    out, err = p.communicate(timeout=30)
    check(r.returncode == 0 and "node nodea refused it" in r.stdout, r.stdout + r.stderr)
    check("ERROR:  hoop: denied by central:appr2: not today" in err and ran(ctx) == before, err)


def test_central_decision_for_a_timed_out_request_not_applied(ctx):
    node, hd = "nodec", ctx.hd["nodec"]
    hd.write_policy(policy(ctx, timeout="3s"))
    hd.ctl("reload")
    pid = None
    try:
        before = ran(ctx)
        p = held_psql(ctx, node, "t-late")
        a = wait_central(ctx, node, "t-late")
        # the node is cut off from the central database (its shipper stopped) while the
        # request times out locally and an approver approves it centrally
        pid = hd.status()["central"]["shipper_pid"]
        os.kill(pid, signal.SIGSTOP)
        out, err = p.communicate(timeout=30)
        check("no approver decided in time" in err, "psql: %r %r" % (out, err))
        check(row(ctx, node, a["id"])[0] == "pending", "closed centrally while the shipper was stopped")
        appr = subprocess.Popen([HOOPCTL, "central", "approve", "--dsn", role_dsn(ctx, "appr1"), node, a["id"],
                                 "--sha256", a["sha256"][:20], "--wait", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: row(ctx, node, a["id"])[0] == "approved", 10, "the central approval")
        os.kill(pid, signal.SIGCONT)
        pid = None
        out, err = appr.communicate(timeout=30)
        check(appr.returncode == 1 and "approved nodec/%s" % a["id"] in out and
              "did not apply it: not applied: the request was no longer pending" in err,
              "what the approver sees: %r %r" % (out, err))
        st = row(ctx, node, a["id"])
        check(st[0] == "closed" and st[1] == "appr1" and not st[2], "central row: %s" % (st,))
        check(ran(ctx) == before, "the timed-out statement ran")
        dec = wait_for(lambda: local_records(ctx, node, "approval_decision", a["id"]), 10,
                       "the local decision record")
        check([d["decision"] for d in dec] == ["timed_out"], "local decisions: %s" % dec)
        r = central(ctx, "appr2", "deny", node, a["id"], "--reason", "x")
        check(r.returncode == 1 and "already closed" in r.stderr, r.stderr)
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
        hd.write_policy(policy(ctx))
        hd.ctl("reload")


def test_local_approve_still_works_and_closes_the_central_row(ctx):
    node, hd = "nodeb", ctx.hd["nodeb"]
    before = ran(ctx)
    p = held_psql(ctx, node, "t-local")
    a = wait_central(ctx, node, "t-local")
    r = subprocess.run(["runuser", "-u", LOCAL_APPR, "--", HOOPCTL, "--control", hd.control, "approve", a["id"],
                        "--sha256", a["sha256"][:16], "--reason", "local"], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, "local approve: " + r.stderr)
    out, err = p.communicate(timeout=30)
    check(out.strip().endswith("|50|t-local") and ran(ctx) == before + 1, "psql: %r %r" % (out, err))
    wait_for(lambda: row(ctx, node, a["id"])[0] == "closed", 10, "the central row to close")
    st = row(ctx, node, a["id"])
    check(st[1] is None and "closed on the node" in st[3], "central row: %s" % (st,))
    r = central(ctx, "appr1", "approve", node, a["id"], "--sha256", a["sha256"][:16])
    check(r.returncode == 1 and "already closed on the node" in r.stderr, r.stderr)
    dec = wait_for(lambda: local_records(ctx, node, "approval_decision", a["id"]), 10,
                   "the local decision record")
    check(len(dec) == 1 and dec[0]["by"] == LOCAL_APPR and "via" not in dec[0], dec)


def test_only_root_relays_central_decisions(ctx):
    # the control socket's central_by is root's (the shipper's): an approver may not claim it
    hd = ctx.hd["nodeb"]
    code = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "s.sendall(b'{\"cmd\":\"deny\",\"id\":\"a00000000\",\"reason\":\"x\",\"central_by\":\"appr1\"}\\n'); "
            "print(s.recv(4096).decode())")
    r = subprocess.run(["runuser", "-u", LOCAL_APPR, "--", "/usr/bin/python3", "-c", code, hd.control],
                       capture_output=True, text=True, timeout=30)
    check("only root relays central decisions" in r.stdout, r.stdout + r.stderr)


def test_clean_stop(ctx):
    for node in NODES:
        check_clean_stop(ctx.hd[node], ctx.cg[node].path)


TESTS = [
    test_held_on_a_approved_centrally_runs_once,
    test_concurrent_approve_and_deny_one_decision,
    test_self_approval_and_wrong_sha256_refused,
    test_central_decision_for_a_timed_out_request_not_applied,
    test_local_approve_still_works_and_closes_the_central_row,
    test_only_root_relays_central_decisions,
    test_clean_stop,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root")
    sys.exit(run_tests(TESTS, setup, teardown, sys.argv[1:]))
