#!/usr/bin/python3
"""End-to-end tests of the audit trail and what an auditor does with it: a real PostgreSQL (with
log_statement=all, so the server's own account can be compared with hoopd's), a real hoopd,
psql and pgbench as agents in an attached cgroup, and hoopctl verify / sessions / replay /
export on the state directory.

  - the trail verifies after real traffic; replay, sessions and export agree with what the
    client saw;
  - tampering is detected and placed: a flipped byte, a deleted record, two swapped records, a
    truncated segment, a deleted segment, a segment re-chained without the key, a wrong key, a
    checkpoint forged with another Ed25519 key, an HMAC checkpoint after signed ones;
  - an auditor given only audit.pub verifies the trail (no private key anywhere near it); a trail
    whose older segments carry HMAC checkpoints (hoopd before it signed them) and newer ones
    signed checkpoints verifies, and without audit.key verify says it cannot check the old ones;
  - nothing is lost when hoopd is SIGKILLed under load: every statement PostgreSQL logged from
    an agent has a statement record, and no "complete" record claims a statement PostgreSQL
    never saw; the chain still verifies (the open segment closed, a torn tail removed);
  - a full disk refuses statements (ERROR 58030, not run) and service resumes once space frees;
  - fsync durability carries a pgbench run;
  - retention removes old segments on record, and verify tells that from a deleted segment;
  - an opaque tcp target's sessions are on record too (session_start, session_end with the bytes
    each way): sessions lists them, replay shows them, verify covers them.

Usage (as root): tests/e2e/test_audit.py [NAME-SUBSTRING ...]
"""
import collections
import csv
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import (attach_agents, teardown, HOOPCTL, Cgroup, Cleanup, Hoopd, Postgres, check, free_port,  # noqa: E402
                      log, run_tests, wait_for)

OWNER = "dana@example.org"
DENY_MSG = "hoop: agents may not drop tables"
ECHO_PORT = free_port()  # an opaque tcp target: a server of the test's own (ECHO_SERVER)


class Ctx:
    pass


def policy(port, audit="{checkpoint_every: 50, segment_bytes: 65536}"):
    # Small segments so a few seconds of traffic spread over many of them.
    return """version: 1
targets:
  - name: pg
    protocol: postgres
    ports: [%d]
  - name: echo
    protocol: tcp
    ports: [%d]
rules:
  - name: no-drops
    action: deny
    match: {statements: [drop_table]}
    message: "%s"
audit: %s
""" % (port, ECHO_PORT, DENY_MSG, audit)


# The tcp target's server: reads what the client sends up to its EOF, answers with it twice, and
# closes. The bytes each way are known exactly: the session_end record must say them.
ECHO_SERVER = r"""
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
print("ready", flush=True)
def serve(c):
    got = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
    c.sendall(got * 2)
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

ECHO_CLIENT = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"u" * int(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    n += len(b)
print(n)
"""


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    # %a in every log line: the application_name tells the agents' statements (which the tests
    # name per run with PGAPPNAME) from the tests' own direct ones.
    ctx.pg = Postgres(ctx.cleanup, extra=("log_statement=all", "log_line_prefix='%m [%p] app=%a: '"))
    ctx.pglog = os.path.join(ctx.pg.dir, "log")
    ctx.pg.psql_direct("create database clinical")
    for sql in ("create table patients (id int primary key, name text)",
                "insert into patients select g, 'P' || g from generate_series(1, 50) g",
                "create table notes (id int, body text)",
                "insert into notes select g, 'n' || g from generate_series(1, 10) g",
                "create table kill_log (id int primary key, note text)",
                "create table diskfull (id int primary key)"):
        direct(ctx, sql)
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U",
                    "postgres", "clinical"], check=True, capture_output=True)
    ctx.tmp = tempfile.mkdtemp(prefix="hoop-audit-")
    ctx.cleanup.push(shutil.rmtree, ctx.tmp, True)
    ctx.echo = subprocess.Popen(["/usr/bin/python3", "-c", ECHO_SERVER, str(ECHO_PORT)],
                                stdout=subprocess.PIPE, text=True)
    ctx.cleanup.push(lambda: (ctx.echo.kill(), ctx.echo.wait()))
    check(ctx.echo.stdout.readline().strip() == "ready", "the echo server did not start")
    ctx.hd = Hoopd(ctx.cleanup, policy(ctx.pg.port))
    ctx.hoopds = [ctx.hd]
    ctx.hd.start()
    ctx.cg = attach_agents(ctx, OWNER)
    return ctx



# ---- helpers ------------------------------------------------------------------------------------

def direct(ctx, sql):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d",
                           "clinical", "-tAXc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def agent_env(app):
    return dict(os.environ, PGAPPNAME=app)


def psql_argv(ctx):
    return ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical", "-X"]


def pgbench_argv(ctx, *extra):
    return ["pgbench", "-n", "-M", "simple", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
            *extra, "clinical"]


def hoopctl(*args, timeout=300):
    return subprocess.run([HOOPCTL] + list(args), capture_output=True, text=True, timeout=timeout)


def verify(state, *extra):
    """hoopctl verify --json: (exit status, the report)."""
    r = hoopctl("verify", "--state-dir", state, "--json", *extra)
    try:
        rep = json.loads(r.stdout)
    except ValueError:
        rep = {"unparsed": r.stdout, "stderr": r.stderr}
    return r.returncode, rep


def verify_text(state, *extra):
    r = hoopctl("verify", "--state-dir", state, *extra)
    return r.returncode, r.stdout + r.stderr


def segments(state):
    d = os.path.join(state, "audit")
    return sorted(p for p in os.listdir(d) if re.fullmatch(r"seg-\d{8}\.jsonl(\.gz)?", p))


def read_lines(state, name):
    p = os.path.join(state, "audit", name)
    try:
        with (gzip.open if name.endswith(".gz") else open)(p, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if name.endswith(".gz"):
            raise
        # A closed segment hoopd's compressor replaced by its .gz since it was listed.
        with gzip.open(p + ".gz", "rb") as f:
            data = f.read()
    check(data.endswith(b"\n"), "%s does not end with a newline" % name)
    return data.split(b"\n")[:-1]


def write_lines(state, name, lines):
    p = os.path.join(state, "audit", name)
    with (gzip.open if name.endswith(".gz") else open)(p, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))


def ed25519_sign(keyfile, text):
    """The hex Ed25519 signature of text (bytes) by the PEM private key in keyfile: openssl, an
    implementation other than the one hoopd calls into the same way."""
    with tempfile.NamedTemporaryFile() as m:
        m.write(text)
        m.flush()
        r = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", keyfile, "-in", m.name],
                           capture_output=True)
    check(r.returncode == 0 and len(r.stdout) == 64, "openssl pkeyutl -sign: %r" % r.stderr)
    return r.stdout.hex()


def ed25519_key_id(keyfile):
    """A checkpoint's "key" for the PEM key (private or public) in keyfile: hex of the first 16
    bytes of SHA-256 of the raw 32-byte public key (the last 32 bytes of its DER SPKI)."""
    args = ["openssl", "pkey", "-in", keyfile, "-pubout", "-outform", "DER"]
    if "PUBLIC" in open(keyfile).read():
        args[2:2] = ["-pubin"]
    der = subprocess.run(args, capture_output=True, check=True).stdout
    return hashlib.sha256(der[-32:]).hexdigest()[:32]


def new_ed25519_key(path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", path], check=True,
                   capture_output=True)
    return path


