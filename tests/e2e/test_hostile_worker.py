#!/usr/bin/python3
"""A compromised engine worker against the real broker (issue 15, docs/architecture.md, "What the
broker does not trust a worker with").

An engine worker parses hostile bytes; one memory-safety bug and the agent runs code in it, with
the worker's descriptors. These tests take a running worker over the way such code would hold
it: its control, audit and catalog channels are duplicated out of it (pidfd_getfd, as root),
the real process is stopped, and the test speaks on those channels as the attacker. Then they
check what an operator relies on: the broker cuts the worker off (it is killed and replaced,
and says why), runs no notify command and passes on no grant nobody decided, lists no approval
and lifts no connection cap for sessions the worker does not run, answers `hoopctl` with bounded
answers, starts at most three catalog loaders per worker, each for one job and only for a
target's address, never lets a record speak as the store, and every other agent's sessions go
on; the trail verifies at the end.

Usage (as root): tests/e2e/test_hostile_worker.py [NAME-SUBSTRING ...]
"""
import array
import ctypes
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import (Cgroup, Cleanup, Hoopd, Postgres, check, check_clean_stop, children,  # noqa: E402
                      run_tests, teardown, wait_for, ROOT, HOOPCTL)

WORKERS = 3
OWNER = "dana@example.org"
CAP = 3  # limits.connections_per_cgroup

# user/hoopd/workers/wire.h
WM_STATUS, WM_APPROVALS, WM_CATFD = 4, 5, 8
WM_ENDED, WM_STATUS_REPLY, WM_APPROVALS_REPLY, WM_STATS, WM_NOTIFY, WM_GRANT_MADE, WM_HELD = \
    33, 35, 36, 37, 38, 39, 40
WM_CATREQ = 42
SYS_pidfd_getfd = 438  # x86_64 and arm64 alike
LIBC = ctypes.CDLL(None, use_errno=True)


class Ctx:
    pass


def policy(ctx):
    with open(os.path.join(ROOT, "policies", "hipaa-agents.yaml")) as f:
        text = f.read()
    # the database, and a port that accepts and never answers (a catalog loader sent there waits)
    text = re.sub(r"ports: \[5432\]", "ports: [%d, %d]" % (ctx.pg.port, ctx.hole_port), text, count=1)
    text = re.sub(r"upstream_tls: [a-z-]+", "upstream_tls: disable", text, count=1)
    text = text.replace('approvers: ["group:hoop-approvers"]',
                        'approvers: ["root"]\n  notify_command: "cat >> %s"' % ctx.notified)
    text += "\nlimits:\n  connections_per_cgroup: %d\n" % CAP
    return text


def dsn(ctx):
    return "host=127.0.0.1 port=%d dbname=clinical user=postgres sslmode=disable" % ctx.pg.port


def status(ctx):
    return ctx.hd.status()


def workers(ctx):
    return {w["worker"]: w for w in status(ctx)["workers"]}


def conns_of(ctx, cg):
    return [c for c in status(ctx)["connections"] if c["cgroup"].endswith("/" + os.path.basename(cg.path))]


def worker_of(ctx, cg):
    p = cg.popen(["psql", "-X", dsn(ctx), "-c", "select pg_sleep(3)"], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    try:
        return wait_for(lambda: conns_of(ctx, cg), 10, "the session in status")[0]["worker"]
    finally:
        p.kill()
        p.wait()
        wait_for(lambda: not conns_of(ctx, cg), 10, "the probe's session to end")


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.pg = Postgres(ctx.cleanup)
    ctx.pg.psql_direct("create database clinical")
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical", "-qXc",
                    "create table patients (id int primary key, name text, ssn text); "
                    "insert into patients select g, 'P' || g, lpad(g::text, 9, '0') from generate_series(1, 50) g"],
                   check=True, capture_output=True)
    ctx.hole = socket.socket()
    ctx.hole.bind(("127.0.0.1", 0))
    ctx.hole.listen(16)
    ctx.cleanup.push(ctx.hole.close)
    ctx.hole_port = ctx.hole.getsockname()[1]
    ctx.hd = Hoopd(ctx.cleanup, "version: 1\n")
    ctx.notified = os.path.join(ctx.hd.dir, "notified")
    ctx.hd.write_policy(policy(ctx))
    ctx.hd.start("--workers", str(WORKERS))
    ctx.hijacked_at = {}
    # an agent cgroup on every worker (placement: a cgroup alone goes where the fewest
    # sessions are, the first of them from where it hashes)
    ctx.cgs = {}
    for i in range(24):
        cg = Cgroup(ctx.cleanup, "agents%d" % i)
        ctx.cleanup.push(lambda p=cg.path: ctx.hd.proc and ctx.hd.ctl("detach", "--cgroup", p, check=False))
        ctx.hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
        ctx.cgs.setdefault(worker_of(ctx, cg), cg)
        if len(ctx.cgs) == WORKERS:
            break
    check(len(ctx.cgs) == WORKERS, "no agent cgroup on every worker: %r" % sorted(ctx.cgs))
    return ctx


