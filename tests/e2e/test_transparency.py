#!/usr/bin/python3
"""Transparency of hoopd, measured: PostgreSQL 15's own regression SQL (tests/e2e/transparency/,
vendored from PostgreSQL 15.18 with its licence) is run with psql twice, once directly against
one PostgreSQL cluster and once as an agent through hoopd, with an allow-all policy, against a
second cluster made the same way. The two outputs of each file are compared line for line after
a few narrow normalisations (NORMALISE below). Each corpus file is one test case; a difference
fails it unless tests/e2e/transparency/DELIBERATE.md lists the statement as one that hoop refuses
or changes on purpose. The files psql alone can run go again over the extended protocol
(transparency_xrun.py; cases test_x_FILE).

The policy has no masking rules: this measures the protocol relay and the statement gate.

Usage (as root): tests/e2e/test_transparency.py [NAME-SUBSTRING ...]
  (most files need test_setup's tables, and some need earlier files': name those too)
  HOOP_TRANSP_KEEP=DIR  copy both outputs of every file to DIR (direct/ and hoopd/)
"""
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hooptest import (attach_agents, check, check_clean_stop, Cleanup, Hoopd,  # noqa: E402
                      Postgres, log, run_tests)

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "transparency")
XRUN = os.path.join(HERE, "transparency_xrun.py")
FILE_TIMEOUT = 300

# The allow-all policy: every statement and FunctionCall is forwarded (match: {} matches both;
# without it FunctionCall messages are refused whatever `default` says). on_parse_error can only
# be deny or approve: hoop never forwards what it cannot parse.
POLICY = """version: 1
targets:
  - name: regression
    protocol: postgres
    ports: [%d]
default: allow
rules:
  - name: allow-everything
    action: allow
    match: {}
"""

# What legitimately differs between two runs, hoopd or not; each as narrow as the output allows.
NORMALISE = [
    # VERBOSITY=verbose's LOCATION: the C function, file and line in the server that raised an
    # error or notice (hoop's own messages have none; its other fields are compared).
    (re.compile(r"^LOCATION:  .*\n", re.M), ""),
    # A session's temporary schema is numbered after its backend slot: the lowest free one,
    # which depends on the other sessions the server has at that moment (autovacuum workers).
    (re.compile(r"\bpg_(toast_)?temp_\d+\b"), r"pg_\1temp_N"),
]


class Ctx:
    pass