def checkpoint_seal(keyfile, seq, prev, key_id=None):
    """The "key" and "sig" of a checkpoint with this seq and prev, signed with keyfile."""
    return {"key": key_id or ed25519_key_id(keyfile),
            "sig": ed25519_sign(keyfile, ("hoop-checkpoint-v2:%d:%s" % (seq, prev)).encode())}


def hmac_seal(key, seq, prev):
    """The "hmac" of a checkpoint as hoopd wrote it before it signed them (audit.key)."""
    import hmac
    return {"hmac": hmac.new(key, ("%d:%s" % (seq, prev)).encode(), hashlib.sha256).hexdigest()}


def reseal(state, change):
    """Rewrite the whole trail with the signing key, as only someone holding audit.ed25519 could:
    change(n, record) edits segment n's records (dicts, in order), then every prev hash and
    checkpoint signature is recomputed so that the trail verifies again."""
    keyfile = os.path.join(state, "audit.ed25519")
    key_id = ed25519_key_id(keyfile)
    prev = "0" * 64
    for name in segments(state):
        n = int(name[4:12])
        out = []
        for line in read_lines(state, name):
            rec = json.loads(line)
            change(n, rec)
            body = {k: v for k, v in rec.items() if k not in ("seq", "prev", "hmac", "key", "sig")}
            if rec.get("kind") == "checkpoint":
                body.update(checkpoint_seal(keyfile, rec["seq"], prev, key_id))
            full = {"seq": rec["seq"], "prev": prev}
            full.update(body)
            raw = json.dumps(full, separators=(",", ":")).encode()
            out.append(raw)
            prev = hashlib.sha256(raw).hexdigest()
        write_lines(state, name, out)


def record_seq(line):
    """The record's own seq, from the line's head."""
    return int(re.match(rb'\{"seq":(\d+),', line).group(1))


def norm(sql):
    return sql.strip().rstrip(";").strip()


def sealed_copy(ctx, tag):
    """A copy of the sealed trail (hoopd stopped: every segment closed and gzip'd)."""
    check(hasattr(ctx, "sealed"), "the sealed trail comes from test_verify_ok_after_psql_and_pgbench: "
          "run it first")
    d = os.path.join(ctx.tmp, tag)
    shutil.rmtree(d, True)
    shutil.copytree(ctx.sealed, d)
    return d