def steal_fd(pid, fd):
    pidfd = os.pidfd_open(pid)
    try:
        r = LIBC.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, "pidfd_getfd(%d, %d): %s" % (pid, fd, os.strerror(e)))
        return r
    finally:
        os.close(pidfd)


class Hijacked:
    """Worker idx taken over: its channels (control 3, audit 4, catalog 5) as code running in it
    holds them; the real process stopped, so only the test speaks and reads on them."""

    def __init__(self, ctx, idx):
        self.ctx, self.idx = ctx, idx
        # A worker lost within 10 s of its start is replaced only after a back-off: take over
        # one that has run longer.
        since = ctx.hijacked_at.get(idx)
        if since is not None and time.time() - since < 11:
            time.sleep(11 - (time.time() - since))
        w = wait_for(lambda: (lambda x: x if x["ready"] else None)(workers(ctx)[idx]), 40, "worker %d ready" % idx)
        self.pid, self.lost = w["pid"], w["lost"]
        self.ctl = socket.socket(fileno=steal_fd(self.pid, 3))
        self.aud = socket.socket(fileno=steal_fd(self.pid, 4))
        self.cat = socket.socket(fileno=steal_fd(self.pid, 5))
        os.kill(self.pid, signal.SIGSTOP)
        self.log_at = len(ctx.hd.log_text())

    @staticmethod
    def send(sock, mtype, body=b"", token=0, fds=()):
        hdr = struct.pack("=BBBBI", mtype, 0, len(fds), 0, token)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        sock.sendmsg([hdr + body], anc)

    @staticmethod
    def recv(sock, want, timeout=10.0):
        """The next message of type want (single frame), skipping others: (token, body, fds)."""
        end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([sock], [], [], max(0.0, end - time.time()))
            if not r:
                break
            try:
                data, anc, _, _ = sock.recvmsg(1 << 17, socket.CMSG_SPACE(4 * 4), socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            if not data:
                raise AssertionError("the broker closed the channel")
            fds = []
            for level, kind, d in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(array.array("i", d[:len(d) - len(d) % 4]))
            mtype, more, _, _, token = struct.unpack("=BBBBI", data[:8])
            if mtype == want and not more:
                return token, data[8:], fds
            for fd in fds:
                os.close(fd)
        raise AssertionError("no message of type %d from the broker in %.0f s" % (want, timeout))

    def cut_off(self, why, timeout=10):
        """The broker says the worker broke the protocol (why), kills it and starts another."""
        wait_for(lambda: re.search(r"engine worker %d broke the protocol \(%s\): cut off" % (self.idx, re.escape(why)),
                                   self.ctx.hd.log_text()[self.log_at:]), timeout, "the worker cut off for %r" % why)
        wait_for(lambda: not os.path.exists("/proc/%d" % self.pid) or
                 open("/proc/%d/stat" % self.pid).read().rsplit(")", 1)[1].split()[0] == "Z", 10,
                 "the worker killed")
        new = wait_for(lambda: (lambda w: w if w["ready"] and w["pid"] != self.pid else None)(workers(self.ctx)[self.idx]),
                       40, "a new worker %d" % self.idx)
        check(new["lost"] == self.lost + 1, "workers: %r" % new)
        self.ctx.hijacked_at[self.idx] = time.time()

    def close(self):
        for s in (self.ctl, self.aud, self.cat):
            s.close()
        if os.path.exists("/proc/%d" % self.pid):
            try:
                os.kill(self.pid, signal.SIGKILL)  # the broker reaps and replaces it
            except ProcessLookupError:
                pass


def hijack(ctx, idx):
    return Hijacked(ctx, idx)


def other_agents_work(ctx, skip):
    """Every other worker's agent still runs statements."""
    for w, cg in sorted(ctx.cgs.items()):
        if w == skip:
            continue
        r = cg.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select count(*) from patients"])
        check(r.returncode == 0 and r.stdout.strip() == "50", "agent on worker %d: %r %r" % (w, r.stdout, r.stderr))


def held_open(ctx, cg, n, seconds=8):
    """n sessions of cg, each in a pg_sleep, and their ids once status lists them."""
    procs = [cg.popen(["psql", "-X", dsn(ctx), "-c", "select pg_sleep(%d)" % seconds],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(n)]
    ids = [c["session"] for c in wait_for(lambda: (lambda c: c if len(c) >= n else None)(conns_of(ctx, cg)), 10,
                                          "%d sessions of %s" % (n, cg.path))]
    return procs, ids


def reap(procs, wait=True):
    """Their output (wait: let them finish, else kill them first)."""
    outs = []
    for p in procs:
        if not wait and p.poll() is None:
            p.kill()
        outs.append(p.communicate(timeout=30)[0])
    return outs


def pick(ctx, avoid=()):
    """A worker to take over: the one taken over longest ago (or never)."""
    cands = [w for w in sorted(ctx.cgs) if w not in avoid]
    return min(cands, key=lambda w: ctx.hijacked_at.get(w, 0))


# ---- the tests ----------------------------------------------------------------------------------

def test_notification_for_no_request_runs_nothing(ctx):
    """A worker may have the broker run the notify command once per approval request it opened:
    one without any is cut off, and the command does not run."""
    a = pick(ctx)
    h = hijack(ctx, a)
    try:
        h.send(h.ctl, WM_NOTIFY, json.dumps({"approval": "a00000000", "statement": "forged"}).encode())
        h.cut_off("a notification for no request")
    finally:
        h.close()
    time.sleep(1)
    check(not os.path.exists(ctx.notified), "the notify command ran")
    other_agents_work(ctx, a)


def test_held_request_of_another_workers_session_is_refused(ctx):
    """Approval requests are held by the worker that runs the session: one a worker claims for a
    session of another worker is not listed, and the claimant is cut off."""
    a = pick(ctx)
    b = [w for w in sorted(ctx.cgs) if w != a][0]
    procs, ids = held_open(ctx, ctx.cgs[b], 1)
    try:
        h = hijack(ctx, a)
        try:
            body = struct.pack("=16s20s64s", b"a0000000000001", ids[0].encode(), b"forged_rule")
            h.send(h.ctl, WM_HELD, body)
            h.cut_off("a held request of a session it does not run")
        finally:
            h.close()
        r = ctx.hd.ctl("approvals", "--json")
        check("a0000000000001" not in r.stdout and "forged_rule" not in r.stdout, "listed: %s" % r.stdout)
        check(any(c["session"] == ids[0] for c in conns_of(ctx, ctx.cgs[b])), "the other worker's session went")
    finally:
        outs = reap(procs)
    check(procs[0].returncode == 0, "the session on worker %d failed: %s" % (b, outs[0]))


def test_grant_nobody_decided_is_not_passed_on(ctx):
    """A fingerprint grant reaches the other workers only as an approver's decision made it: one a
    worker makes up is not passed on, and the worker is cut off."""
    a = pick(ctx)
    h = hijack(ctx, a)
    try:
        body = struct.pack("=80s256sq", b"f" * 64, OWNER.encode(), 3600 * 1000)
        h.send(h.ctl, WM_GRANT_MADE, body)
        h.cut_off("a grant no decision asked for")
    finally:
        h.close()
    other_agents_work(ctx, a)


def test_descriptors_from_a_worker_cut_it_off(ctx):
    """Descriptors flow to workers, never from them."""
    a = pick(ctx)
    h = hijack(ctx, a)
    r, w = os.pipe()
    try:
        h.send(h.ctl, WM_STATS, b"\0" * 16, fds=[r])
        h.cut_off("descriptors from a worker")
    finally:
        os.close(r)
        os.close(w)
        h.close()


def test_ended_for_another_workers_session_lifts_no_cap(ctx):
    """The broker counts an agent cgroup's connections against its cap until the worker that runs
    them says they ended: a worker that claims another worker's sessions ended changes nothing
    (the cap still holds), and the sessions run on."""
    a = pick(ctx)
    b = [w for w in sorted(ctx.cgs) if w != a][0]
    cg = ctx.cgs[b]
    procs, ids = held_open(ctx, cg, CAP)
    try:
        h = hijack(ctx, a)
        try:
            for sid in ids:
                h.send(h.ctl, WM_ENDED, struct.pack("=20s4xQQ", sid.encode(), 0, 0))
            time.sleep(1)
            r = cg.run(["psql", "-X", "-tA", dsn(ctx), "-c", "select 1"])
            check(r.returncode != 0 and ("53300" in r.stderr or "too many connections" in r.stderr),
                  "a connection over the cap was let in: %r %r" % (r.stdout, r.stderr))
            check(sorted(c["session"] for c in conns_of(ctx, cg)) == sorted(ids), "sessions: %r" % conns_of(ctx, cg))
        finally:
            h.close()
    finally:
        outs = reap(procs)
    check(all(p.returncode == 0 for p in procs), "the capped agent's sessions failed: %r" % outs)
    ctx.hijacked_at[a] = time.time()
    wait_for(lambda: (lambda w: w["ready"] and w["pid"] != h.pid)(workers(ctx)[a]), 40, "a new worker %d" % a)


def test_a_stalled_worker_leaves_hoopctl_answering(ctx):
    """A worker that stops answering (stuck, or an attacker's) costs `hoopctl status` 1.5 s, not
    its answer: the other workers' sessions are listed, the stalled one is left out."""
    a = pick(ctx)
    b = [w for w in sorted(ctx.cgs) if w != a][0]
    procs, ids = held_open(ctx, ctx.cgs[b], 1, seconds=6)
    try:
        h = hijack(ctx, a)
        try:
            t0 = time.time()
            r = ctx.hd.ctl("status", "--json", check=False)
            took = time.time() - t0
            check(r.returncode == 0, "hoopctl status failed: %s" % (r.stdout + r.stderr))
            st = json.loads(r.stdout)
            check(any(c["session"] == ids[0] for c in st["connections"]), "the other worker's session is not listed")
            check(took < 5, "hoopctl status took %.1f s" % took)
        finally:
            h.close()
    finally:
        reap(procs, wait=False)
    ctx.hijacked_at[a] = time.time()
    wait_for(lambda: (lambda w: w["ready"] and w["pid"] != h.pid)(workers(ctx)[a]), 40, "a new worker %d" % a)


def test_approvals_answer_larger_than_its_requests_is_refused(ctx):
    """A worker's answer to `hoopctl approvals` is bounded by the requests it holds: a flood is
    refused (the worker cut off), and hoopctl still answers, without it."""
    a = pick(ctx)
    h = hijack(ctx, a)
    try:
        p = subprocess.Popen([HOOPCTL, "--control", ctx.hd.control, "approvals", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        token, _, _ = h.recv(h.ctl, WM_APPROVALS)
        flood = json.dumps([{"id": "a%013d" % i, "statement": "forged"} for i in range(500)]).encode()
        h.send(h.ctl, WM_APPROVALS_REPLY, flood, token=token)
        out, err = p.communicate(timeout=20)
        check(p.returncode == 0, "hoopctl approvals failed: %s" % err)
        check("forged" not in out, "the forged requests are listed: %s" % out[:300])
        h.cut_off("approvals")
    finally:
        h.close()


def test_catalog_loaders_are_bounded_and_one_job_each(ctx):
    """A worker gets catalog loaders only for a target's address, three at once at most, and
    the socket it gets is shut for writing: it cannot send a loader a job of its own."""
    a = pick(ctx)
    h = hijack(ctx, a)
    broker = ctx.hd.proc.pid
    try:
        def req(host, port, token):
            body = struct.pack("=I48s8s128s64s", 0, host.encode(), str(port).encode(), b"clinical", b"postgres")
            h.send(h.cat, WM_CATREQ, body, token=token)
            t, ans, fds = h.recv(h.cat, WM_CATFD)
            check(t == token, "answer to %d for %d" % (t, token))
            return ans[0], ans[1:].split(b"\0")[0].decode(), fds
        ok, err, fds = req("127.0.0.1", 22, 1)
        check(not ok and not fds, "a loader for an address no target covers: %r" % err)
        got = []
        for i in range(3):
            ok, err, fds = req("127.0.0.1", ctx.hole_port, 10 + i)
            check(ok and len(fds) == 1, "loader %d refused: %s" % (i, err))
            got += fds

        ok, err, fds = req("127.0.0.1", ctx.hole_port, 20)
        check(not ok and not fds and "3 catalog loads run" in err, "a fourth loader: %r %r" % (ok, err))
        # (a loader shows its own argv once exec'd, a moment after the answer)
        wait_for(lambda: len(children(broker, b"--catalog-loader")) >= 3, 5, "three loaders")
        time.sleep(0.5)
        loaders = children(broker, b"--catalog-loader")
        check(len(loaders) == 3, "loaders running: %r" % loaders)
        s = socket.socket(fileno=os.dup(got[0]))
        try:
            s.send(b"\0" * 64)
            wrote = True
        except (BrokenPipeError, OSError):
            wrote = False
        s.close()
        check(not wrote, "the worker could send its loader a job of its own")
        for fd in got:
            os.close(fd)
    finally:
        h.close()
    # the lost worker's loaders die with it
    ctx.hijacked_at[a] = time.time()
    wait_for(lambda: not children(broker, b"--catalog-loader"), 15, "the lost worker's loaders to end")
    wait_for(lambda: (lambda w: w["ready"] and w["pid"] != h.pid)(workers(ctx)[a]), 40, "a new worker %d" % a)


def test_records_may_not_speak_as_the_store(ctx):
    """On the audit channel a worker may write records of its own sessions' kinds, never a
    checkpoint or a line with the store's seq: it is cut off, the trail says so, and it
    verifies."""
    a = pick(ctx)
    h = hijack(ctx, a)
    try:
        h.aud.send(b'B{"ts":"2026-12-07T00:00:00.000000Z","kind":"session_note","x":1}\n'
                   b'{"ts":"2026-12-07T00:00:00.000000Z","kind":"checkpoint","reason":"interval","sig":"00"}')
        wait_for(lambda: "a record of the store's kind" in ctx.hd.log_text()[h.log_at:] or
                 "the store's key" in ctx.hd.log_text()[h.log_at:], 10, "the forged record refused")
        wait_for(lambda: (lambda w: w["ready"] and w["pid"] != h.pid)(workers(ctx)[a]), 40, "a new worker %d" % a)
        ctx.hijacked_at[a] = time.time()
    finally:
        h.close()
    ev = ctx.hd.events()
    cuts = [e for e in ev if e["kind"] == "audit_channel_cut" and e.get("worker") is not None]
    check(cuts, "no audit_channel_cut record")
    check(not any(e["kind"] == "checkpoint" and e.get("sig") == "00" for e in ev), "the forged checkpoint is in the trail")
    r = subprocess.run([HOOPCTL, "verify", "--state-dir", ctx.hd.state], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "verify: %s" % (r.stdout + r.stderr)[-600:])
    other_agents_work(ctx, -1)


def test_trail_verifies_and_stop_is_clean(ctx):
    """After every attack: the trail verifies, and hoopd stops cleanly."""
    r = subprocess.run([HOOPCTL, "verify", "--state-dir", ctx.hd.state], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "verify: %s" % (r.stdout + r.stderr)[-600:])
    for cg in ctx.cgs.values():
        ctx.hd.ctl("detach", "--cgroup", cg.path, check=False)
    check_clean_stop(ctx.hd, list(ctx.cgs.values())[0].path)


TESTS = [test_notification_for_no_request_runs_nothing, test_held_request_of_another_workers_session_is_refused,
         test_grant_nobody_decided_is_not_passed_on, test_descriptors_from_a_worker_cut_it_off,
         test_ended_for_another_workers_session_lifts_no_cap, test_a_stalled_worker_leaves_hoopctl_answering,
         test_approvals_answer_larger_than_its_requests_is_refused,
         test_catalog_loaders_are_bounded_and_one_job_each, test_records_may_not_speak_as_the_store,
         test_trail_verifies_and_stop_is_clean]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, setup, teardown, sys.argv[1:]))