def corpus_files():
    names = []
    with open(os.path.join(CORPUS, "schedule")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return names


def load_allowlist():
    """(file, statement) pairs from DELIBERATE.md's table rows: | `file` | `statement` | why |"""
    allowed = []
    path = os.path.join(CORPUS, "DELIBERATE.md")
    if not os.path.exists(path):
        return allowed
    row = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`(.+?)`\s*\|(.+)\|\s*$")
    with open(path) as f:
        for line in f:
            m = row.match(line)
            if m:
                allowed.append((m.group(1), m.group(2)))
    return allowed


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    # max_prepared_transactions: what pg_regress's temporary instance sets (prepared_xacts).
    extra = ("max_prepared_transactions=2",)
    ctx.direct = Postgres(ctx.cleanup, extra=extra)
    ctx.via = Postgres(ctx.cleanup, extra=extra)
    ctx.hd = Hoopd(ctx.cleanup, POLICY % ctx.via.port)
    ctx.hoopds = [ctx.hd]
    ctx.hd.start("--log-level", "info")
    ctx.cg = attach_agents(ctx, "transparency@example.org")
    ctx.tmp = tempfile.mkdtemp(prefix="hoop-transp-")
    os.chmod(ctx.tmp, 0o755)
    ctx.cleanup.push(shutil.rmtree, ctx.tmp, True)
    # The database pg_regress makes, with the settings it gives it; regression_x the same for
    # the extended protocol's pass.
    for pg in (ctx.direct, ctx.via):
        for db in ("regression", "regression_x"):
            pg.psql_direct("create database %s template=template0" % db)
            for s in ("lc_messages to 'C'", "lc_monetary to 'C'", "lc_numeric to 'C'",
                      "lc_time to 'C'", "bytea_output to 'hex'",
                      "timezone_abbreviations to 'Default'"):
                pg.psql_direct("alter database %s set %s" % (db, s))
    # The server reads the data files (COPY FROM a file) as user postgres: from a copy of its
    # own, whatever the modes of the tree this runs from.
    shutil.copytree(os.path.join(CORPUS, "data"), os.path.join(ctx.tmp, "src", "data"))
    for d, _, files in os.walk(os.path.join(ctx.tmp, "src")):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    # The files the corpus writes with COPY TO go to BUILDDIR/results, written by the server.
    for side in ("direct", "hoopd"):
        d = os.path.join(ctx.tmp, "build-" + side, "results")
        os.makedirs(d)
        shutil.chown(d, "postgres", "postgres")
        os.chmod(os.path.dirname(d), 0o755)
    ctx.allowed = load_allowlist()
    ctx.used = set()
    ctx.stats = {"files": 0, "files_x": 0, "direct": 0.0, "hoopd": 0.0}
    prepare_extended(ctx)
    return ctx


def psql_env(ctx, side, pg):
    """What pg_regress gives psql: its time zone and date style (sent in the startup message),
    the corpus' directories and the regress library's (absent: see transparency/README.md)."""
    return dict(os.environ, PGTZ="PST8PDT", PGDATESTYLE="Postgres, MDY", LANG="C", LC_ALL="C",
                PGHOST="127.0.0.1", PGPORT=str(pg.port), PGUSER="postgres",
                PGDATABASE="regression", PG_ABS_SRCDIR=os.path.join(ctx.tmp, "src"),
                PG_ABS_BUILDDIR=os.path.join(ctx.tmp, "build-" + side),
                PG_LIBDIR="/nonexistent-regress-lib", PG_DLSUFFIX=".so")


def run_file(ctx, name, sql=None, extended=False):
    """Both runs of one file, side by side: their outputs (stdout and stderr interleaved, as
    pg_regress takes them) and how long each took. extended: run by transparency_xrun.py over
    the extended protocol, in the database regression_x, rather than by psql."""
    sql = sql or os.path.join(CORPUS, "sql", name + ".sql")
    if extended:
        argv = [sys.executable, XRUN, "dbname=regression_x", sql]
    else:
        # VERBOSITY=verbose: every error and notice shows its SQLSTATE and its other fields.
        argv = ["psql", "-X", "-a", "-q", "-v", "VERBOSITY=verbose"]
    outs, procs = [], []
    t0 = time.time()
    for side, pg in (("direct", ctx.direct), ("hoopd", ctx.via)):
        out = os.path.join(ctx.tmp, "%s.%s.out" % (name, side))
        env = psql_env(ctx, side, pg)
        with open(sql if not extended else os.devnull, "rb") as fin, open(out, "wb") as fout:
            if side == "hoopd":
                p = ctx.cg.popen(argv, stdin=fin, stdout=fout, stderr=subprocess.STDOUT, env=env)
            else:
                p = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=subprocess.STDOUT,
                                     env=env)
        procs.append(p)
        outs.append((side, out))
    ends = [None, None]
    while None in ends:
        for k, p in enumerate(procs):
            if ends[k] is None and p.poll() is not None:
                ends[k] = time.time()
        if None in ends and time.time() - t0 > FILE_TIMEOUT:
            for k, p in enumerate(procs):
                if ends[k] is None:
                    p.kill()
                    p.wait()
                    ends[k] = time.time()
                    with open(outs[k][1], "ab") as f:
                        f.write(b"\n(the test killed this psql after %ds)\n" % FILE_TIMEOUT)
        time.sleep(0.01)
    text = {}
    keep = os.environ.get("HOOP_TRANSP_KEEP")
    for side, out in outs:
        with open(out, "rb") as f:
            text[side] = f.read().decode("utf-8", "replace")
        if keep:
            os.makedirs(os.path.join(keep, side), exist_ok=True)
            shutil.copy(out, os.path.join(keep, side, name + (".x" if extended else "") + ".out"))
        os.unlink(out)
    return text["direct"], text["hoopd"], (ends[0] - t0, ends[1] - t0)


def normalise(ctx, text, side):
    """Each side has its own directory for the files the corpus writes (COPY TO a file)."""
    text = text.replace(os.path.join(ctx.tmp, "build-" + side), "@BUILDDIR@")
    for rx, rep in NORMALISE:
        text = rx.sub(rep, text)
    return text.splitlines()