def middle_segment(state):
    segs = segments(state)
    check(len(segs) >= 5, "expected many segments, got %r" % segs)
    name = segs[len(segs) // 2]
    lines = read_lines(state, name)
    check(len(lines) > 40, "%s has only %d records" % (name, len(lines)))
    return name, lines


def expect_tamper(state, problem, seg, line, seq=None, says=None, extra=()):
    """verify must exit 1 and name this place; the text output must name it too."""
    rc, rep = verify(state, *extra)
    check(rc == 1, "verify exit %d (want 1): %r" % (rc, rep))
    check(rep.get("problem") == problem, "problem %r, want %r: %r" % (rep.get("problem"), problem, rep))
    check(rep.get("segment") == seg and rep.get("line") == line,
          "placed at %s line %s, want %s line %d: %r" % (rep.get("segment"), rep.get("line"), seg, line, rep))
    if seq is not None:
        check(rep.get("seq") == seq, "seq %r, want %d: %r" % (rep.get("seq"), seq, rep))
    if says:
        check(says in rep.get("message", ""), "message %r lacks %r" % (rep.get("message"), says))
    rc, out = verify_text(state, *extra)
    want = "TAMPERED: %s line %d" % (seg, line) if line else "TAMPERED: %s:" % seg
    check(rc == 1 and out.startswith(want), "text output %r does not start with %r" % (out, want))
    return rep


def fresh_hoopd(ctx, cl, tag, audit, state_mount=None):
    """Another hoopd with its own state dir, pins and agent cgroup (the main one is stopped)."""
    hd = Hoopd(cl, policy(ctx.pg.port, audit), tag=tag)
    ctx.hoopds.append(hd)
    if state_mount:
        state_mount(hd)
    hd.start()
    cg = Cgroup(cl, "agents-" + tag)
    cl.push(lambda: hd.proc and hd.ctl("detach", "--cgroup", cg.path, check=False))
    hd.ctl("attach", "--cgroup", cg.path, "--owner", OWNER)
    return hd, cg


def statement_records(events, apps):
    """{(application_name, normalized text): count} of statement records of sessions whose
    application_name is in apps, and the same for their "complete" records."""
    app_of = {e["session"]: e.get("application_name") for e in events if e["kind"] == "session_start"}
    text_of = {}
    stmts = collections.Counter()
    complete = collections.Counter()
    for e in events:
        app = app_of.get(e.get("session"))
        if app not in apps:
            continue
        if e["kind"] == "statement" and e["verdict"] == "allow":
            text_of[(e["session"], e["stmt"])] = norm(e["text"])
            stmts[(app, norm(e["text"]))] += 1
        elif e["kind"] == "complete":
            complete[(app, text_of.get((e["session"], e["stmt"]), "?"))] += 1
    return stmts, complete


def pg_logged(ctx, app_prefix):
    """{(application_name, normalized text): count} of PostgreSQL's "statement:" log lines."""
    rx = re.compile(r"^\S+ \S+ \S+ \[\d+\] app=(%s[^:]*): LOG:  statement: (.*)$" % re.escape(app_prefix))
    out = collections.Counter()
    with open(ctx.pglog, errors="replace") as f:
        for line in f:
            m = rx.match(line.rstrip("\n"))
            if m:
                out[(m.group(1), norm(m.group(2)))] += 1
    return out


# ---- what the client saw, what the trail says -----------------------------------------------

SCRIPT = [
    "select id, name from patients where id <= 3",
    "select count(*) from notes",
    "select 1/0",
    "drop table notes",
    "select name from patients where id between 10 and 14 order by id",
    "insert into notes values (500, 'from the agent')",
    "select id, body from notes where id >= 500",
]


def test_replay_matches_what_psql_saw(ctx):
    app = "audit-replay"
    r = ctx.cg.run(psql_argv(ctx), input="\\set VERBOSITY verbose\n" + "".join(s + ";\n" for s in SCRIPT),
                   env=agent_env(app))
    client_rows = [int(n) for n in re.findall(r"^\((\d+) rows?\)$", r.stdout, re.M)]
    client_errors = re.findall(r"^ERROR:  ([0-9A-Z]{5}): ", r.stderr, re.M)
    check(client_rows == [3, 1, 5, 1], "psql output changed: %r\n%s" % (client_rows, r.stdout))
    check(client_errors == ["22012", "42501"], "psql errors: %r\n%s" % (client_errors, r.stderr))
    check(direct(ctx, "select count(*) from notes") == "11", "the denied DROP ran or the INSERT did not")

    s = hoopctl("sessions", "--state-dir", ctx.hd.state, "--json")
    check(s.returncode == 0, s.stderr)
    mine = [json.loads(l) for l in s.stdout.splitlines() if json.loads(l)["application_name"] == app]
    check(len(mine) == 1, "sessions --json: %r" % mine)
    ctx.replay_session = sid = mine[0]["session"]

    rp = hoopctl("replay", sid, "--state-dir", ctx.hd.state)
    check(rp.returncode == 0, rp.stderr)
    out = rp.stdout
    check(("session %s, started" % sid) in out and ("owner %s" % OWNER) in out and "comm psql" in out,
          "replay header:\n" + out)
    texts, verdicts, rows, errors = [], {}, [], []
    for line in out.splitlines():
        m = re.match(r"^\S+  #(\d+) (\w+) (\w+)(?: \(rule ([^)]*)\))?: (.*)$", line)
        if m and m.group(2) in ("simple", "extended", "function"):
            texts.append(m.group(5))
            verdicts[int(m.group(1))] = (m.group(3), m.group(4))
            continue
        m = re.match(r"^\S+  #(\d+) complete: (\w+).*, (\d+) row\(s\)", line)
        if m and m.group(2) == "SELECT":
            rows.append(int(m.group(3)))
        m = re.match(r"^\S+  #(\d+) error: SQLSTATE (\w{5}) ", line)
        if m:
            errors.append(m.group(2))
    check(texts == SCRIPT, "replay statements %r\n!= what psql sent %r" % (texts, SCRIPT))
    check(rows == client_rows, "replay rows per SELECT %r != psql's %r" % (rows, client_rows))
    check(errors == client_errors, "replay SQLSTATEs %r != psql's %r" % (errors, client_errors))
    check(verdicts[4] == ("deny", "no-drops"), "the DROP: %r" % (verdicts[4],))
    check(DENY_MSG in out, "the denial's message is not in the replay")
    check("session end:" in out.splitlines()[-1], "replay does not end with the session's end")

    # --json: the session's records exactly as stored, which hash into the chain.
    j = hoopctl("replay", sid, "--state-dir", ctx.hd.state, "--json")
    lines = j.stdout.encode().splitlines()
    recs = [json.loads(l) for l in lines]
    check(recs and all(x["session"] == sid for x in recs), "replay --json has other sessions' records")
    check(recs[0]["kind"] == "session_start" and recs[-1]["kind"] == "session_end", [x["kind"] for x in recs])
    stored = {l for name in segments(ctx.hd.state) for l in read_lines(ctx.hd.state, name)}
    for l in lines:
        check(l in stored, "replayed record %d is not byte-identical to the trail's" % record_seq(l))


def replayed_session(ctx):
    check(hasattr(ctx, "replay_session"), "the session comes from test_replay_matches_what_psql_saw: "
          "run it first")
    return ctx.replay_session


def test_sessions_lists_it_with_owner_and_filters(ctx):
    sid = replayed_session(ctx)
    r = hoopctl("sessions", "--state-dir", ctx.hd.state)
    check(r.returncode == 0, r.stderr)
    header = r.stdout.splitlines()[0].split()
    check(header[:3] == ["SESSION", "START", "OWNER"], r.stdout)
    line = [l for l in r.stdout.splitlines() if l.startswith(sid)]
    check(len(line) == 1, "session %s not listed:\n%s" % (sid, r.stdout))
    cols = line[0].split()
    check(OWNER in cols and "psql" in cols and "postgres@clinical" in cols, line[0])
    check(re.search(r"postgres@clinical\s+%d\s+1\s+agent terminated the session" % len(SCRIPT), line[0]),
          "statements / denied / end: " + line[0])

    def listed(*args):
        r = hoopctl("sessions", "--state-dir", ctx.hd.state, *args)
        check(r.returncode == 0, r.stderr)
        return sid in r.stdout
    check(listed("--owner", OWNER) and not listed("--owner", "someone@else"), "--owner filter")
    check(listed("--db", "clinical") and not listed("--db", "postgres"), "--db filter")
    check(listed("--verdict", "deny") and listed("--verdict", "allow"), "--verdict filter keeps it")
    check(listed("--since", "1h") and not listed("--since", "2099-01-01T00:00:00Z"), "--since filter")
    r = hoopctl("sessions", "--state-dir", ctx.hd.state, "--since", "yesterday")
    check(r.returncode == 2, "a bad --since was accepted")


def test_export_csv_has_header_and_the_statements(ctx):
    sid = replayed_session(ctx)
    r = hoopctl("export", "--since", "1h", "--state-dir", ctx.hd.state, "--format", "csv")
    check(r.returncode == 0, r.stderr)
    rows = list(csv.reader(io.StringIO(r.stdout)))
    head = rows[0]
    for col in ("ts", "session", "owner", "pid", "exe", "user", "database", "text", "verdict", "reason",
                "outcome", "rows", "sqlstate"):
        check(col in head, "CSV header lacks %s: %r" % (col, head))
    mine = [dict(zip(head, x)) for x in rows[1:] if x[head.index("session")] == sid]
    check([m["text"] for m in mine] == SCRIPT, "export: %r" % [m["text"] for m in mine])
    check(all(m["owner"] == OWNER and m["user"] == "postgres" and m["database"] == "clinical"
              and m["exe"].endswith("/psql") for m in mine), "identity not joined: %r" % mine[0])
    deny = mine[3]
    check(deny["verdict"] == "deny" and deny["reason"] == "no-drops" and deny["sqlstate"] == "42501", deny)
    check(mine[2]["sqlstate"] == "22012" and mine[0]["rows"] == "3" and mine[0]["outcome"] == "SELECT 3",
          mine[:3])
    j = hoopctl("export", "--since", "1h", "--state-dir", ctx.hd.state, "--format", "jsonl")
    jl = [json.loads(l) for l in j.stdout.splitlines()]
    check([x["text"] for x in jl if x["session"] == sid] == SCRIPT, "jsonl export differs")
    check(hoopctl("export", "--state-dir", ctx.hd.state, "--format", "csv").returncode == 2,
          "export without --since accepted")


def test_verify_ok_after_psql_and_pgbench(ctx):
    r = ctx.cg.run(pgbench_argv(ctx, "-c", "4", "-j", "2", "-T", "5"), env=agent_env("audit-bench"))
    check(r.returncode == 0 and "number of failed transactions: 0 " in r.stdout, r.stdout + r.stderr)
    rc, rep = verify(ctx.hd.state)  # live: the last segment is open
    check(rc == 0 and rep["ok"], "verify on the live trail: %r" % rep)
    check(rep["segments"] >= 5, "expected many segments: %r" % rep)
    # Compression yields (docs/audit.md): once the closed segments are compressed, the worker
    # waits in the SCHED_IDLE class, so on a busy node it takes only CPU nobody else wants.
    policy = None
    for _ in range(300):
        segs = segments(ctx.hd.state)
        tids = [t for t in os.listdir("/proc/%d/task" % ctx.hd.proc.pid)
                if open("/proc/%d/task/%s/comm" % (ctx.hd.proc.pid, t)).read().strip() == "hoop-compress"]
        policy = os.sched_getscheduler(int(tids[0])) if tids else None
        if all(s.endswith(".gz") for s in segs[:-1]) and policy == os.SCHED_IDLE:
            break
        time.sleep(0.1)
    check(all(s.endswith(".gz") for s in segs[:-1]), "closed segments not compressed: %r" % segs)
    check(policy == os.SCHED_IDLE, "compressor thread: scheduling policy %r, want SCHED_IDLE" % policy)
    check(ctx.hd.stop() == 0, "hoopd did not stop cleanly")
    segs = segments(ctx.hd.state)
    check(all(s.endswith(".gz") for s in segs), "segments left open after a clean stop: %r" % segs)
    rc, out = verify_text(ctx.hd.state)
    ev = ctx.hd.events()
    want = "ok: %d records in %d segments, %d checkpoints, last seq %d" % (
        len(ev), len(segs), sum(e["kind"] == "checkpoint" for e in ev), ev[-1]["seq"])
    check(rc == 0 and out.splitlines()[0] == want, "verify said %r, want %r" % (out, want))
    check(ev[-1]["kind"] == "checkpoint" and ev[-1]["reason"] == "hoopd stopped", ev[-1])
    # Every record's ts, the trail's own (audit_open, checkpoint) as well, has microseconds.
    odd = [e for e in ev if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["ts"])]
    check(not odd, "records whose ts is not RFC 3339 with microseconds: %r" % odd[:3])
    # Every checkpoint is signed (no HMAC beside it), by the key audit.pub holds.
    key_id = ed25519_key_id(os.path.join(ctx.hd.state, "audit.pub"))
    cps = [e for e in ev if e["kind"] == "checkpoint"]
    check(all(e.get("key") == key_id and len(e.get("sig", "")) == 128 and "hmac" not in e for e in cps),
          "checkpoints not signed with audit.pub's key %s: %r" % (key_id, cps[:2]))
    # The key matters: another public key fails the first checkpoint.
    ctx.sealed = os.path.join(ctx.tmp, "sealed")
    shutil.copytree(ctx.hd.state, ctx.sealed)
    other = sealed_copy(ctx, "otherkey")
    otherpub = os.path.join(ctx.tmp, "other.pub")
    subprocess.run(["openssl", "pkey", "-in", new_ed25519_key(os.path.join(ctx.tmp, "other.pem")), "-pubout",
                    "-out", otherpub], check=True)
    first_cp = next(i for i, e in enumerate(ev) if e["kind"] == "checkpoint")
    lines1 = read_lines(other, segs[0])
    check(first_cp < len(lines1), "first checkpoint not in the first segment")
    expect_tamper(other, "unknown_key", segs[0], first_cp + 1, first_cp + 1, says=key_id,
                  extra=("--public-key", otherpub))
    # Without any key verify cannot vouch for anything: a usage/IO error, not "ok".
    r = subprocess.run(["runuser", "-u", "nobody", "--", HOOPCTL, "verify", "--state-dir", ctx.sealed],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "no key to check checkpoints" in r.stderr,
          "verify as nobody: %d %s" % (r.returncode, r.stderr))


