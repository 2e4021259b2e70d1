#!/usr/bin/python3
"""End-to-end tests of the process split (issue 15, docs/architecture.md): hoopd --workers N runs
every session in an unprivileged, sandboxed engine worker; the privileged broker hands sessions
over and keeps the trail. Real PostgreSQL, psql and pgbench, agents in attached cgroups.

Usage (as root): tests/e2e/test_workers.py [NAME-SUBSTRING ...]
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import (Cgroup, Cleanup, Hoopd, Postgres, check, check_clean_stop, children,  # noqa: E402
                      proc_status, run_tests, teardown, wait_for, ROOT, HOOPCTL)

WORKERS = 2
OWNER = "dana@example.org"


class Ctx:
    pass


def policy(ctx, extra_rule=""):
    with open(os.path.join(ROOT, "policies", "hipaa-agents.yaml")) as f:
        text = f.read()
    text = re.sub(r"ports: \[5432\]", "ports: [%d]" % ctx.pg.port, text, count=1)
    text = re.sub(r"upstream_tls: [a-z-]+", "upstream_tls: disable", text, count=1)
    text = text.replace('approvers: ["group:hoop-approvers"]', 'approvers: ["root"]')
    if extra_rule:
        text = text.replace("rules:\n", "rules:\n" + extra_rule, 1)
    return text


def dsn(ctx):
    return "host=127.0.0.1 port=%d dbname=clinical user=postgres sslmode=disable" % ctx.pg.port


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.pg = Postgres(ctx.cleanup)
    ctx.pg.psql_direct("create database clinical")
    for sql in ("create table patients (id int primary key, name text, ssn text)",
                "insert into patients select g, 'P' || g, lpad(g::text, 9, '0') from generate_series(1, 50) g"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical",
                        "-qXc", sql], check=True, capture_output=True)
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                    "clinical"], check=True, capture_output=True)
    ctx.hd = Hoopd(ctx.cleanup, "version: 1\n")
    ctx.hd.write_policy(policy(ctx))
    ctx.hoopds = [ctx.hd]
    ctx.hd.start("--workers", str(WORKERS))
    # Agent cgroups until two of them are placed on different workers (by their cgroup).
    ctx.cgs = {}
    for i in range(16):
        cg = Cgroup(ctx.cleanup, "agents%d" % i)
        ctx.cleanup.push(lambda p=cg.path: ctx.hd.proc and ctx.hd.ctl("detach", "--cgroup", p, check=False))
        ctx.hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        w = worker_of(ctx, cg)
        ctx.cgs.setdefault(w, cg)
        if len(ctx.cgs) == WORKERS:
            break
    check(len(ctx.cgs) == WORKERS, "no two agent cgroups on different workers: %r" % list(ctx.cgs))
    return ctx


def status(ctx):
    return ctx.hd.status()


def workers(ctx):
    return {w["worker"]: w for w in status(ctx)["workers"]}


def worker_of(ctx, cg):
    """The worker that runs cg's sessions: one held open while status says where it is (after
    the earlier probes' sessions ended, so that it goes to its home worker)."""
    settle(ctx)
    p = cg.popen(["psql", "-X", dsn(ctx), "-c", "select pg_sleep(3)"], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    try:
        conns = wait_for(lambda: [c for c in status(ctx)["connections"] if c["cgroup"].endswith(os.path.basename(cg.path))],
                         10, "the session in status")
        return conns[0]["worker"]
    finally:
        p.kill()
        p.wait()


def settle(ctx):
    """Wait until no session is open: a cgroup's first session goes to its home worker only when
    that one is not busier than the others (docs/architecture.md), and sessions of an earlier
    step may still be ending (slowly under the sanitizers)."""
    wait_for(lambda: not status(ctx)["connections"], 15, "the earlier sessions to end")


def where(ctx, cg):
    """The worker running cg's one open session, as status reports it."""
    conns = wait_for(lambda: [c for c in status(ctx)["connections"]
                              if c["cgroup"].endswith("/" + os.path.basename(cg.path))], 10, "the session in status")
    check(len(conns) == 1, "one session of %s expected in status: %r" % (cg.path, conns))
    return conns[0]["worker"]


def trail(ctx):
    return ctx.hd.events()


def verify(ctx):
    r = subprocess.run([HOOPCTL, "verify", "--state-dir", ctx.hd.state, "--public-key",
                        os.path.join(ctx.hd.state, "audit.pub"), "--json"], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


# ---- the tests ----------------------------------------------------------------------------------

def test_workers_hold_no_privilege(ctx):
    """Each worker: every capability set empty (the bounding set too), no_new_privs, a seccomp
    filter, a uid and gid that are not root; the broker keeps what it needs."""
    pids = children(ctx.hd.proc.pid, b"--worker")
    ws = workers(ctx)
    check(len(pids) == WORKERS and sorted(w["pid"] for w in ws.values()) == pids,
          "worker processes %r, status says %r" % (pids, ws))
    for pid in pids:
        st = proc_status(pid)
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            check(int(st[cap], 16) == 0, "worker %d %s is %s" % (pid, cap, st[cap].strip()))
        check(st["NoNewPrivs"].strip() == "1", "worker %d NoNewPrivs %s" % (pid, st["NoNewPrivs"]))
        check(st["Seccomp"].strip() == "2", "worker %d Seccomp %s" % (pid, st["Seccomp"]))
        check(all(u != "0" for u in st["Uid"].split()) and all(g != "0" for g in st["Gid"].split()),
              "worker %d runs as uid %s gid %s" % (pid, st["Uid"].strip(), st["Gid"].strip()))
        fds = os.listdir("/proc/%d/fd" % pid)
        check(len(fds) < 40, "worker %d holds %d descriptors at rest: %r" % (pid, len(fds), fds))
    broker = proc_status(ctx.hd.proc.pid)
    check(int(broker["CapEff"], 16) != 0, "the broker lost its capabilities")


def test_sessions_run_in_workers_and_are_recorded_once(ctx):
    """A query through each worker answers as directly, and the trail has one session_start and
    one session_end per session, whichever worker ran it."""
    before = len(trail(ctx))
    for w, cg in sorted(ctx.cgs.items()):
        r = cg.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select count(*) from patients limit 1"])
        check(r.returncode == 0 and r.stdout.strip() == "50", "worker %d: %r %r" % (w, r.stdout, r.stderr))
    wait_for(lambda: len([r for r in trail(ctx)[before:] if r["kind"] == "session_end"]) >= WORKERS, 5,
             "the sessions' ends")
    recs = trail(ctx)[before:]
    starts = [r for r in recs if r["kind"] == "session_start"]
    ends = [r for r in recs if r["kind"] == "session_end"]
    check(len(starts) == WORKERS and len(ends) == WORKERS and
          {r["session"] for r in starts} == {r["session"] for r in ends},
          "starts %r ends %r" % ([r["session"] for r in starts], [r["session"] for r in ends]))
    check(all(r["agent"].get("owner") == OWNER for r in starts), "identity: %r" % starts)


def test_decisions_and_reloads_reach_the_worker_holding_the_session(ctx):
    """A policy reload reaches every worker (a new deny rule refuses on both); an approval held
    on one worker is listed by the broker and decided there."""
    rule = ("  - name: no-pgbench-history\n    action: deny\n"
            "    match: {statements: [delete], tables: [pgbench_history]}\n    message: not here\n")
    ctx.hd.write_policy(policy(ctx, rule))
    ctx.hd.ctl("reload")
    for w, cg in sorted(ctx.cgs.items()):
        r = cg.run(["psql", "-X", "-tA", dsn(ctx), "-c", "delete from pgbench_history where aid = -1"])
        check(r.returncode != 0 and "not here" in r.stderr, "worker %d after the reload: %r" % (w, r.stderr))
    ctx.hd.write_policy(policy(ctx))
    ctx.hd.ctl("reload")
    settle(ctx)
    # a statement the shipped policy holds for approval (PHI read without a LIMIT), on one worker
    w, cg = sorted(ctx.cgs.items())[-1]
    # the agent is not root, who decides (an agent's own uid may not)
    p = cg.popen(["runuser", "-u", "nobody", "--", "psql", "-X", "-tA", dsn(ctx), "-c",
                  "select name from patients where id > 0"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pend = wait_for(lambda: json.loads(ctx.hd.ctl("approvals", "--json").stdout)["approvals"], 15,
                        "the held statement in the broker's list")
        check(where(ctx, cg) == w, "the session runs on worker %r, expected %d" % (where(ctx, cg), w))
        check(pend[0].get("worker") == w, "held on worker %r, expected %d" % (pend[0].get("worker"), w))
        ctx.hd.ctl("deny", pend[0]["id"], "--reason", "not today")
        out, err = p.communicate(timeout=20)
        check(p.returncode != 0 and "not today" in err, "denied statement: %r %r" % (out, err))
        bad = ctx.hd.ctl("approve", "a00000000", "--sha256", "0" * 64, check=False)
        check(bad.returncode != 0 and "no pending approval" in (bad.stdout + bad.stderr), bad.stdout + bad.stderr)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sigkill_of_a_worker_loses_only_its_sessions(ctx):
    """Under pgbench load on both workers, SIGKILL one: its clients fail, the other worker's run
    to the end, a new worker takes the index, new sessions are served, and the trail verifies
    with a session_end (reason worker_lost) for every session the lost worker had started."""
    (wa, cga), (wb, cgb) = sorted(ctx.cgs.items())
    settle(ctx)
    before = len(trail(ctx))
    old = workers(ctx)
    bench = ["pgbench", "-n", "-S", "-c", "4", "-j", "2", "-T", "8", "-h", "127.0.0.1", "-p",
             str(ctx.pg.port), "-U", "postgres", "clinical"]
    pa = cga.popen(bench, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pb = cgb.popen(bench, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: workers(ctx)[wa]["sessions"] >= 4 and workers(ctx)[wb]["sessions"] >= 4, 15,
                 "pgbench sessions on both workers")
        time.sleep(1)
        os.kill(old[wa]["pid"], signal.SIGKILL)
        out_a, _ = pa.communicate(timeout=60)
        out_b, _ = pb.communicate(timeout=60)
    finally:
        for p in (pa, pb):
            if p.poll() is None:
                p.kill()
                p.wait()
    check(pa.returncode != 0, "pgbench on the killed worker did not notice: %s" % out_a[-400:])
    check(pb.returncode == 0 and "number of failed transactions: 0" in out_b,
          "pgbench on the other worker failed: %s" % out_b[-600:])
    now = wait_for(lambda: (lambda w: w if w[wa]["pid"] not in (0, old[wa]["pid"]) and w[wa]["ready"] else None)(workers(ctx)),
                   20, "a new worker %d" % wa)
    check(now[wa]["lost"] == old[wa]["lost"] + 1 and now[wb]["pid"] == old[wb]["pid"], "workers: %r" % now)
    r = cga.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select count(*) from patients limit 1"])
    check(r.returncode == 0 and r.stdout.strip() == "50", "after the loss: %r %r" % (r.stdout, r.stderr))
    allrecs = trail(ctx)
    recs = allrecs[before:]

    def sessions_of(cg, rs):
        return {r["session"] for r in rs if r["kind"] == "session_start" and
                r["agent"]["cgroup"].endswith("/" + os.path.basename(cg.path))}
    a_all, b_all = sessions_of(cga, allrecs), sessions_of(cgb, allrecs)
    started = sessions_of(cga, recs)
    lost = {r["session"] for r in recs if r["kind"] == "session_end" and r.get("reason") == "worker_lost"}
    ended = {r["session"] for r in recs if r["kind"] == "session_end"}
    # every worker_lost end is of a session whose start is in the trail (the broker ends only
    # those), at least the four pgbench sessions of the killed worker's cgroup among them;
    # other cgroups placed on that worker may have had sessions too
    all_started = {r["session"] for r in allrecs if r["kind"] == "session_start"}
    check(len(lost & a_all) >= 4 and lost <= all_started,
          "worker_lost ends %r, the lost worker's cgroup's sessions %r, without a start %r" % (
              sorted(lost), sorted(a_all), sorted(lost - all_started)))
    check(started <= ended, "sessions of the lost worker without an end: %r" % sorted(started - ended))
    check(not (b_all & lost), "the other worker's sessions were ended as lost: %r" % sorted(b_all & lost))
    rc, rep = verify(ctx)
    check(rc == 0, "hoopctl verify after the loss: %s" % rep[-800:])
    check("engine worker %d lost" % wa in ctx.hd.log_text(), "the broker did not say so")


def test_held_statement_on_a_lost_worker_is_recorded_failed(ctx):
    """A statement waiting for approval on a worker that is lost: its request is recorded as
    failed (worker_lost), its session's end too, and the broker's list forgets it."""
    w, cg = sorted(ctx.cgs.items())[0]
    settle(ctx)
    p = cg.popen(["runuser", "-u", "nobody", "--", "psql", "-X", "-tA", dsn(ctx), "-c",
                  "select name from patients where id > 1"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pend = wait_for(lambda: json.loads(ctx.hd.ctl("approvals", "--json").stdout)["approvals"], 15,
                        "the held statement")
        check(where(ctx, cg) == w, "the session runs on worker %r, expected %d" % (where(ctx, cg), w))
        os.kill(workers(ctx)[w]["pid"], signal.SIGKILL)
        p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    wait_for(lambda: workers(ctx)[w]["ready"], 20, "the new worker")
    recs = trail(ctx)
    dec = [r for r in recs if r["kind"] == "approval_decision" and r.get("approval") == pend[0]["id"]]
    check(dec and dec[-1]["decision"] == "failed" and dec[-1].get("why") == "worker_lost", "decision: %r" % dec)
    check(not json.loads(ctx.hd.ctl("approvals", "--json").stdout)["approvals"], "still listed")
    check(p.returncode != 0, "the agent's psql did not see its session end")


def test_agents_spread_over_the_workers(ctx):
    """An agent cgroup's first session goes to the worker with the fewest sessions, its later
    ones to the worker that runs the others (its budget and caps are counted in one process):
    a cgroup that alone lands on the busy worker goes to the idle one, and a busy cgroup's new
    session joins its own worker even when the other has fewer."""
    (wa, cga), (wb, cgb) = sorted(ctx.cgs.items())
    extra = None
    for i in range(16):
        cg = Cgroup(ctx.cleanup, "spread%d" % i)
        ctx.cleanup.push(lambda p=cg.path: ctx.hd.proc and ctx.hd.ctl("detach", "--cgroup", p, check=False))
        ctx.hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        if worker_of(ctx, cg) == wa:
            extra = cg
            break
    check(extra is not None, "no cgroup that alone lands on worker %d" % wa)

    def on(cg):
        return [c["worker"] for c in status(ctx)["connections"]
                if c["cgroup"].endswith("/" + os.path.basename(cg.path))]
    sleep = ["psql", "-X", dsn(ctx), "-c", "select pg_sleep(6)"]
    wait_for(lambda: not status(ctx)["connections"], 10, "the probes' sessions to end")
    held = []
    try:
        held += [cga.popen(sleep, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        wait_for(lambda: len(on(cga)) == 2, 10, "two sessions of the first agent")
        check(on(cga) == [wa, wa], "one agent's sessions on two workers: %r" % on(cga))
        held.append(extra.popen(sleep, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: len(on(extra)) == 1, 10, "the second agent's session")
        check(on(extra) == [wb], "the second agent went to worker %r, not to the idle %d" % (on(extra), wb))
        held.append(cga.popen(sleep, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: len(on(cga)) == 3, 10, "a third session of the first agent")
        check(on(cga) == [wa] * 3, "the first agent's new session left its worker: %r" % on(cga))
    finally:
        for p in held:
            p.kill()
            p.wait()
    ctx.hd.ctl("detach", "--cgroup", extra.path)


def test_metrics_and_status_sum_the_workers(ctx):
    """Counters a worker keeps (bytes relayed, connections closed) reach the broker's metrics
    and status within a couple of seconds."""
    m0 = ctx.hd.metrics()
    base = int(re.search(r"^hoop_bytes_agent_to_db_total (\d+)", m0, re.M).group(1))
    for w, cg in sorted(ctx.cgs.items()):
        cg.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select 1"])
    wait_for(lambda: int(re.search(r"^hoop_bytes_agent_to_db_total (\d+)", ctx.hd.metrics(), re.M).group(1)) > base,
             5, "the workers' bytes in the metrics")
    st = status(ctx)
    check(st["stats"]["bytes_agent_to_db"] > 0 and len(st["workers"]) == WORKERS, "status: %r" % st["stats"])


def test_stop_is_clean(ctx):
    """hoopd stops with its workers: none is left, and the trail verifies."""
    pids = [w["pid"] for w in workers(ctx).values()]
    broker = ctx.hd.proc.pid
    for cg in ctx.cgs.values():
        ctx.hd.ctl("detach", "--cgroup", cg.path, check=False)
    check_clean_stop(ctx.hd, list(ctx.cgs.values())[0].path)
    check(pids and not children(broker, b"--worker") and
          all(not os.path.exists("/proc/%d" % p) for p in pids), "workers left: %r" % pids)
    rc, rep = verify(ctx)
    check(rc == 0, "verify after the stop: %s" % rep[-400:])


TESTS = [test_workers_hold_no_privilege, test_sessions_run_in_workers_and_are_recorded_once,
         test_decisions_and_reloads_reach_the_worker_holding_the_session,
         test_sigkill_of_a_worker_loses_only_its_sessions, test_held_statement_on_a_lost_worker_is_recorded_failed,
         test_agents_spread_over_the_workers, test_metrics_and_status_sum_the_workers, test_stop_is_clean]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, setup, teardown, sys.argv[1:]))