def statement_lines(sql_lines):
    """For each SQL line, the (1-based) first line of the statement it belongs to: a statement
    starts at a line that is not blank or a comment after one that ended a statement (with ';'
    or a psql meta-command). Close enough to name a statement in a report and in DELIBERATE.md,
    which take it from the report."""
    starts = []
    cur = 0
    open_ = False
    for k, line in enumerate(sql_lines):
        s = line.strip()
        if s and not s.startswith("--"):
            if not open_:
                cur = k + 1
            open_ = not (s.endswith(";") or s.startswith("\\"))
        starts.append(cur)
    return starts


def owners(sql_lines, out_lines):
    """For each output line, the first SQL line of the statement psql had run when it printed
    it. psql -a echoes the input lines in order, but not blank ones nor COPY data (which a
    failed COPY makes SQL again), so an output line that is not the next input line but one
    of the next few hundred (and not a short one a result could print) moves the alignment
    there."""
    starts = statement_lines(sql_lines)
    where = {}
    for k, line in enumerate(sql_lines):
        where.setdefault(line, []).append(k)
    owner = []
    i = 0
    for line in out_lines:
        while i < len(sql_lines) and not sql_lines[i].strip():
            i += 1
        if i < len(sql_lines) and line == sql_lines[i]:
            i += 1
        elif len(line.strip()) >= 4 and line in where:
            ahead = [k for k in where[line] if i < k <= i + 400]
            if ahead:
                i = ahead[0] + 1
        owner.append(starts[i - 1] if i else 0)
    return owner