# ---- opaque tcp sessions -------------------------------------------------------------------------

TCP_UP = 3000  # bytes the agent sends to the echo target; it answers with twice as many


def test_tcp_session_is_listed_with_its_bytes(ctx):
    r = ctx.cg.run(["/usr/bin/python3", "-c", ECHO_CLIENT, str(ECHO_PORT), str(TCP_UP)])
    check(r.returncode == 0 and r.stdout.strip() == str(2 * TCP_UP), "echo client: %r %r" % (r.stdout, r.stderr))

    def listed():
        s = hoopctl("sessions", "--state-dir", ctx.hd.state, "--json")
        check(s.returncode == 0, s.stderr)
        mine = [json.loads(l) for l in s.stdout.splitlines()]
        mine = [m for m in mine if m.get("target") == "echo" and m["end"] != "(open)"]
        return mine or None
    mine = wait_for(listed, 10, "the tcp session, ended, in hoopctl sessions --json")
    check(len(mine) == 1, "sessions --json: %r" % mine)
    m = mine[0]
    ctx.tcp_session = sid = m["session"]
    check(m["protocol"] == "tcp" and m["owner"] == OWNER and m["comm"] == "python3", m)
    check(m["bytes_agent_to_db"] == TCP_UP and m["bytes_db_to_agent"] == 2 * TCP_UP, m)
    check(m["end"] == "both sides done" and m["statements"] == 0, m)
    t = hoopctl("sessions", "--state-dir", ctx.hd.state)
    row = [l for l in t.stdout.splitlines() if l.startswith(sid)]
    check(len(row) == 1 and "(tcp echo: %d B up, %d B down)" % (TCP_UP, 2 * TCP_UP) in row[0],
          "sessions table: %r" % t.stdout)
    r = hoopctl("replay", sid, "--state-dir", ctx.hd.state)
    check(r.returncode == 0, r.stderr)
    check("(target echo)" in r.stdout and "relayed as opaque bytes" in r.stdout, r.stdout)
    check("session end: both sides done; 0 statement(s), %d bytes up, %d bytes down" % (TCP_UP, 2 * TCP_UP)
          in r.stdout, r.stdout)
    recs = [e for e in ctx.hd.events() if e.get("session") == sid]
    check([e["kind"] for e in recs] == ["session_start", "session_end"], recs)
    check(recs[0]["agent"]["pid"] > 0 and recs[0]["destination"] == "127.0.0.1:%d" % ECHO_PORT, recs[0])


def test_verify_covers_tcp_sessions(ctx):
    d = sealed_copy(ctx, "tcp-find")
    recs = [json.loads(l) for name in segments(d) for l in read_lines(d, name)]
    sids = {e["session"] for e in recs if e.get("target") == "echo" and e["kind"] == "session_start"}
    check(len(sids) == 1, "the echo target's sessions in the sealed trail: %r (run "
          "test_tcp_session_is_listed_with_its_bytes first)" % sids)
    sid = sids.pop()
    rc, rep = verify(ctx.sealed)
    check(rc == 0 and rep["ok"], "verify on the sealed trail: %r" % rep)
    for kind in ("session_start", "session_end"):
        d = sealed_copy(ctx, "tcp-" + kind)
        at = [(name, i) for name in segments(d) for i, l in enumerate(read_lines(d, name))
              if json.loads(l).get("session") == sid and json.loads(l)["kind"] == kind]
        check(len(at) == 1, "the tcp session's %s in the sealed trail: %r" % (kind, at))
        name, i = at[0]
        lines = read_lines(d, name)
        was = lines[i]
        if kind == "session_end":
            lines[i] = was.replace(b'"bytes_db_to_agent":%d' % (2 * TCP_UP), b'"bytes_db_to_agent":%d' % TCP_UP)
        else:
            lines[i] = was.replace(b'"target":"echo"', b'"target":"ecko"')
        check(lines[i] != was, "nothing altered in %r" % was)
        write_lines(d, name, lines)
        expect_tamper(d, "hash_mismatch", name, i + 2, record_seq(lines[i + 1]),
                      says="line %d, seq %d" % (i + 1, record_seq(was)))


# ---- tamper evidence (each on a copy of the sealed trail) -----------------------------------

def stmt_line(lines, start=5):
    """Index of a statement record with a record after it in the same segment."""
    return next(i for i in range(start, len(lines) - 2) if b'"kind":"statement"' in lines[i])


def test_tamper_flipped_byte_is_found(ctx):
    d = sealed_copy(ctx, "flip")
    name, lines = middle_segment(d)
    i = stmt_line(lines, len(lines) // 3)
    pos = lines[i].index(b'"text":"') + 8
    b = bytearray(lines[i])
    b[pos] ^= 0x01  # "select" -> "relect": one bit of one byte, still valid JSON
    lines[i] = bytes(b)
    write_lines(d, name, lines)
    # The chain breaks at the next record, which names the modified one.
    expect_tamper(d, "hash_mismatch", name, i + 2, record_seq(lines[i + 1]),
                  says="line %d, seq %d" % (i + 1, record_seq(lines[i])))


def test_tamper_deleted_record_is_found(ctx):
    d = sealed_copy(ctx, "delete")
    name, lines = middle_segment(d)
    i = stmt_line(lines, len(lines) // 2)
    gone = record_seq(lines[i])
    del lines[i]
    write_lines(d, name, lines)
    expect_tamper(d, "seq_gap", name, i + 1, gone + 1, says="seq %d deleted" % gone)


def test_tamper_deleted_segment_is_found(ctx):
    d = sealed_copy(ctx, "delseg")
    segs = segments(d)
    gone = segs[len(segs) // 2]
    os.unlink(os.path.join(d, "audit", gone))
    after = segs[len(segs) // 2 + 1]
    expect_tamper(d, "segment_missing", after, 0, says=gone.split(".")[0] + " is missing")


def test_tamper_swapped_records_are_found(ctx):
    d = sealed_copy(ctx, "swap")
    name, lines = middle_segment(d)
    i = stmt_line(lines, len(lines) // 2)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    write_lines(d, name, lines)
    expect_tamper(d, "seq_order", name, i + 1, record_seq(lines[i]), says="reordered")


def test_tamper_truncated_segment_is_found(ctx):
    d = sealed_copy(ctx, "trunc")
    name, lines = middle_segment(d)
    check(b'"kind":"checkpoint"' in lines[-1], "a closed segment must end with a checkpoint")
    keep = lines[:-7]
    if b'"kind":"checkpoint"' in keep[-1]:
        keep = keep[:-1]  # end on a plain record
    write_lines(d, name, keep)
    expect_tamper(d, "truncated", name, len(keep), record_seq(keep[-1]), says="closing checkpoint")
    # The last segment too: no later segment would notice.
    d = sealed_copy(ctx, "trunc-last")
    last = segments(d)[-1]
    lines = read_lines(d, last)
    write_lines(d, last, lines[:-2])
    expect_tamper(d, "truncated", last, len(lines) - 2)


def test_tamper_rechained_segment_is_found(ctx):
    # Without the key an attacker can recompute every hash of a rewritten segment, but not the
    # checkpoints' HMACs over them.
    d = sealed_copy(ctx, "rechain")
    name, lines = middle_segment(d)
    i = stmt_line(lines, 2)
    lines[i] = lines[i].replace(b'"text":"', b'"text":"/* harmless */ ', 1)
    for k in range(i + 1, len(lines)):
        h = hashlib.sha256(lines[k - 1]).hexdigest().encode()
        lines[k] = re.sub(rb'^(\{"seq":\d+,"prev":")[0-9a-f]{64}', lambda m: m.group(1) + h, lines[k])
    write_lines(d, name, lines)
    segs = segments(d)
    nxt = segs[segs.index(name) + 1]
    nl = read_lines(d, nxt)  # and the next segment's first link, so the seam looks right too
    nl[0] = re.sub(rb'^(\{"seq":\d+,"prev":")[0-9a-f]{64}',
                   lambda m: m.group(1) + hashlib.sha256(lines[-1]).hexdigest().encode(), nl[0])
    write_lines(d, nxt, nl)
    cp = next(k for k in range(i, len(lines)) if b'"kind":"checkpoint"' in lines[k])
    expect_tamper(d, "bad_signature", name, cp + 1, record_seq(lines[cp]),
                  says="re-chained without the signing key")
    # --from past the damage vouches for the rest, and says what it took on trust.
    rc, out = verify_text(d, "--from", segs[segs.index(name) + 2])
    check(rc == 0 and "taken on trust" in out, out)


# ---- signed checkpoints: what an auditor holds, forgeries, the HMAC trails before them ----------

def rechain_after(d, name, lines, i):
    """Recompute the prev of every line after lines[i] (and of the next segment's first line),
    as trail.c does (hex SHA-256 of the line before), so that only what was changed at i is
    wrong; write the segment back."""
    for k in range(i + 1, len(lines)):
        h = hashlib.sha256(lines[k - 1]).hexdigest().encode()
        lines[k] = re.sub(rb'^(\{"seq":\d+,"prev":")[0-9a-f]{64}', lambda m: m.group(1) + h, lines[k])
    write_lines(d, name, lines)
    segs = segments(d)
    if segs.index(name) + 1 < len(segs):
        nxt = segs[segs.index(name) + 1]
        nl = read_lines(d, nxt)
        h = hashlib.sha256(lines[-1]).hexdigest().encode()
        nl[0] = re.sub(rb'^(\{"seq":\d+,"prev":")[0-9a-f]{64}', lambda m: m.group(1) + h, nl[0])
        write_lines(d, nxt, nl)


def reseal_line(line, fields):
    """The checkpoint line with its seal ("key", "sig", "hmac") replaced by fields."""
    rec = json.loads(line)
    for k in ("key", "sig", "hmac"):
        rec.pop(k, None)
    rec.update(fields)
    return json.dumps(rec, separators=(",", ":")).encode()


def test_auditor_verifies_with_only_the_public_key(ctx):
    sealed = sealed_copy(ctx, "modes")
    modes = {n: os.stat(os.path.join(sealed, n)).st_mode & 0o7777 for n in ("audit.ed25519", "audit.pub")}
    check(modes == {"audit.ed25519": 0o400, "audit.pub": 0o444}, "key file modes: %r" % modes)
    check(not os.path.exists(os.path.join(sealed, "audit.key")), "hoopd made an HMAC key it no longer uses")
    rc, want = verify_text(sealed)
    check(rc == 0, want)
    # The auditor's copy: the segments only, readable by anyone, and audit.pub kept apart. verify
    # runs as nobody: it cannot have read a private key.
    aud = tempfile.mkdtemp(prefix="hoop-auditor-")
    ctx.cleanup.push(shutil.rmtree, aud, True)
    os.chmod(aud, 0o755)
    trail = os.path.join(aud, "trail")
    shutil.copytree(os.path.join(sealed, "audit"), os.path.join(trail, "audit"))
    pub = os.path.join(aud, "node.pub")
    shutil.copy(os.path.join(sealed, "audit.pub"), pub)
    for root, dirs, files in os.walk(aud):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
        for x in files:
            os.chmod(os.path.join(root, x), 0o644)
    check(sorted(os.listdir(trail)) == ["audit"], os.listdir(trail))

    def as_nobody(*args):
        return subprocess.run(["runuser", "-u", "nobody", "--", HOOPCTL, "verify", "--state-dir", trail] +
                              list(args), capture_output=True, text=True)
    r = as_nobody("--public-key", pub)
    check(r.returncode == 0 and r.stdout.splitlines()[0] == want.splitlines()[0],
          "verify with only audit.pub: %d %r (as root with the state dir: %r)" % (r.returncode, r.stdout + r.stderr,
                                                                                want))
    r = as_nobody("--public-key", pub, "--json")
    rep = json.loads(r.stdout)
    check(rep["ok"] and rep["signed_checkpoints"] == rep["checkpoints"] > 0 and rep["hmac_checkpoints"] == 0, rep)
    # Without a key it cannot vouch for anything, and says what to give it.
    r = as_nobody()
    check(r.returncode == 2 and "--public-key" in r.stderr and not r.stdout.startswith("ok"),
          "verify without a key: %d %r" % (r.returncode, r.stdout + r.stderr))


def test_checkpoint_forged_with_another_key_is_found(ctx):
    forger = new_ed25519_key(os.path.join(ctx.tmp, "forger.pem"))
    node_id = ed25519_key_id(os.path.join(ctx.sealed, "audit.pub"))
    for tag, key_id, problem, says in (
            ("forged-same-id", node_id, "bad_signature", "does not verify with public key " + node_id),
            ("forged-own-id", None, "unknown_key", ed25519_key_id(forger)),
            ("forged-unsealed", "", "unsealed_checkpoint", "neither a signature")):
        d = sealed_copy(ctx, tag)
        name, lines = middle_segment(d)
        cp = next(k for k in range(len(lines)) if b'"kind":"checkpoint"' in lines[k])
        rec = json.loads(lines[cp])
        seal = {} if key_id == "" else checkpoint_seal(forger, rec["seq"], rec["prev"], key_id)
        lines[cp] = reseal_line(lines[cp], seal)
        rechain_after(d, name, lines, cp)  # only the seal is wrong: the chain holds
        log("%s: %s line %d (seq %d)" % (tag, name, cp + 1, rec["seq"]))
        expect_tamper(d, problem, name, cp + 1, rec["seq"], says=says)


def old_hmac_trail(state, key, nrec=10, every=4):
    """A trail as hoopd wrote it before it signed checkpoints: audit.key, and one closed segment
    whose checkpoints carry an HMAC under it. Its last line, for the test to compare."""
    os.makedirs(os.path.join(state, "audit"), mode=0o700)
    kp = os.path.join(state, "audit.key")
    with open(os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "wb") as f:
        f.write(key)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    prev, lines, since = "0" * 64, [], 0
    for seq in range(1, nrec + 1):
        last = seq == nrec
        if last or since == every:
            body = {"ts": ts, "kind": "checkpoint", "reason": "hoopd stopped" if last else "interval",
                    "segment": 1}
            body.update(hmac_seal(key, seq, prev))
            since = 0
        elif seq == 1:
            body = {"ts": ts, "kind": "audit_open", "segment": 1, "pid": 1}
            since += 1
        else:
            body = {"ts": ts, "kind": "retention", "removed_segment": 0, "last_record_at": 0,
                    "retention_s": seq}
            since += 1
        full = {"seq": seq, "prev": prev}
        full.update(body)
        raw = json.dumps(full, separators=(",", ":")).encode()
        lines.append(raw)
        prev = hashlib.sha256(raw).hexdigest()
    write_lines(state, "seg-00000001.jsonl.gz", lines)
    return lines


def test_hmac_checkpoints_then_signed_ones_verify(ctx):
    # A node upgraded: its older segments carry HMAC checkpoints, the newer ones signatures.
    key = os.urandom(32)
    cl = Cleanup()
    try:
        hd, cg = fresh_hoopd(ctx, cl, "upg", "{checkpoint_every: 3, segment_bytes: 65536}",
                             state_mount=lambda h: old_hmac_trail(h.state, key))
        r = cg.run(psql_argv(ctx) + ["-tAc", "select count(*) from patients"])
        check(r.returncode == 0 and r.stdout.strip() == "50", r.stdout + r.stderr)
        hd.ctl("detach", "--cgroup", cg.path)
        check(hd.stop() == 0, "hoopd did not stop cleanly")
        ev = hd.events()
        check(not [e for e in ev if e["kind"] == "audit_tail_unverified"],
              "hoopd did not accept the HMAC tail at start: %r" % ev[10:13])
        old = [e for e in ev if e["kind"] == "checkpoint" and e["segment"] == 1]
        new = [e for e in ev if e["kind"] == "checkpoint" and e["segment"] > 1]
        check(len(old) == 2 and all("hmac" in e and "sig" not in e for e in old), old)
        check(len(new) >= 2 and all("sig" in e and "hmac" not in e for e in new), new)
        rc, rep = verify(hd.state)
        check(rc == 0 and rep["hmac_checkpoints"] == 2 and rep["signed_checkpoints"] == len(new),
              "verify of an HMAC-then-signed trail: %r" % rep)
        check(any("2 checkpoint(s), up to seq 10, carry an HMAC" in n for n in rep["notes"]), rep["notes"])
        # With only the public key the HMAC checkpoints cannot be checked: not "ok", and it says
        # which record and what it needs.
        d = os.path.join(ctx.tmp, "upg-nokey")
        shutil.rmtree(d, True)
        shutil.copytree(hd.state, d)
        for f in ("audit.key", "audit.ed25519"):
            os.unlink(os.path.join(d, f))
        r = hoopctl("verify", "--state-dir", d)
        check(r.returncode == 2 and "seg-00000001.jsonl.gz line 5 (seq 5)" in r.stderr and "audit.key" in r.stderr
              and not r.stdout.startswith("ok"), "verify without audit.key: %d %r" % (r.returncode, r.stdout + r.stderr))
        # Whoever holds audit.key (every verifier, before) cannot seal new records with it: an
        # HMAC checkpoint after signed ones is a forgery (the closing one here; an interval one,
        # signed, is before it).
        d = os.path.join(ctx.tmp, "upg-downgrade")
        shutil.rmtree(d, True)
        shutil.copytree(hd.state, d)
        name = segments(d)[-1]
        lines = read_lines(d, name)
        rec = json.loads(lines[-1])
        check(rec["kind"] == "checkpoint", rec)
        lines[-1] = reseal_line(lines[-1], hmac_seal(key, rec["seq"], rec["prev"]))
        write_lines(d, name, lines)
        expect_tamper(d, "hmac_after_signed", name, len(lines), rec["seq"], says="audit.key")
        # ...nor pass off a trail sealed by HMACs alone (everything since the upgrade cut, or
        # rewritten and sealed with audit.key) where a signing key exists
        d = os.path.join(ctx.tmp, "upg-unsigned")
        shutil.rmtree(d, True)
        shutil.copytree(hd.state, d)
        first = segments(d)[0]
        for n in segments(d)[1:]:
            os.unlink(os.path.join(d, "audit", n))
        expect_tamper(d, "unsigned_trail", first, 0, 10, says="audit.key")
    finally:
        cl.run()


# ---- nothing lost when hoopd dies --------------------------------------------------------------

def kill_hoopd(hd):
    os.kill(hd.proc.pid, signal.SIGKILL)
    hd.proc.wait()
    hd.proc = None  # an expected death: not one of hoopd's exit statuses


def open_segment(state):
    segs = [s for s in segments(state) if not s.endswith(".gz")]
    return os.path.join(state, "audit", segs[-1]) if segs else None


def running(ctx):
    """The main hoopd, started if an earlier test (or a filtered run) left it stopped."""
    if ctx.hd.proc is None:
        ctx.hd.start()
    return ctx.hd


def test_nothing_lost_when_hoopd_is_killed(ctx):
    running(ctx)
    ev0 = ctx.hd.events()
    recovered0 = sum(e["kind"] == "checkpoint" and e["reason"].startswith("recovered") for e in ev0)
    apps = set()
    # A kill between closing a segment and creating the next leaves no open segment, and then
    # nothing to recover: count the kills that left one.
    left_open = 0
    torn_done = False
    torn = b'{"seq":999999,"prev":"0000000000000000000000000000000000000000000000000000000000000000","ts":"2026'
    rnd = random.Random(os.getpid())
    for rnum in range(4):
        bapp, papp = "killtest-b%d" % rnum, "killtest-p%d" % rnum
        apps |= {bapp, papp}
        script = "".join("insert into kill_log values (%d, 'round %d');\n" % (rnum * 100000 + k, rnum)
                         for k in range(3000))
        script += "select 1/0;\nselect count(*) from kill_log;\n"
        bench = ctx.cg.popen(pgbench_argv(ctx, "-c", "3", "-j", "1", "-T", "4"), env=agent_env(bapp),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ps = ctx.cg.popen(psql_argv(ctx) + ["-q"], env=agent_env(papp), stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ps.stdin.write(script.encode())
        ps.stdin.close()
        if rnum < 3:
            time.sleep(rnd.uniform(0.5, 2.5))
            kill_hoopd(ctx.hd)
            log("  round %d: hoopd SIGKILLed under load" % rnum)
        for p in (bench, ps):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        seg = open_segment(ctx.hd.state) if rnum < 3 else None
        left_open += seg is not None
        if seg and not torn_done:
            # As if the power went mid-write: a torn record at the end of the open segment.
            with open(seg, "ab") as f:
                f.write(torn)
            torn_done = True
        if ctx.hd.proc is None:
            ctx.hd.start()
    ev = ctx.hd.events()

    # PostgreSQL's own account. Only the agents set application_name killtest-* (PGAPPNAME),
    # and only their connections go through hoopd, so these lines are exactly the statements
    # hoopd forwarded in this test. Each Query message holds one statement (pgbench -M simple and
    # psql send them one by one), logged as "statement: <text>"; hoopd records the same text
    # without the trailing semicolon. Counted per (application_name, text): BEGIN and END recur.
    logged = pg_logged(ctx, "killtest-")
    recorded, completed = statement_records(ev, apps)
    log("  PostgreSQL logged %d statements from the agents; the trail has %d statement and %d complete "
        "records for them" % (sum(logged.values()), sum(recorded.values()), sum(completed.values())))
    check(sum(logged.values()) > 3000, "too little traffic to prove anything: %d" % sum(logged.values()))
    reached = {a for a, _ in logged}
    check(reached <= apps and {"killtest-b0", "killtest-b1", "killtest-b2", "killtest-b3", "killtest-p3"} <= reached,
          "not every run reached PostgreSQL: %r" % reached)
    missing = [(k, n - recorded[k]) for k, n in logged.items() if recorded[k] < n]
    check(not missing, "PostgreSQL ran statements with no statement record: %r" % missing[:10])
    phantom = [(k, n - logged[k]) for k, n in completed.items() if n > logged[k]]
    check(not phantom, "complete records for statements PostgreSQL never logged: %r" % phantom[:10])
    # And the table says the same: every row an agent inserted has its statement on record.
    ids = [int(x) for x in direct(ctx, "select id from kill_log").split()]
    rec_ids = {int(m.group(1)) for (a, t) in recorded if a.startswith("killtest-p")
               for m in [re.match(r"insert into kill_log values \((\d+),", t)] if m}
    check(ids and set(ids) <= rec_ids, "rows inserted without a record: %r" % sorted(set(ids) - rec_ids)[:10])
    # Each unclean stop left an open segment that the next start closed with a checkpoint; the
    # torn record was cut off.
    recovered = sum(e["kind"] == "checkpoint" and e["reason"].startswith("recovered") for e in ev) - recovered0
    check(left_open >= 2 and torn_done, "the kills left too few open segments (%d)" % left_open)
    check(recovered == left_open, "%d open segments after the kills, %d closed as recovered at the next start"
          % (left_open, recovered))
    check("ends with a torn record" in ctx.hd.log_text(), "hoopd did not report the torn record")
    for name in segments(ctx.hd.state):
        check(torn not in b"\n".join(read_lines(ctx.hd.state, name)), "the torn record is still there")
    rc, rep = verify(ctx.hd.state)
    check(rc == 0, "verify after 3 SIGKILLs: %r" % rep)


def test_crash_right_after_a_rollover_keeps_the_chain(ctx):
    # hoopd creates the next segment when one fills and writes to it with the next record; a
    # crash in between leaves it empty. The next start must continue the chain from the segment
    # before, not start a new one at seq 1.
    check(running(ctx).stop() == 0, "hoopd did not stop cleanly")
    segs = segments(ctx.hd.state)
    n = int(segs[-1][4:12])
    open(os.path.join(ctx.hd.state, "audit", "seg-%08d.jsonl" % (n + 1)), "w").close()
    ctx.hd.start()
    r = ctx.cg.run(psql_argv(ctx) + ["-tAc", "select 'after the rollover crash'"])
    check(r.stdout.strip() == "after the rollover crash", r.stdout + r.stderr)
    rc, rep = verify(ctx.hd.state)
    check(rc == 0, "verify: %r" % rep)
    # A record longer than any line buffer at the end of an open segment, then a crash: a
    # statement just under the 1 MiB cap (limits.statement_bytes) runs and is recorded whole.
    big = "x" * (1000 << 10)
    r = ctx.cg.run(psql_argv(ctx) + ["-tA"], input="select length('%s');\n" % big)
    check(r.stdout.strip() == str(1000 << 10), "a 1000 KiB statement: %r" % (r.stdout[:100] + r.stderr[:300]))
    last = [e for e in ctx.hd.events() if e["kind"] == "statement"][-1]
    check(len(last["text"]) > (1000 << 10), "the 1000 KiB statement was not recorded whole")
    kill_hoopd(ctx.hd)
    ctx.hd.start()
    rc, rep = verify(ctx.hd.state)
    check(rc == 0, "verify after a crash behind a 1000 KiB record: %r" % rep)


def test_crash_during_compression_keeps_the_trail(ctx):
    # hoopd compresses closed segments in the background: plain -> .gz.tmp -> .gz, then the plain
    # one goes. A crash in the middle leaves a plain segment with a partial .tmp beside it, or a
    # plain segment beside its finished .gz. Either way the trail verifies, and the next start
    # finishes the job.
    check(running(ctx).stop() == 0, "hoopd did not stop cleanly")
    segs = segments(ctx.hd.state)
    check(len(segs) >= 3 and all(s.endswith(".gz") for s in segs), "a sealed trail: %r" % segs)
    d = os.path.join(ctx.hd.state, "audit")
    mid, both = segs[-2], segs[-3]  # not the last: that one a start would take as open
    data = b"\n".join(read_lines(ctx.hd.state, mid)) + b"\n"
    with open(os.path.join(d, mid[:-3]), "wb") as f:
        f.write(data)
    with open(os.path.join(d, mid + ".tmp"), "wb") as f:
        f.write(gzip.compress(data)[:100])  # cut short
    os.unlink(os.path.join(d, mid))
    with open(os.path.join(d, both[:-3]), "wb") as f:
        f.write(b"\n".join(read_lines(ctx.hd.state, both)) + b"\n")
    rc, rep = verify(ctx.hd.state)
    check(rc == 0, "verify with a compression cut short: %r" % rep)
    ctx.hd.start()

    def finished():
        names = os.listdir(d)
        plain = sorted(n for n in names if n.endswith(".jsonl"))
        return not any(n.endswith(".tmp") for n in names) and len(plain) == 1 and plain[0] > segs[-1]
    wait_for(finished, 20, "the next start to finish compressing")
    check(os.path.exists(os.path.join(d, mid)) and os.path.exists(os.path.join(d, both)), os.listdir(d))
    check(read_lines(ctx.hd.state, mid) == data.split(b"\n")[:-1], "%s changed in compression" % mid)
    rc, rep = verify(ctx.hd.state)
    check(rc == 0, "verify after the next start: %r" % rep)


# ---- a full disk -------------------------------------------------------------------------------

def test_full_disk_refuses_statements_until_space_frees(ctx):
    running(ctx).ctl("detach", "--cgroup", ctx.cg.path)
    check(ctx.hd.stop() == 0, "main hoopd did not stop cleanly")
    cl = Cleanup()
    try:
        def on_tmpfs(hd):
            os.makedirs(hd.state, mode=0o700)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", hd.state], check=True)
            # Unmounted after hoopd stops (pushed later, runs earlier): stop it first.
            cl.push(lambda: (hd.stop(), subprocess.run(["umount", hd.state], check=True)))
        hd, cg = fresh_hoopd(ctx, cl, "full", "{segment_bytes: 65536}", state_mount=on_tmpfs)

        def insert(k):
            return cg.run(psql_argv(ctx), input="\\set VERBOSITY verbose\ninsert into diskfull values (%d);\n" % k)
        r = insert(1)
        check(r.returncode == 0 and "INSERT 0 1" in r.stdout, r.stderr)
        filler = os.path.join(hd.state, "filler")
        for bs in ("64k", "4k"):
            subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=" + bs, "oflag=append", "conv=notrunc"],
                           capture_output=True)
        # The segment's last page may still have room for a record or two.
        refused = None
        for k in range(2, 80):
            r = insert(k)
            if "58030" in r.stderr:
                refused = k
                break
            check("INSERT 0 1" in r.stdout, "insert %d: %s" % (k, r.stderr))
        check(refused, "no statement was refused with the disk full")
        # ERROR from a single hoopd process; FATAL from an engine worker, whose statement's
        # record the broker's store refused after the worker had passed the statement on to
        # be sent once the record was written: it is dropped and the session ends
        # (docs/audit.md)
        check(re.search(r"(ERROR|FATAL):  58030: hoop: the audit trail cannot be written", r.stderr),
              r.stderr)
        check(direct(ctx, "select count(*) from diskfull where id = %d" % refused) == "0",
              "the refused statement ran")
        check(direct(ctx, "select count(*) from diskfull") == str(refused - 1), "an earlier insert is missing")
        check("AUDIT TRAIL CANNOT BE WRITTEN" in hd.log_text(), "hoopd did not say why")
        os.unlink(filler)
        r = insert(1000)
        check(r.returncode == 0 and "INSERT 0 1" in r.stdout, "after freeing space: " + r.stderr)
        check(direct(ctx, "select count(*) from diskfull where id = 1000") == "1", "insert 1000 missing")
        check("statements flow again" in hd.log_text(), "hoopd did not say it recovered")
        ev = hd.events()
        check(not any(e["kind"] == "statement" and "values (%d)" % refused in e.get("text", "") for e in ev),
              "the refused statement has a record (it was not written: the disk was full)")
        rc, rep = verify(hd.state)
        check(rc == 0, "verify after the disk filled: %r" % rep)
        hd.ctl("detach", "--cgroup", cg.path)
        check(hd.stop() == 0, "hoopd did not stop cleanly")
        rc, rep = verify(hd.state)
        check(rc == 0, "verify after stop: %r" % rep)
    finally:
        cl.run()


def test_fsync_durability_carries_pgbench(ctx):
    cl = Cleanup()
    try:
        hd, cg = fresh_hoopd(ctx, cl, "fsync", "{durability: fsync, segment_bytes: 1048576}")
        check("durability fsync" in hd.log_text(), "hoopd did not take durability: fsync")
        r = cg.run(pgbench_argv(ctx, "-c", "4", "-j", "2", "-T", "5"), env=agent_env("fsync-bench"))
        check(r.returncode == 0 and "number of failed transactions: 0 " in r.stdout, r.stdout + r.stderr)
        m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
        check(m and int(m.group(1)) > 20, r.stdout)
        ev = hd.events()
        stmts, done = statement_records(ev, {"fsync-bench"})
        # tpcb-like: BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction.
        check(sum(done.values()) >= 7 * int(m.group(1)),
              "%d complete records for %s transactions" % (sum(done.values()), m.group(1)))
        rc, rep = verify(hd.state)
        check(rc == 0, "verify: %r" % rep)
        hd.ctl("detach", "--cgroup", cg.path)
        check(hd.stop() == 0, "hoopd did not stop cleanly")
        rc, rep = verify(hd.state)
        check(rc == 0, "verify after stop: %r" % rep)
        # Segments of over a MiB are compressed as one gzip member per MiB (user/hoopd/audit/audit_compress.c):
        # hoopctl and Python's gzip read every member, every record.
        gz = [s for s in segments(hd.state) if s.endswith(".gz")]
        members = [gzip_members(os.path.join(hd.state, "audit", s)) for s in gz]
        check(gz and max(members) > 1, "no segment of several gzip members: %r" % list(zip(gz, members)))
        check(rep.get("records") == len(hd.events()),
              "verify read %r records, the trail holds %d" % (rep.get("records"), len(hd.events())))
    finally:
        cl.run()


def gzip_members(path):
    """How many gzip members the file holds (each starts after the previous one's end)."""
    import zlib
    with open(path, "rb") as f:
        data = f.read()
    n = 0
    while data:
        d = zlib.decompressobj(wbits=31)
        d.decompress(data)
        check(d.eof, "%s: a gzip member cut short" % path)
        data = d.unused_data
        n += 1
    return n


def test_retention_removes_old_segments_on_record(ctx):
    cl = Cleanup()
    try:
        hd, cg = fresh_hoopd(ctx, cl, "ret", "{retention: 1d, segment_bytes: 65536}")
        r = cg.run(pgbench_argv(ctx, "-c", "2", "-T", "2"), env=agent_env("retention-bench"))
        check(r.returncode == 0, r.stderr)
        hd.ctl("detach", "--cgroup", cg.path)
        check(hd.stop() == 0, "hoopd did not stop cleanly")
        segs = segments(hd.state)
        check(len(segs) > 5, "too few segments: %r" % segs)
        # Retention goes by the records' own times, not the files': the first three segments
        # as if written two days ago (the trail re-sealed with the key), and every file as new.
        old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))

        def backdate(n, rec):
            if n <= 3:
                rec["ts"] = old
        reseal(hd.state, backdate)
        for name in segments(hd.state):
            os.utime(os.path.join(hd.state, "audit", name), None)
        rc, rep = verify(hd.state)
        check(rc == 0, "the re-sealed trail does not verify: %r" % rep)
        hd.start()  # retention runs on hoopd's first housekeeping round
        wait_for(lambda: segments(hd.state)[0] == segs[3], 10, "retention to remove 3 segments")
        gone = [e["removed_segment"] for e in hd.events() if e["kind"] == "retention"]
        check(sorted(gone) == [1, 2, 3], "retention records: %r" % gone)
        rc, out = verify_text(hd.state)
        check(rc == 0 and "removed by retention" in out, out)
        # A segment deleted by hand is not retention's doing.
        d = os.path.join(ctx.tmp, "ret-tamper")
        shutil.copytree(hd.state, d)
        os.unlink(os.path.join(d, "audit", segs[3]))
        expect_tamper(d, "segment_missing", segs[4], 0, says="no retention record")
    finally:
        cl.run()


def test_hoopds_exited_cleanly(ctx):
    bad = [b for h in ctx.hoopds for b in h.sanitizer_reports()]
    check(not bad, "hoopd reported:\n" + "\n".join(bad[:20]))


TESTS = [
    test_replay_matches_what_psql_saw,
    test_sessions_lists_it_with_owner_and_filters,
    test_export_csv_has_header_and_the_statements,
    test_tcp_session_is_listed_with_its_bytes,
    test_verify_ok_after_psql_and_pgbench,
    test_verify_covers_tcp_sessions,
    test_tamper_flipped_byte_is_found,
    test_tamper_deleted_record_is_found,
    test_tamper_deleted_segment_is_found,
    test_tamper_swapped_records_are_found,
    test_tamper_truncated_segment_is_found,
    test_tamper_rechained_segment_is_found,
    test_auditor_verifies_with_only_the_public_key,
    test_checkpoint_forged_with_another_key_is_found,
    test_hmac_checkpoints_then_signed_ones_verify,
    test_nothing_lost_when_hoopd_is_killed,
    test_crash_right_after_a_rollover_keeps_the_chain,
    test_crash_during_compression_keeps_the_trail,
    test_full_disk_refuses_statements_until_space_frees,
    test_fsync_durability_carries_pgbench,
    test_retention_removes_old_segments_on_record,
    test_hoopds_exited_cleanly,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root (BPF, cgroups, mounts)", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