def compare(ctx, name, direct, via, sql_path=None, how=""):
    """The differences between the two outputs that DELIBERATE.md does not list: one text per
    difference, naming the statement (FILE.sql:LINE: its first line) and showing the lines."""
    d = normalise(ctx, direct, "direct")
    v = normalise(ctx, via, "hoopd")
    if d == v:
        return []
    with open(sql_path or os.path.join(CORPUS, "sql", name + ".sql"), errors="replace") as f:
        sql_lines = f.read().splitlines()
    owner = owners(sql_lines, d)
    problems = []
    sm = difflib.SequenceMatcher(None, d, v, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        k = i1 if i1 < i2 else i1 - 1
        at = owner[k] if 0 <= k < len(owner) else 0
        stmt = sql_lines[at - 1].strip() if at else ""
        if (name, stmt) in ctx.allowed:
            ctx.used.add((name, stmt))
            continue
        hunk = ["@@ %s.sql:%d%s: %s" % (name, at, how, stmt)]
        hunk += ["- " + l for l in d[i1:i2][:15]] + ["+ " + l for l in v[j1:j2][:15]]
        problems.append("\n".join(hunk))
    return problems


def make_case(name, extended=False):
    def case(ctx):
        direct, via, secs = run_file(ctx, name, extended=extended)
        ctx.stats["files_x" if extended else "files"] += 1
        ctx.stats["direct"] += secs[0]
        ctx.stats["hoopd"] += secs[1]
        check(direct.strip(), "the direct run printed nothing")
        problems = compare(ctx, name, direct, via, how=" (extended protocol)" if extended else "")
        check(not problems, "%d difference(s) through hoopd (- direct, + hoopd):\n%s" % (
            len(problems), "\n".join(problems[:20])))
    case.__name__ = ("test_x_" if extended else "test_") + name.replace(".", "_")
    return case


# Files the extended protocol's pass leaves out although it could run them: they spend their
# time in the planner and parallel workers (a third of the pass), not in the protocol.
EXTENDED_SKIP = {"join_hash", "select_parallel", "join", "create_index_spgist", "memoize"}


def extended_files():
    """The files the extended protocol's pass runs: those that are plain SQL (no psql
    meta-command or variable, no COPY FROM STDIN data, no BEGIN ATOMIC body, which the runner's
    split would cut at its semicolons), test_setup aside (setup runs it into regression_x)."""
    from transparency_xrun import statements
    names = []
    for name in corpus_files():
        with open(os.path.join(CORPUS, "sql", name + ".sql"), errors="replace") as f:
            text = f.read()
        meta = []
        statements(text, meta)
        if name != "test_setup" and name not in EXTENDED_SKIP and not meta and \
                not re.search(r"from\s+stdin|begin\s+atomic", text, re.I):
            names.append(name)
    return names


def prepare_extended(ctx):
    """regression_x gets test_setup's tables, directly on both clusters (a preparation, not
    compared)."""
    for side, pg in (("direct", ctx.direct), ("hoopd", ctx.via)):
        env = dict(psql_env(ctx, side, pg), PGDATABASE="regression_x")
        subprocess.run(["psql", "-X", "-q", "-f", os.path.join(CORPUS, "sql", "test_setup.sql")],
                       env=env, check=True, capture_output=True, timeout=FILE_TIMEOUT)


SELF_TEST_SQL = """-- the harness' own check: a difference is seen
select 1 as one;
show datestyle;
select 2 as two;
show timezone;
"""


def test_a_refused_statement_is_reported(ctx):
    """The comparison can fail: with a policy that denies SHOW, exactly the two SHOW statements
    differ; a DELIBERATE.md entry for one of them excuses that one only; and with the allow-all
    policy back the same file shows no difference."""
    path = os.path.join(ctx.tmp, "self_test.sql")
    with open(path, "w") as f:
        f.write(SELF_TEST_SQL)
    ctx.hd.write_policy(POLICY % ctx.via.port + """  - name: no-show
    action: deny
    match: {statements: [show]}
    message: "hoop: transparency self-test refuses SHOW"
""")
    ctx.hd.ctl("reload")
    try:
        direct, via, _ = run_file(ctx, "self_test", sql=path)
    finally:
        ctx.hd.write_policy(POLICY % ctx.via.port)
        ctx.hd.ctl("reload")
    problems = compare(ctx, "self_test", direct, via, sql_path=path)
    check(len(problems) == 2 and "self_test.sql:3: show datestyle;" in problems[0]
          and "self_test.sql:5: show timezone;" in problems[1]
          and all("refuses SHOW" in p for p in problems),
          "the denied SHOWs were not reported as they should be:\n" + "\n".join(problems))
    # An entry of DELIBERATE.md excuses its statement and no other.
    entry = ("self_test", "show timezone;")
    ctx.allowed.append(entry)
    try:
        problems = compare(ctx, "self_test", direct, via, sql_path=path)
    finally:
        ctx.allowed.remove(entry)
        ctx.used.discard(entry)
    check(len(problems) == 1 and "show datestyle;" in problems[0],
          "with show timezone listed as deliberate:\n" + "\n".join(problems))
    direct, via, _ = run_file(ctx, "self_test", sql=path)
    problems = compare(ctx, "self_test", direct, via, sql_path=path)
    check(not problems, "with the allow-all policy back:\n" + "\n".join(problems))


def test_every_file_went_through_hoopd(ctx):
    """Each run through hoopd was a session of hoopd's, and its statements are on record: the
    size of what was measured."""
    st = ctx.hd.status()["stats"]
    runs = ctx.stats["files"] + ctx.stats["files_x"]
    check(st["connections_accepted"] >= runs,
          "hoopd accepted %d connections for %d runs" % (st["connections_accepted"], runs))
    stmts = sum(1 for e in ctx.hd.events() if e.get("kind") == "statement")
    log("transparency: %d files with psql, %d with the extended protocol, %d statements judged "
        "by hoopd; the runs took %.1fs directly, %.1fs through hoopd" % (
            ctx.stats["files"], ctx.stats["files_x"], stmts, ctx.stats["direct"],
            ctx.stats["hoopd"]))
    check(stmts >= 10 * runs, "only %d statements on record" % stmts)


def test_deliberate_md_lists_only_what_happens(ctx):
    """Every entry of DELIBERATE.md still matches a difference: the list stays narrow."""
    if ctx.stats["files"] < len(corpus_files()):
        return  # a partial run (a name filter) cannot tell
    stale = [a for a in ctx.allowed if a not in ctx.used]
    check(not stale, "DELIBERATE.md lists statements that no longer differ:\n" +
          "\n".join("%s: %s" % a for a in stale))


def test_hoopd_stops_cleanly_without_sanitizer_reports(ctx):
    check_clean_stop(ctx.hd, ctx.cg.path)


def main():
    tests = [make_case(n) for n in corpus_files()] + [
        make_case(n, extended=True) for n in extended_files()] + [
        test_a_refused_statement_is_reported, test_every_file_went_through_hoopd,
        test_deliberate_md_lists_only_what_happens,
        test_hoopd_stops_cleanly_without_sanitizer_reports]
    t0 = time.time()
    rc = run_tests(tests, setup, lambda ctx: ctx and ctx.cleanup.run(), only=sys.argv[1:] or None)
    log("transparency: %.1fs in all" % (time.time() - t0))
    return rc


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root", file=sys.stderr)
        sys.exit(1)
    sys.exit(main())
