#!/usr/bin/python3
"""End-to-end tests of PHI masking: a synthetic clinical dataset (tests/gen_clinical.py: 10,000
patients, 30,000 encounters whose notes embed identifiers, portal messages that spell them
freely) in a real PostgreSQL, hoopd with tests/e2e/masking/policy.yaml in front of it, agents in
an attached cgroup using psql, psycopg and a raw extended-protocol client.

  - every statement of the exfiltration corpus (masking/exfil.sql) returns raw PHI when run
    directly (so the scan can fail), and through hoopd no raw SSN, MRN, email, phone, card
    number or IPv4 address of the dataset (also with other separators, digits only, in any case,
    reversed, hex, base64, or as an MD5/SHA digest) appears in any byte a client received: text
    and binary results, prepared statements, cursors, server-side cursors, pipelines, Execute
    with a row limit with and without Describe, COPY in every format, \\copy, errors, notices,
    notifications and parameter status; a refusal is no leak, but is listed;
  - statement and portal names closed and reused over the extended protocol do not confuse
    which plan masks which rows;
  - legitimate queries (masking/legit.sql) return exactly what a direct connection returns;
  - styles behave as the policy says (partial keeps the last 4, hash is deterministic across
    sessions and tables so joins and GROUP BY still work, format_preserving keeps the shape,
    redact is a placeholder valid for the type, null is NULL) in text and binary formats, and
    the keyed styles are no oracle: a guess cannot be masked like the real value and compared;
  - values computed from masked columns stay valid for their type (text, binary, binary COPY);
  - the statement's "complete" record counts masked cells per column and per detector;
  - with a probes_masked rule, predicates on masked columns are refused (42501) and not run.

Usage (as root): tests/e2e/test_masking.py [NAME-SUBSTRING ...]
Set HOOP_MASKING_KEEP=DIR to keep what the clients received through hoopd, one file per
statement and way.
"""
import base64
import bisect
import collections
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
MASKDIR = os.path.join(HERE, "masking")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from hooptest import (attach_agents, teardown, check_clean_stop, Cleanup, Hoopd, Postgres, check,  # noqa: E402
                      log, run_tests, wait_for)
import gen_clinical  # noqa: E402

PY = "/usr/bin/python3"
SEED = 20261126
OWNER = "erin@example.org"
PROBE_MSG = "hoop: predicates on masked columns can reveal what the mask hides"


class Ctx:
    pass


# ---- the leak scanner -------------------------------------------------------------------------

class Scanner:
    """Finds the dataset's raw PHI values in bytes a client received: every stored spelling, other
    separators, digits only, any case, reversed, hex, base64, and MD5/SHA-1/SHA-256 hex digests of
    a value. A digits-only form counts only as a whole number (not inside a longer word or hex
    digest, where it would turn up by chance)."""

    # Numbers with separators: every digit-based form is looked for inside such chunks only
    # (with one character of context either side), which is far less text than the whole.
    RX_CHUNK = re.compile(r"[\d(+][\d\-. /_()+]{6,}")
    RX_SSN = re.compile(r"(?=(\d{3}[-. /_]\d{2}[-. /_]\d{4}))")
    RX_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{8,}(?![0-9A-Za-z])")
    RX_PHONE = re.compile(r"(?=(\(\d{3}\)[ -]?\d{3}[-. ]\d{4}|\d{3}[-. /]\d{3}[-. /]\d{4}|\+1\d{10}))")
    RX_CARD = re.compile(r"(?=(\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}))")
    RX_IPV4 = re.compile(r"(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d])")
    RX_MRN = re.compile(r"MRN[-_ :]?(\d{8})", re.I)
    RX_AT = re.compile(r"@")
    RX_HEXRUN = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{16,}")
    RX_B64RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}")
    RX_JOIN = re.compile(r"[\x00-\x1f|,'\" ]")
    MAX_HITS = 1000  # per pass: enough to describe a leak

    def __init__(self, phi):
        self.ssn = set(phi["ssn_digits"])
        self.mrn = set(phi["mrn_digits"])
        self.phone = set(phi["phone_digits"])
        self.card = set(phi["card_digits"])
        self.ipv4 = set(phi["ipv4"])
        self.by_domain = collections.defaultdict(set)
        for e in phi["email"]:
            local, dom = e.lower().rsplit("@", 1)
            self.by_domain[dom].add(local)
        self.local_lens = sorted({len(e.split("@")[0]) for e in phi["email"]})
        self.digests = {}
        spellings = [("ssn", v) for v in phi["ssn"] + phi["ssn_digits"]] + \
            [("mrn", v) for v in phi["mrn"]] + [("email", v) for v in phi["email"]] + \
            [("phone", v) for v in phi["phone"] + phi["phone_digits"]]
        for kind, v in spellings:
            b = v.encode()
            for h in (hashlib.md5, hashlib.sha1, hashlib.sha256):
                self.digests[h(b).hexdigest()] = (kind, v)

    def _base(self, t, form, hits):
        def hit(kind, value, pos):
            self.counts[(kind, form)] += 1
            if len(hits) < self.MAX_HITS:
                hits.append((kind, value, form, t[max(0, pos - 40):pos + 60]))
            if self.first:
                raise _Found()

        starts, pieces, at = [], [], 0
        for m in self.RX_CHUNK.finditer(t):
            s0 = max(0, m.start() - 1)
            starts.append((at, s0))
            piece = t[s0:m.end() + 1] + "\n"
            pieces.append(piece)
            at += len(piece)
        c = "".join(pieces)
        keys = [x[0] for x in starts]

        def where(pos):  # a position in c, in t
            i = bisect.bisect_right(keys, pos) - 1
            return starts[i][1] + pos - starts[i][0]

        for m in self.RX_SSN.finditer(c):
            if re.sub(r"\D", "", m.group(1)) in self.ssn:
                hit("ssn", m.group(1), where(m.start()))
        for m in self.RX_PHONE.finditer(c):
            if re.sub(r"\D", "", m.group(1))[-10:] in self.phone:
                hit("phone", m.group(1), where(m.start()))
        for m in self.RX_CARD.finditer(c):
            if re.sub(r"\D", "", m.group(1)) in self.card:
                hit("card", m.group(1), where(m.start()))
        for m in self.RX_IPV4.finditer(c):
            if m.group(0) in self.ipv4:
                hit("ipv4", m.group(0), where(m.start()))
        for m in self.RX_DIGITS.finditer(c):
            d = m.group(0)
            cands = [d] if len(d) <= 11 else \
                [d[i:i + n] for n in (8, 9, 10, 16) for i in range(len(d) - n + 1)]
            for x in cands:
                if (len(x) == 8 and x in self.mrn) or (len(x) == 9 and x in self.ssn) or \
                        (len(x) == 10 and x in self.phone) or \
                        (len(x) == 11 and x[0] == "1" and x[1:] in self.phone) or \
                        (len(x) == 16 and x in self.card):
                    hit({8: "mrn", 9: "ssn", 10: "phone", 11: "phone", 16: "card"}[len(x)],
                        x, where(m.start()))
        for m in self.RX_MRN.finditer(t):
            if m.group(1) in self.mrn:
                hit("mrn", m.group(0), m.start())
        low = t.lower()
        for m in self.RX_AT.finditer(low):
            i = m.start()
            for dom, locals_ in self.by_domain.items():
                if low.startswith(dom, i + 1):
                    for n in self.local_lens:
                        if n <= i and low[i - n:i] in locals_:
                            hit("email", low[i - n:i] + "@" + dom, i - n)
        for m in self.RX_HEXRUN.finditer(low):
            run = m.group(0)
            if len(run) >= 32:
                for n in (32, 40, 64):
                    for i in range(0, len(run) - n + 1):
                        kv = self.digests.get(run[i:i + n])
                        if kv:
                            hit(kv[0], "%s(%s)" % ({32: "md5", 40: "sha1", 64: "sha256"}[n], kv[1]),
                                m.start() + i)

    first = False

    def scan(self, data, forms=(), first=False):
        """[(kind, value, form, context)] of the raw PHI values found in data (bytes): as is, in
        hex runs (bytea output) and as hex digests always; reversed, base64 and with field
        separators removed ("joined") when forms asks for them (those passes cost the most, and
        a result holds such forms only when the statement asks for them). With first, stop at
        the first one."""
        hits = []
        self.first = first
        self.counts = collections.Counter()
        try:
            self._scan(data.decode("latin-1"), forms, hits)
        except _Found:
            pass
        return hits

    def scan_counted(self, data, forms=()):
        """scan(), and how many values of each (kind, form) it found in all (hits stop at
        MAX_HITS)."""
        hits = self.scan(data, forms)
        return hits, dict(self.counts)

    def _scan(self, t, forms, hits):
        self._base(t, "as is", hits)
        dec = []
        for m in self.RX_HEXRUN.finditer(t):
            run = m.group(0)
            for off in (0, 1):
                n = (len(run) - off) // 2 * 2
                dec.append(bytes.fromhex(run[off:off + n]).decode("latin-1"))
        if dec:
            self._base("\n".join(dec), "hex", hits)
        if "reversed" in forms:
            self._base(t[::-1], "reversed", hits)
        if "base64" in forms:
            dec = []
            # PostgreSQL wraps base64 at 76 characters: glue lines, try every alignment.
            src = t.replace("\\n", "").replace("\n", "").replace("\r", "")
            for m in self.RX_B64RUN.finditer(src):
                run = m.group(0).rstrip("=")
                for off in range(4):
                    x = run[off:]
                    x = x[:len(x) // 4 * 4]
                    if len(x) >= 16:
                        dec.append(base64.b64decode(x).decode("latin-1"))
            if dec:
                self._base("\n".join(dec), "base64", hits)
        if "joined" in forms:
            self._base(self.RX_JOIN.sub("", t), "joined", hits)


class _Found(Exception):
    pass


_SCANNER = None


def _scan_one(item):
    key, path, forms, first = item
    if first:
        return key, _SCANNER.scan(read(path), forms, first)
    hits, counts = _SCANNER.scan_counted(read(path), forms)
    return key, (hits[:3], counts)


def scan_all(ctx, items):
    """{key: hits} for [(key, path, forms, first)], scanned by as many processes as there are
    CPUs."""
    global _SCANNER
    _SCANNER = ctx.scanner
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 2) as pool:
        return dict(pool.imap_unordered(_scan_one, items, chunksize=1))


def scan_forms(e):
    """The scanner passes an entry's output needs, from what its statement asks for."""
    sql = e["sql"].lower()
    forms = set(e["scan"].split())
    if "reverse" in sql:
        forms.add("reversed")
    if "base64" in sql:
        forms.add("base64")
    return forms


# ---- the corpus -----------------------------------------------------------------------------

def parse_corpus(path):
    """Entries of a corpus file: id, group, sql, kind (query/copy/script/psql), statements, options."""
    entries, group, cur = [], None, None
    with open(path) as f:
        for line in f:
            s = line.rstrip("\n")
            m = re.match(r"^-- (group|id|scan|params|ways):\s*(\S.*?)\s*-*\s*$", s)
            if m and m.group(1) == "group":
                group = m.group(2)
                continue
            if m and m.group(1) == "id":
                cur = {"id": m.group(2), "group": group, "lines": [], "scan": "", "params": None,
                       "ways": None}
                entries.append(cur)
                continue
            if cur is None:
                continue
            if m and m.group(1) == "scan":
                cur["scan"] = m.group(2)
            elif m and m.group(1) == "params":
                cur["params"] = json.loads(m.group(2))
            elif m and m.group(1) == "ways":
                cur["ways"] = m.group(2).split()
            elif s.startswith("--"):
                continue
            else:
                cur["lines"].append(s)
    for e in entries:
        sql = "\n".join(e.pop("lines")).strip()
        e["sql"] = sql
        stmts = [x.strip() for x in re.split(r";[ \t]*\n", sql + "\n") if x.strip()]
        e["statements"] = stmts
        first = sql.split(None, 1)[0].lower()
        if any(l.startswith("\\") for l in sql.splitlines()):
            e["kind"] = "psql"
        elif len(stmts) == 1 and (first in ("select", "with", "values", "table") or first.startswith("(")):
            e["kind"] = "query"
        elif len(stmts) == 1 and first == "copy":
            e["kind"] = "copy"
        else:
            e["kind"] = "script"
        if e["kind"] in ("query", "copy"):
            e["sql"] = stmts[0]  # the extended protocol takes one statement, without the ';'
    ids = [e["id"] for e in entries]
    dup = [i for i in ids if ids.count(i) > 1]
    assert not dup, "duplicate corpus ids: %r" % dup
    return entries


def client_modes(e, i):
    """The psycopg / raw-protocol ways an entry runs through hoopd."""
    if e["params"] is not None:
        return ["params"]
    if e["kind"] == "query":  # every way, each format, each in half the statements or more
        ways = ["text", "binary"] + (["pipeline", "named-binary"] if i % 2 else ["prepared", "named"]) + \
            ["portal-text" if i % 3 else "portal-nodescribe", "portal-binary"]
        return [w for w in ways if e["ways"] is None or w in e["ways"]]
    if e["kind"] == "copy":
        ways = ["copy"]
    elif e["kind"] == "script":
        ways = ["text", "binary"]
    else:
        ways = []
    return [w for w in ways if e["ways"] is None or w in e["ways"]]


def direct_mode(e):
    if e["params"] is not None:
        return "params"
    if e["ways"] is not None and not set(e["ways"]) - {"psql"}:
        return None
    return {"query": "text", "copy": "copy", "script": "text"}.get(e["kind"])


# ---- running things -------------------------------------------------------------------------

def dsn(ctx):
    return "host=127.0.0.1 port=%d user=postgres dbname=clinical" % ctx.pg.port


def psql_argv(ctx):
    return ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-d", "clinical",
            "-X", "-A", "-v", "ON_ERROR_STOP=0"]


def direct(ctx, sql):
    return subprocess.run(psql_argv(ctx) + ["-t", "-c", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def run_psql(ctx, sql, agent, app="mask-test"):
    """psql with sql on stdin, as an agent (through hoopd) or directly: stdout+stderr bytes, rc."""
    env = dict(os.environ, PGAPPNAME=app)
    argv = psql_argv(ctx)
    if agent:
        r = ctx.cg.run(argv, input=sql.encode() + b"\n", text=False, env=env, timeout=120)
    else:
        r = subprocess.run(argv, input=sql.encode() + b"\n", capture_output=True, env=env, timeout=120)
    return r.stdout + b"\n--stderr--\n" + r.stderr, r.returncode


def run_clients(ctx, jobs, agent, tag):
    """clients.py over jobs; {key: result}, and the directory holding what each received."""
    out = os.path.join(ctx.tmp, tag)
    os.makedirs(out, exist_ok=True)
    jf = os.path.join(ctx.tmp, tag + ".json")
    with open(jf, "w") as f:
        json.dump(jobs, f)
    argv = [PY, os.path.join(MASKDIR, "clients.py"), jf, out, dsn(ctx)]
    env = dict(os.environ, PGAPPNAME="mask-" + tag)
    if agent:
        r = ctx.cg.run(argv, env=env, timeout=600)
    else:
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    check(r.returncode == 0, "clients.py (%s) failed: %s%s" % (tag, r.stdout, r.stderr[-3000:]))
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f), out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def psql_error(out):
    m = re.search(rb"ERROR:  (.*)", out)
    return m.group(1).decode(errors="replace") if m else None


# ---- setup ----------------------------------------------------------------------------------

def policy_text(ctx, extra_rules=""):
    with open(os.path.join(MASKDIR, "policy.yaml")) as f:
        text = f.read()
    return text.replace("@PORT@", str(ctx.pg.port)).replace("@DIR@", ctx.tmp) + extra_rules


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.tmp = tempfile.mkdtemp(prefix="hoop-mask-")
    os.chmod(ctx.tmp, 0o755)
    ctx.cleanup.push(shutil.rmtree, ctx.tmp, True)
    ctx.keep = os.environ.get("HOOP_MASKING_KEEP")
    # %a in every log line: the inference test finds its statements by application_name.
    ctx.pg = Postgres(ctx.cleanup, extra=("log_statement=all", "log_line_prefix='%m [%p] app=%a: '"))
    ctx.pglog = os.path.join(ctx.pg.dir, "log")
    ctx.pg.psql_direct("create database clinical")
    t0 = time.time()
    data, ctx.phi = gen_clinical.generate(SEED, 10000, 30000)
    gen_clinical.load(dsn(ctx), data)
    direct(ctx, "checkpoint")  # the table files on disk hold the rows (read_heap_file reads them)
    ctx.data = data
    with open(os.path.join(ctx.tmp, "phi.json"), "w") as f:
        json.dump(ctx.phi, f)
    log("  dataset: %d patients, %d encounters loaded in %.1fs" % (
        len(data["patients"]), len(data["encounters"]), time.time() - t0))
    ctx.scanner = Scanner(ctx.phi)
    with open(os.path.join(ctx.tmp, "catalog.password"), "w") as f:
        f.write("unused-with-trust\n")
    key = os.path.join(ctx.tmp, "mask.key")
    with open(key, "wb") as f:
        f.write(hashlib.sha256(b"hoop masking test key %d" % SEED).digest())
    os.chmod(key, 0o400)
    ctx.hd = Hoopd(ctx.cleanup, policy_text(ctx))
    ctx.hoopds = [ctx.hd]
    ctx.hd.start()
    ctx.cg = attach_agents(ctx, OWNER)
    ctx.corpus = parse_corpus(os.path.join(MASKDIR, "exfil.sql"))
    ctx.legit = parse_corpus(os.path.join(MASKDIR, "legit.sql"))
    return ctx


# ---- the dataset and the corpus, directly -----------------------------------------------------

def test_dataset_is_what_the_test_needs(ctx):
    check(direct(ctx, "select count(*) from patients") == "10000", "patients")
    check(direct(ctx, "select count(*) from encounters") == "30000", "encounters")
    n = sum(ctx.phi["notes_embedded"][k] for k in ("ssn", "mrn", "phone", "email"))
    check(0.27 < n / 30000 < 0.33, "notes embedding identifiers: %d" % n)
    check(direct(ctx, "select count(*) from patients where insurance_id ~ '^[0-9]{9}$'") == "10000",
          "insurance ids")
    shapes = direct(ctx, "select count(*) filter (where phone like '(%'), count(*) filter (where phone like '+1%'), "
                         "count(*) filter (where phone ~ '^[0-9]{3}-') from patients").split("|")
    check(all(int(x) > 2000 for x in shapes), "phone spellings not mixed: %r" % shapes)
    # The generator is seeded: the same seed gives the same values.
    check(gen_clinical.generate(SEED, 10000, 30000)[1]["ssn"] == ctx.phi["ssn"], "not deterministic")
    # The scanner finds what it must and nothing in clean text.
    s = ctx.scanner
    p = ctx.data["patients"][41]
    probe = ("x %s y %s %s %s" % (p[4], p[1].lower(), p[6].upper(), p[7])).encode()
    kinds = {h[0] for h in s.scan(probe)}
    check(kinds == {"ssn", "mrn", "email", "phone"}, "scanner missed: %r" % kinds)
    for form in (p[4].replace("-", ""), p[4][::-1], p[4].encode().hex(),
                 base64.b64encode(p[6].encode()).decode(), hashlib.md5(p[1].encode()).hexdigest(),
                 "+1" + re.sub(r"\D", "", p[7])[-10:]):
        check(s.scan(("[%s]" % form).encode(), forms={"reversed", "base64"}),
              "scanner missed the form %r" % form)
    clean = direct(ctx, "select string_agg(insurance_id || ' ' || zip || ' ' || city, ';') from patients")
    check(not s.scan(clean.encode()), "scanner false positive: %r" % s.scan(clean.encode())[:3])


def run_psql_all(ctx, entries, agent, tag, workers=2):
    """psql over every entry (side by side): {id: (output path, error or None)}."""
    out = os.path.join(ctx.tmp, tag)
    os.makedirs(out, exist_ok=True)

    def one(e):
        data, rc = run_psql(ctx, e["sql"], agent, "mask-" + e["id"])
        path = os.path.join(out, e["id"] + ".psql")
        with open(path, "wb") as f:
            f.write(data)
        return e["id"], (path, psql_error(data))
    with ThreadPoolExecutor(workers) as ex:
        return dict(ex.map(one, entries))


def test_corpus_returns_raw_phi_directly(ctx):
    corpus = ctx.corpus
    check(len(corpus) >= 60, "only %d exfiltration statements" % len(corpus))
    check(len(ctx.legit) >= 15, "only %d legitimate statements" % len(ctx.legit))
    t0 = time.time()
    jobs = [dict(e, modes=[direct_mode(e)]) for e in corpus if direct_mode(e)]
    with ThreadPoolExecutor(2) as ex:
        fc = ex.submit(run_clients, ctx, jobs, False, "direct")
        fp = ex.submit(run_psql_all, ctx, [e for e in corpus if e["params"] is None], False,
                       "direct-psql")
        res, out = fc.result()
        psql = fp.result()
    t1 = time.time()
    items = []
    ctx.direct_rows = {}
    for e in corpus:
        if e["id"] in psql:
            items.append(((e["id"], "psql"), psql[e["id"]][0], scan_forms(e), True))
        m = direct_mode(e)
        if m:
            r = res["%s.%s" % (e["id"], m)]
            ctx.direct_rows[e["id"]] = (r["status"], r.get("rows"))
            items.append(((e["id"], m), os.path.join(out, "%s.%s" % (e["id"], m)), scan_forms(e), True))
    hits = scan_all(ctx, items)
    missing = ["%s via %s: %r" % (k[0], k[1], read(p)[:300]) for k, p, f, _ in items if not hits[k]]
    log("  %d statements directly with psql and psycopg in %.1fs, %d outputs scanned in %.1fs" % (
        len(corpus), t1 - t0, len(items), time.time() - t1))
    check(not missing, "these return no raw PHI even directly, so they test nothing:\n" +
          "\n".join(missing))


# ---- the corpus through hoopd ---------------------------------------------------------------

def test_corpus_runs_through_hoopd(ctx):
    """Every entry with psql and every psycopg / raw-protocol way, as an agent, and the scan of
    everything received. The per-group tests that follow judge the results."""
    before = ctx.hd.status()["stats"]["connections_accepted"]
    t0 = time.time()
    jobs = [dict(e, modes=client_modes(e, i)) for i, e in enumerate(ctx.corpus) if client_modes(e, i)]
    # Two client processes (the ways split in halves) and psql, side by side.
    first = {"text", "binary", "prepared", "params", "copy"}
    jobs_a = [dict(j, modes=[m for m in j["modes"] if m in first]) for j in jobs]
    jobs_b = [dict(j, modes=[m for m in j["modes"] if m not in first]) for j in jobs]
    with ThreadPoolExecutor(3) as ex:
        fa = ex.submit(run_clients, ctx, [j for j in jobs_a if j["modes"]], True, "agent-a")
        fb = ex.submit(run_clients, ctx, [j for j in jobs_b if j["modes"]], True, "agent-b")
        fp = ex.submit(run_psql_all, ctx, [e for e in ctx.corpus if e["params"] is None and
                                           (e["ways"] is None or "psql" in e["ways"])], True,
                       "agent-psql", 1)
        ra, oa = fa.result()
        rb, ob = fb.result()
        psql = fp.result()
    t1 = time.time()
    ctx.via = {}  # (id, way) -> (result, path of what the client received)
    for res, out in ((ra, oa), (rb, ob)):
        for k, r in res.items():
            ctx.via[tuple(k.rsplit(".", 1))] = (r, os.path.join(out, k))
    for i, (path, err) in psql.items():
        ctx.via[(i, "psql")] = ({"status": "server_error" if err else "ok", "message": err}, path)
    forms = {e["id"]: scan_forms(e) for e in ctx.corpus}
    ctx.hits = scan_all(ctx, [(k, p, forms[k[0]], False) for k, (r, p) in ctx.via.items()])
    log("  corpus through hoopd: %d runs in %.1fs, scanned in %.1fs" % (
        len(ctx.via), t1 - t0, time.time() - t1))
    check(ctx.hd.status()["stats"]["connections_accepted"] > before + 2, "the agents bypassed hoopd")
    if ctx.keep:
        os.makedirs(ctx.keep, exist_ok=True)
        for (i, w), (r, p) in ctx.via.items():
            shutil.copy(p, os.path.join(ctx.keep, "%s.%s" % (i, w)))


def leaks_in_group(ctx, group):
    """Fails with one line per leaking entry (the ways that leaked, what and in which form, an
    example with its context) and per other problem (client-side errors, rows lost)."""
    check(getattr(ctx, "via", None), "the corpus did not run through hoopd")
    entries = [e for e in ctx.corpus if e["group"] == group]
    check(entries, "no entries in group " + group)
    leaks, other, refused = [], [], []
    for e in entries:
        ways = sorted(w for (i, w) in ctx.via if i == e["id"])
        direct_status, want = ctx.direct_rows.get(e["id"], (None, None))
        leaked, kinds, forms, example = [], collections.Counter(), collections.Counter(), None
        for way in ways:
            r, path = ctx.via[(e["id"], way)]
            hits, counts = ctx.hits[(e["id"], way)]
            if hits:
                leaked.append("%s(%d)" % (way, sum(counts.values())))
                for (kind, form), n in counts.items():
                    kinds[kind] += n
                    forms[form] += n
                example = example or (way, hits[0])
            if r["status"] == "server_error" and direct_status == "ok" and \
                    e["kind"] in ("query", "copy") and r.get("sqlstate") not in (None, "42501"):
                other.append("%s via %s: error %s through hoopd, none directly: %s" % (
                    e["id"], way, r.get("sqlstate"), (r.get("message") or "")[:200]))
            elif r["status"] == "server_error" and direct_status == "ok":
                refused.append("%s via %s: %s %s" % (e["id"], way, r.get("sqlstate") or "",
                                                     (r.get("message") or "")[:200]))
            elif r["status"] == "client_error" and direct_status != "client_error":
                other.append("%s via %s: client-side error (none directly): %s" % (
                    e["id"], way, (r.get("message") or "")[:300]))
            elif r["status"] == "ok" and way != "psql" and direct_status == "ok" and \
                    e["kind"] != "script" and want is not None:
                got = r.get("rows")
                if way == "pipeline" and got is not None:
                    got //= 2  # the statement ran twice: text and binary
                if got != want:
                    other.append("%s via %s: %s rows, directly %s" % (e["id"], way, got, want))
        if leaked:
            way, h = example
            leaks.append("LEAK %s via %s: %s in forms %s; e.g. via %s %s %r in %r" % (
                e["id"], " ".join(leaked), dict(kinds), dict(forms), way, h[0], h[1], h[3]))
    ctx.refusals = getattr(ctx, "refusals", []) + refused
    if refused:
        log("  refused through hoopd (no rows, no leak; listed for the record):\n    " +
            "\n    ".join(refused))
    check(not leaks and not other, "%d of %d statements leak, %d other problems:\n%s" % (
        len(leaks), len(entries), len(other), "\n".join(leaks + other)))


def test_no_phi_in_column_derivations(ctx):
    leaks_in_group(ctx, "columns")


def test_no_phi_through_subqueries_ctes_unions_joins(ctx):
    leaks_in_group(ctx, "subqueries")


def test_no_phi_through_views_and_functions(ctx):
    leaks_in_group(ctx, "views_and_functions")


def test_no_phi_in_whole_row_and_json_forms(ctx):
    leaks_in_group(ctx, "whole_row_and_json")


def test_no_phi_in_aggregates_windows_ordering(ctx):
    leaks_in_group(ctx, "aggregates_windows_ordering")


def test_no_phi_in_encodings_and_hashes(ctx):
    leaks_in_group(ctx, "encodings_and_hashes")


def test_no_phi_through_dynamic_sql(ctx):
    leaks_in_group(ctx, "dynamic_sql")


def test_no_phi_through_prepared_statements_and_cursors(ctx):
    leaks_in_group(ctx, "prepared_and_cursors")


def test_no_phi_through_copy(ctx):
    leaks_in_group(ctx, "copy")


def test_no_phi_in_free_text(ctx):
    leaks_in_group(ctx, "free_text")


def test_no_phi_in_free_text_no_rule_names(ctx):
    leaks_in_group(ctx, "free_text_undeclared")


def test_no_phi_in_transformed_free_text(ctx):
    leaks_in_group(ctx, "free_text_transformed")


def test_no_phi_in_errors_and_notices(ctx):
    leaks_in_group(ctx, "errors_and_notices")


def test_no_phi_through_side_channels(ctx):
    leaks_in_group(ctx, "side_channels")


def test_no_phi_laundered_through_other_tables(ctx):
    leaks_in_group(ctx, "laundering")


def test_execute_with_row_limit_was_exercised(ctx):
    # The portal ways must really have crossed Execute row limits (PortalSuspended) on the way.
    for i in ("plain", "star", "row_to_json", "notes"):
        for way in ("portal-text", "portal-nodescribe", "portal-binary"):
            if (i, way) not in ctx.via:
                continue
            r = ctx.via[(i, way)][0]
            if r["status"] == "ok":
                check(r.get("suspended", 0) >= r["rows"] // 113 > 0,
                      "%s via %s: %r" % (i, way, r))


RAW_NAMES_CODE = r"""
import socket, struct, sys
def msg(t, b): return t + struct.pack("!i", len(b) + 4) + b
def parse(name, q): return msg(b"P", name + b"\0" + q + b"\0" + struct.pack("!h", 0))
def bind(portal, name, fmt): return msg(b"B", portal + b"\0" + name + b"\0" + struct.pack("!hhhh", 0, 0, 1, fmt))
def execute(portal, n=0): return msg(b"E", portal + b"\0" + struct.pack("!i", n))
def close(kind, name): return msg(b"C", kind + name + b"\0")
SYNC = msg(b"S", b"")
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0clinical\0\0"
s.sendall(struct.pack("!i", len(body) + 4) + body)
got = b""
def until_ready():
    global got
    buf = b""
    while True:
        while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!i", buf[1:5])[0]:
            n = 1 + struct.unpack("!i", buf[1:5])[0]
            m, buf = buf[:n], buf[n:]
            got += m
            if m[:1] == b"Z":
                return
        d = s.recv(1 << 20)
        if not d:
            raise SystemExit("closed")
        buf += d
until_ready()
got = b""
CLEAN = b"select 'clean'::text as v, 'clean'::text as w from patients where id %% 10 = %d"
PHI = b"select upper(email) as v, reverse(ssn) as w from patients where id %% 10 = %d"
# 1. a named statement closed and parsed again under the same name with PHI, no Describe
s.sendall(parse(b"s1", CLEAN % 1) + bind(b"p1", b"s1", 0) + execute(b"p1") + SYNC)
until_ready()
s.sendall(close(b"S", b"s1") + close(b"P", b"p1") + parse(b"s1", PHI % 1) + bind(b"p1", b"s1", 0) + execute(b"p1") + SYNC)
until_ready()
# 2. the unnamed statement replaced by a later Parse in the same batch, no Describe
s.sendall(parse(b"", CLEAN % 2) + bind(b"", b"", 0) + execute(b"") + parse(b"", PHI % 2) + bind(b"", b"", 1) + execute(b"") + SYNC)
until_ready()
# 3. one statement, two portals in text and binary, executed alternately with row limits
s.sendall(parse(b"s3", PHI % 3) + bind(b"a", b"s3", 0) + bind(b"b", b"s3", 1) +
          b"".join(execute(b"a", 50) + execute(b"b", 50) for _ in range(25)) + SYNC)
until_ready()
# 4. a named portal bound inside a transaction, executed after other statements ran
s.sendall(msg(b"Q", b"begin\0"))
until_ready()
s.sendall(parse(b"s4", PHI % 4) + bind(b"p4", b"s4", 0) + execute(b"p4", 10) + SYNC)
until_ready()
s.sendall(msg(b"Q", b"select 'in between'\0"))
until_ready()
s.sendall(execute(b"p4", 0) + SYNC)
until_ready()
s.sendall(msg(b"Q", b"commit\0"))
until_ready()
# 5. result formats chosen per column: text, binary
s.sendall(parse(b"", PHI % 5) + msg(b"B", b"\0\0" + struct.pack("!hhhhh", 0, 0, 2, 0, 1)) + execute(b"") + SYNC)
until_ready()
# 6. FETCH from a cursor through a portal with a row limit
s.sendall(msg(b"Q", b"begin; declare leak_rc cursor for " + (PHI % 6) + b"\0"))
until_ready()
s.sendall(parse(b"", b"fetch 600 from leak_rc") + bind(b"", b"", 1) + execute(b"", 70) +
          b"".join(execute(b"", 70) for _ in range(9)) + SYNC)
until_ready()
s.sendall(msg(b"Q", b"commit\0"))
until_ready()
sys.stdout.buffer.write(got)
"""


def test_extended_protocol_names_reused(ctx):
    """Statement and portal names closed and reused, the unnamed statement replaced mid-batch,
    two portals of one statement interleaved, a portal resumed after other statements: each time
    without a Describe from the agent, so hoopd must know which plan the rows belong to."""
    r = ctx.cg.run([PY, "-c", RAW_NAMES_CODE, str(ctx.pg.port)], text=False, timeout=120)
    check(r.returncode == 0, "raw client: %r" % r.stderr[-2000:])
    d = subprocess.run([PY, "-c", RAW_NAMES_CODE, str(ctx.pg.port)], capture_output=True, timeout=120)
    check(ctx.scanner.scan(d.stdout, forms={"reversed"}), "directly the script returns no PHI")
    hits = ctx.scanner.scan(r.stdout, forms={"reversed"})
    check(not hits, "raw PHI through hoopd (%d values, e.g. %r in %r)" % (
        len(hits), hits[0][1] if hits else None, hits[0][3] if hits else None))
    errors = re.findall(rb"E\x00\x00..S[A-Z]+\x00V[A-Z]+\x00C(\w+)\x00M([^\x00]*)", r.stdout)
    if errors:
        log("  errors through hoopd (no leak): %r" % errors[:5])


# ---- legitimate queries ---------------------------------------------------------------------

def test_legitimate_queries_same_as_direct(ctx):
    jobs = [dict(e, modes=["text", "binary"]) for e in ctx.legit]
    rd, od = run_clients(ctx, jobs, agent=False, tag="legit-direct")
    rv, ov = run_clients(ctx, jobs, agent=True, tag="legit-agent")
    bad = []
    for e in ctx.legit:
        d, _ = run_psql(ctx, e["sql"], agent=False)
        v, _ = run_psql(ctx, e["sql"], agent=True)
        if d != v:
            bad.append("%s (psql): %r ... differs from direct %r" % (e["id"], v[:200], d[:200]))
        for m in ("text", "binary"):
            k = "%s.%s" % (e["id"], m)
            if rd[k]["status"] != "ok":
                bad.append("%s (%s) fails directly: %r" % (e["id"], m, rd[k]))
            elif read(os.path.join(od, k)) != read(os.path.join(ov, k)):
                a, b = read(os.path.join(od, k)), read(os.path.join(ov, k))
                n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
                bad.append("%s (psycopg %s): through hoopd %r, directly %r" % (
                    e["id"], m, b[max(0, n - 60):n + 80], a[max(0, n - 60):n + 80]))
    check(not bad, "%d legitimate results differ:\n%s" % (len(bad), "\n".join(bad)))


# ---- styles, types, determinism ---------------------------------------------------------------

STYLE_CODE = r"""
import json, sys, psycopg
def enc(v):
    if v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return str(v)
out = {}
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    q = ("select id, ssn, mrn, first_name, last_name, address, phone, dob, email, insurance_id, "
         "length(ssn) as ssn_len, extract(year from dob)::int as birth_year, dob + 1 as day_after, "
         "jsonb_build_object('s', ssn, 'e', email) as j, to_json(mrn) as rj, ssn::bytea as b, "
         "array[ssn, mrn] as arr from patients p where id <= 300 order by id")
    for fmt in ("text", "binary"):
        rows = c.cursor(binary=(fmt == "binary")).execute(q).fetchall()
        out[fmt] = [[[type(v).__name__, enc(v)] for v in r] for r in rows]
    out["portal"] = c.execute("select patient_id, email from portal_accounts order by id").fetchall()
    out["emails"] = c.execute("select id, email from patients order by id").fetchall()
    out["phones"] = c.execute("select id, phone from patients order by id").fetchall()
    out["grouped"] = sorted(r[1] for r in c.execute(
        "select email, count(*) from portal_accounts group by email").fetchall())
print(json.dumps(out))
"""


JSON_TYPES = ("dict", "list", "str", "int", "float", "bool")


def styles_run(ctx):
    r = ctx.cg.run([PY, "-c", STYLE_CODE, dsn(ctx)], timeout=120)
    check(r.returncode == 0, "psycopg through hoopd failed: %s" % r.stderr[-3000:])
    return json.loads(r.stdout)


def test_styles_follow_the_policy(ctx):
    v = styles_run(ctx)
    pats = {p[0]: p for p in ctx.data["patients"]}
    bad = collections.OrderedDict()  # problem -> [count, example]

    def problem(what, example):
        bad.setdefault(what, [0, example])[0] += 1
    for fmt in ("text", "binary"):
        rows = v[fmt]
        redacted = collections.defaultdict(set)
        same_dob = 0
        for row in rows:
            pid = row[0][1]
            p = pats[pid]
            ssn, mrn, first, last, addr, phone, dob, email, ins = [c[1] for c in row[1:10]]
            if ssn == p[4] or re.sub(r"\D", "", ssn or "") != p[4][-4:]:
                problem("%s: partial ssn (keep_last 4) shows other digits" % fmt, (pid, ssn, p[4]))
            if email == p[6] or not email:
                problem("%s: email not hashed" % fmt, (pid, email))
            if addr is not None:
                problem("%s: address (style null) is not NULL" % fmt, (pid, addr))
            for name, val, raw in (("mrn", mrn, p[1]), ("first_name", first, p[2]), ("last_name", last, p[3])):
                redacted[name].add(val)
                if val == raw:
                    problem("%s: %s not redacted" % (fmt, name), (pid, val))
            if phone == p[7] or phone is None or len(phone) != len(p[7]) or \
                    re.sub(r"\d", "9", phone) != re.sub(r"\d", "9", p[7]):
                problem("%s: format-preserving phone lost the shape or kept the value" % fmt, (pid, phone, p[7]))
            if row[7][0] != "date":
                problem("%s: masked dob is not a date" % fmt, (pid, row[7]))
            same_dob += row[7][1] == str(p[5])
            if ins != p[12]:
                problem("%s: insurance_id (not PHI) changed" % fmt, (pid, ins, p[12]))
            types = [c[0] for c in row]
            if types[10:13] != ["int", "int", "date"]:
                problem("%s: derived int/int/date columns have other types" % fmt, (pid, row[10:13]))
            # Masked JSON must still be JSON (psycopg parses it): redact gives a JSON string.
            if types[13] not in JSON_TYPES or types[14] not in JSON_TYPES or types[15:17] != ["bytes", "list"]:
                problem("%s: jsonb/json/bytea/array columns have other types" % fmt, (pid, row[13:17]))
        for name, vals in redacted.items():
            if len(vals) != 1:
                problem("%s: redacted %s is not one placeholder" % (fmt, name), sorted(map(str, vals))[:3])
        if same_dob > len(rows) // 100:
            problem("%s: masked dob equals the real one" % fmt, "%d of %d rows" % (same_dob, len(rows)))
        leaks = ctx.scanner.scan(json.dumps(rows).encode())
        if leaks:
            problem("%s: raw PHI in the rows" % fmt, leaks[:2])
    check(not bad, "\n".join("%s: %d rows, e.g. %r" % (k, n, ex) for k, (n, ex) in bad.items()))


def test_hash_and_format_preserving_are_deterministic(ctx):
    a, b = styles_run(ctx), styles_run(ctx)  # two sessions
    check(a["emails"] == b["emails"] and a["phones"] == b["phones"],
          "masked emails or phones differ between sessions")
    emails = dict((i, e) for i, e in a["emails"])
    raw = {p[0]: p[6] for p in ctx.data["patients"]}
    check(len(set(emails.values())) == len(set(raw.values())),
          "hashing merged distinct emails: %d hashes for %d emails" % (len(set(emails.values())), len(raw)))
    # The same email in another table hashes the same: joins on the masked key work.
    mism = [(pid, e, emails[pid]) for pid, e in a["portal"] if emails[pid] != e]
    check(a["portal"] and not mism, "portal_accounts.email hashes differently from patients.email: %r" % mism[:3])
    check(a["grouped"] == [1] * len(a["portal"]), "GROUP BY the hashed email: %r" % a["grouped"][:10])
    check(not ctx.scanner.scan(json.dumps(a).encode()), "raw PHI in masked results")


ORACLE_CODE = r"""
import json, sys, psycopg
guesses = json.loads(sys.argv[2])  # [[id, email, phone]]: an agent's right guesses
out = {}
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    ids = [g[0] for g in guesses]
    out["column"] = dict(c.execute("select id, email || '' from patients where id = any(%s)", [ids]).fetchall())
    out["column_bare"] = dict(c.execute("select id, email from patients where id = any(%s)", [ids]).fetchall())
    out["phone_bare"] = dict(c.execute("select id, phone from patients where id = any(%s)", [ids]).fetchall())
    case, union_e, union_p = {}, {}, {}
    for pid, email, phone in guesses:
        # The guess travels in a column that derives from the masked one.
        case[pid] = c.execute("select case when id < 0 then email else %s end from patients where id = %s",
                              [email, pid]).fetchone()[0]
        case[str(pid) + "+"] = c.execute("select case when id < 0 then email || '' else %s end from patients where id = %s",
                                         [email, pid]).fetchone()[0]
        union_e[pid] = c.execute("select email from patients where id = 0 union all select %s::text",
                                 [email]).fetchone()[0]
        union_p[pid] = c.execute("select phone from patients where id = 0 union all select %s::text",
                                 [phone]).fetchone()[0]
    out["case"], out["union_email"], out["union_phone"] = case, union_e, union_p
print(json.dumps(out))
"""


def test_keyed_styles_are_no_oracle_for_guesses(ctx):
    """hash and format_preserving are deterministic so joins work; an agent must still not be
    able to have a guess masked the same way and compare: a literal that travels in a column
    derived from a masked one (CASE, UNION with the column) must not come back as the masked
    form of the real value."""
    guesses = [[p[0], p[6], p[7]] for p in ctx.data["patients"][:20]]
    r = ctx.cg.run([PY, "-c", ORACLE_CODE, dsn(ctx), json.dumps(guesses)], timeout=120)
    check(r.returncode == 0, "psycopg through hoopd: %s" % r.stderr[-2000:])
    v = json.loads(r.stdout)
    bad = []
    # The bare columns mask each patient differently (that is what makes joins work); a
    # guess is confirmed when it comes back as its patient's own masked value. A placeholder
    # every value shares (redact) confirms nothing.
    check(len({v["column_bare"][str(g[0])] for g in guesses}) == len(guesses),
          "hashed emails are not distinct per patient: %r" % v["column_bare"])
    for pid, email, phone in guesses:
        real_h = {x for x in (v["column"][str(pid)], v["column_bare"][str(pid)])
                  if list(v["column_bare"].values()).count(x) == 1}
        for k, form in ((str(pid), "case ... then email else GUESS"),
                        (str(pid) + "+", "case ... then email || '' else GUESS")):
            if v["case"][k] in real_h:
                bad.append("%s: the guess %r comes back as %r, the masked form of patient %d's email"
                           % (form, email, v["case"][k], pid))
        if v["union_email"][str(pid)] in real_h:
            bad.append("email union all GUESS: the guess %r comes back as %r, the masked form of patient %d's email"
                       % (email, v["union_email"][str(pid)], pid))
        if v["union_phone"][str(pid)] == v["phone_bare"][str(pid)]:
            bad.append("phone union all GUESS: the guess %r comes back as %r, the masked form of patient %d's phone"
                       % (phone, v["union_phone"][str(pid)], pid))
    check(not bad, "%d confirmed guesses:\n%s" % (len(bad), "\n".join(bad[:12])))


def test_binary_copy_parses_back(ctx):
    code = r"""
import json, sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    out = {}
    with c.cursor().copy("copy (select id, ssn, dob, email, phone from patients where id <= 1000 order by id) to stdout (format binary)") as cp:
        cp.set_types(["int4", "text", "date", "text", "text"])
        out["binary"] = [[r[0], r[1], str(r[2]), r[3], r[4]] for r in cp.rows()]
    with c.cursor().copy("copy (select p.id, ssn, phone, notes from patients p join encounters e on e.patient_id = p.id where e.id <= 3000 order by e.id) to stdout (format csv, header)") as cp:
        out["csv"] = b"".join(bytes(b) for b in cp).decode()
    with c.cursor().copy("copy (select p.id, ssn, email, notes from patients p join encounters e on e.patient_id = p.id where e.id <= 3000 order by e.id) to stdout") as cp:
        out["text"] = b"".join(bytes(b) for b in cp).decode()
print(json.dumps(out))
"""
    r = ctx.cg.run([PY, "-c", code, dsn(ctx)], timeout=120)
    check(r.returncode == 0, "COPY through hoopd failed: %s" % r.stderr[-3000:])
    v = json.loads(r.stdout)
    pats = {p[0]: p for p in ctx.data["patients"]}
    check([x[0] for x in v["binary"]] == list(range(1, 1001)), "binary COPY ids")
    for pid, ssn, dob, email, phone in v["binary"]:
        check(ssn != pats[pid][4] and ssn.endswith(pats[pid][4][-4:]), "binary COPY ssn %r" % ssn)
        check(email != pats[pid][6] and phone != pats[pid][7] and len(phone) == len(pats[pid][7]),
              "binary COPY email or phone %r %r" % (email, phone))
        check(dob != str(pats[pid][5]) or pid % 97, "binary COPY dob %r" % dob)
    want = direct(ctx, "select count(*) from encounters where id <= 3000")
    rows = list(csv.reader(io.StringIO(v["csv"])))
    check(rows[0] == ["id", "ssn", "phone", "notes"] and len(rows) == int(want) + 1 and
          all(len(x) == 4 for x in rows), "CSV COPY is no longer well-formed CSV: %r" % rows[:3])
    lines = v["text"].split("\n")
    check(len(lines) == int(want) + 1 and all(len(l.split("\t")) == 4 for l in lines[:-1]),
          "text COPY is no longer one line of 4 fields per row")
    check(not ctx.scanner.scan(r.stdout.encode()), "raw PHI: %r" % ctx.scanner.scan(r.stdout.encode())[:3])


def test_results_inside_a_transaction_and_session_state(ctx):
    code = r"""
import json, sys, psycopg
c = psycopg.connect(sys.argv[1])
out = []
out.append(c.execute("select ssn, email from patients where id <= 50").fetchall())
c.execute("savepoint a")
out.append(c.execute("select mrn from patients where id <= 50").fetchall())
c.execute("rollback to savepoint a")
with c.cursor(name="tx_c") as cur:
    cur.itersize = 7
    cur.execute("select phone, ssn from patients where id <= 100")
    out.append(list(cur))
out.append(c.info.transaction_status.name)
c.commit()
out.append(c.info.transaction_status.name)
out.append(c.execute("select count(*) from patients").fetchone()[0])
print(json.dumps(out))
"""
    r = ctx.cg.run([PY, "-c", code, dsn(ctx)], timeout=120)
    check(r.returncode == 0, "through hoopd: %s" % r.stderr[-3000:])
    v = json.loads(r.stdout)
    check(len(v[0]) == 50 and len(v[1]) == 50 and len(v[2]) == 100, "rows lost: %r" % [len(x) for x in v[:3]])
    check(v[3] == "INTRANS" and v[4] == "IDLE" and v[5] == 10000, v[3:])
    check(not ctx.scanner.scan(r.stdout.encode()), "raw PHI: %r" % ctx.scanner.scan(r.stdout.encode())[:3])


# Values computed from masked columns, one per type: masked validly for the type (psycopg parses
# them into the same Python type as directly) in text and binary results, and in binary COPY.
# "may_withhold": types for which refusing the result (42501) instead is acceptable.
TYPE_CASES = [
    ("int2", "length(ssn)::int2", False), ("int4", "length(ssn)", False),
    ("int8", "length(ssn)::int8", False), ("numeric", "extract(year from dob)", False),
    ("float8", "length(email)::float8", False), ("bool", "ssn like '1%'", False),
    ("date", "dob + 1", False), ("timestamp", "dob::timestamp", False),
    ("timestamptz", "dob::timestamptz", False), ("time", "time '00:00' + length(ssn) * interval '1 minute'", False),
    ("interval", "age(dob)", False), ("json", "to_json(ssn)", False),
    ("jsonb", "jsonb_build_object('e', email)", False), ("bytea", "ssn::bytea", False),
    ("text[]", "array[ssn, mrn]", False), ("date[]", "array[dob]", False),
    ("int4[]", "array[length(ssn)]", False), ("uuid", "md5(ssn)::uuid", False),
    ("bpchar", "ssn::char(11)", False), ("varchar", "ssn::varchar", False), ("name", "ssn::name", False),
    ("inet", "('10.0.0.' || length(ssn))::inet", False),
    ("xml", "xmlelement(name s, ssn)", True), ("record", "(ssn, email)", True),
    ("regtype", "pg_typeof(ssn)", True), ("money", "length(ssn)::money", True),
    ("tsvector", "to_tsvector('simple', email)", True), ("point", "point(length(ssn), 1)", True),
    ("int4range", "int4range(length(ssn), 20)", True),
]

TYPES_CODE = r"""
import json, sys, psycopg
cases = json.loads(sys.argv[2])
out = {}
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    for label, expr, _ in cases:
        for fmt in ("text", "binary"):
            try:
                rows = c.cursor(binary=(fmt == "binary")).execute(
                    "select %s from patients where id <= 50 order by id" % expr).fetchall()
                out[label + "/" + fmt] = ["ok", sorted({type(r[0]).__name__ for r in rows}), repr(rows[:2])]
            except psycopg.Error as e:
                out[label + "/" + fmt] = ["error", getattr(e, "sqlstate", None), str(e)[:300]]
    try:
        with c.cursor().copy("copy (select length(ssn), dob + 1, upper(email), age(dob), ssn::bytea "
                             "from patients where id <= 50 order by id) to stdout (format binary)") as cp:
            cp.set_types(["int4", "date", "text", "interval", "bytea"])
            rows = list(cp.rows())
        out["copy-binary"] = ["ok", sorted({type(v).__name__ for r in rows for v in r}), repr(rows[:2])]
    except psycopg.Error as e:
        out["copy-binary"] = ["error", getattr(e, "sqlstate", None), str(e)[:300]]
print(json.dumps(out))
"""


def test_values_computed_from_masked_columns_stay_valid_for_their_type(ctx):
    args = [PY, "-c", TYPES_CODE, dsn(ctx), json.dumps(TYPE_CASES)]
    d = subprocess.run(args, capture_output=True, text=True, timeout=120)
    v = ctx.cg.run(args, timeout=120)
    check(d.returncode == 0 and v.returncode == 0, "psycopg: %s %s" % (d.stderr[-2000:], v.stderr[-2000:]))
    d, v = json.loads(d.stdout), json.loads(v.stdout)
    may = {label for label, _, m in TYPE_CASES if m}
    # Binary COPY says nothing of its columns' types, and these are computed (hoopd knows the
    # type of a column copied as it is, not of length(ssn)): masked fields there cannot be
    # written validly, so the policy's on_unmaskable (withhold) applies (docs/masking.md).
    may.add("copy-binary")
    bad, withheld = [], []
    for k in sorted(v):
        label = k.split("/")[0]
        if d[k][0] != "ok":
            bad.append("%s fails directly: %r" % (k, d[k]))
        elif v[k][0] == "error" and v[k][1] == "42501":
            (withheld if label in may else bad).append("%s withheld: %s" % (k, v[k][2]))
        elif v[k][0] == "error":
            bad.append("%s: error through hoopd: %r" % (k, v[k]))
        elif v[k][1] != d[k][1] and v[k][1] != ["NoneType"] and not (
                label.startswith("json") and set(v[k][1]) <= set(JSON_TYPES)):
            bad.append("%s: masked values load as %s, directly %s: %s" % (k, v[k][1], d[k][1], v[k][2]))
        elif ctx.scanner.scan(v[k][2].encode()):
            bad.append("%s: raw PHI: %s" % (k, v[k][2]))
    if withheld:
        log("  withheld (acceptable for these types):\n    " + "\n    ".join(withheld))
    check(not bad, "%d type problems:\n%s" % (len(bad), "\n".join(bad)))


# ---- the audit trail counts what was masked ---------------------------------------------------

def complete_records(ctx, app):
    ev = ctx.hd.events()
    sess = {e["session"] for e in ev if e["kind"] == "session_start" and e.get("application_name") == app}
    stmts = {(e["session"], e["stmt"]): e["text"] for e in ev if e["kind"] == "statement" and e["session"] in sess}
    return [(stmts.get((e["session"], e["stmt"])), e) for e in ev
            if e["kind"] == "complete" and e["session"] in sess]


def test_masked_counts_in_the_complete_record(ctx):
    hi = 3000
    sql = ("select id, ssn from patients where id <= 500;\n"
           "select ssn, email, mrn, city from patients where id <= 100;\n"
           "select id, notes from encounters where id <= %d;\n"
           "select count(*) from patients;\n" % hi)
    out, rc = run_psql(ctx, sql, agent=True, app="mask-counts")
    check(rc == 0, out[-500:])
    recs = complete_records(ctx, "mask-counts")
    check(len(recs) == 4, "complete records: %r" % recs)
    m = [e.get("masked") for _, e in recs]
    check(m[0] and m[0].get("columns") == {"patients.ssn": 500}, "ssn counts: %r" % m[0])
    check(m[1] and m[1].get("columns") == {"patients.ssn": 100, "patients.email": 100, "patients.mrn": 100},
          "counts of three columns: %r" % m[1])
    want = collections.Counter()
    names = {"ssn": "us_ssn", "mrn": "mrn", "phone": "phone", "email": "email", "card": "credit_card",
             "ipv4": "ipv4"}
    for eid, kind in ctx.phi["note_kind"].items():
        if int(eid) <= hi:
            want[names[kind]] += 1
    got = (m[2] or {}).get("detectors", {})
    got = {k: n for k, n in got.items() if n}
    check(got == dict(want), "detector counts for the notes: %r, embedded: %r" % (got, dict(want)))
    check(not m[3], "a count of non-PHI rows reports masked cells: %r" % m[3])


# ---- inference ------------------------------------------------------------------------------

def pg_ran(ctx, app):
    """Statements PostgreSQL logged for sessions with this application_name."""
    rx = re.compile(r"app=%s: LOG:  (?:statement|execute [^:]*): (.*)$" % re.escape(app))
    with open(ctx.pglog, errors="replace") as f:
        return [m.group(1) for m in map(rx.search, f) if m]


SHAPE_CODE = r"""
import json, os, sys, time, psycopg
dsn, mode, sync = sys.argv[1], sys.argv[2], sys.argv[3]
# ClientCursor sends simple Query messages; the default cursor Parse/Bind/Execute.
def connect():
    c = psycopg.connect(dsn, autocommit=True)
    return c.cursor() if mode == "extended" else psycopg.ClientCursor(c)
def one(cur, sql):
    cur.execute(sql)
    return cur.fetchone()[0]
out = {}
a, b = connect(), connect()
out["zip_before"] = [one(a, "select zip from patients where id = %d" % i) for i in range(11, 16)]
# computed (no origin column for the server to name) and spelt in letters (nothing for the
# detectors to find): the plan alone decides; asked at once, before any catalog refresh
a.execute("create temp view patients as select id, translate(ssn, '0123456789-', 'abcdefghijk') "
          "as zip from public.patients")
out["zip_after"] = one(a, "select zip from patients where id = 12")
out["city_before"] = [one(b, "select upper(city) from patients where id = %d" % i) for i in (21, 21)]
# hand over to the test (it changes the policy), and go on when it says so
open(sync + ".ready", "w").close()
for _ in range(600):
    if os.path.exists(sync + ".go"):
        break
    time.sleep(0.05)
out["city_after"] = one(b, "select upper(city) from patients where id = 22")
print(json.dumps(out))
"""


def test_statements_kept_by_shape_follow_policy_and_session(ctx):
    # hoopd keeps a statement's facts and masking plan by its shape (docs/postgres.md): the
    # same shape must still be masked anew after a policy reload that masks a column, and once
    # the session made a relation that shadows the one the kept plan was made for.
    zips = {i: direct(ctx, "select zip from patients where id = %d" % i) for i in range(11, 16)}
    city21 = direct(ctx, "select upper(city) from patients where id = 21")
    city22 = direct(ctx, "select upper(city) from patients where id = 22")
    ssn12 = direct(ctx, "select translate(ssn, '0123456789-', 'abcdefghijk') from patients where id = 12")
    bad = []
    for mode in ("simple", "extended"):
        hits0 = ctx.hd.status()["stats"]["statement_shape_hits"]
        sync = os.path.join(ctx.tmp, "shape-" + mode)
        p = ctx.cg.popen([PY, "-c", SHAPE_CODE, dsn(ctx), mode, sync], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: os.path.exists(sync + ".ready") or p.poll() is not None, 60,
                     "the client's first statements")
            hits = ctx.hd.status()["stats"]["statement_shape_hits"] - hits0
            if hits < 5:
                bad.append("%s: six statements of two shapes, %d judged from a kept shape" % (mode, hits))
            ctx.hd.write_policy(policy_text(ctx).replace(
                '    - {match: "patients.address",    style: "null"}\n',
                '    - {match: "patients.address",    style: "null"}\n'
                '    - {match: "patients.city",       style: redact}\n'))
            ctx.hd.ctl("reload")
            open(sync + ".go", "w").close()
            o, e = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
            ctx.hd.write_policy(policy_text(ctx))
            ctx.hd.ctl("reload")
        if p.returncode:
            bad.append("%s client failed: %s" % (mode, e[-2000:]))
            continue
        v = json.loads(o)
        if v["zip_before"] != [zips[i] for i in range(11, 16)] or v["city_before"] != [city21] * 2:
            bad.append("%s: clean columns changed: %r" % (mode, v))
        if v["city_after"] == city22:
            bad.append("%s: city returned raw after the reload that masks it: %r" % (mode, v["city_after"]))
        if v["zip_after"] == ssn12 or ctx.scanner.scan(o.encode()):
            bad.append("%s: a temp view shadowing patients returned an SSN: %r" % (mode, v["zip_after"]))
    check(not bad, "\n".join(bad))


def test_inference_probes_are_refused_and_not_run(ctx):
    with open(os.path.join(MASKDIR, "phi-probe-rule.yaml")) as f:
        ctx.hd.write_policy(policy_text(ctx, f.read()))
    ctx.hd.ctl("reload")
    try:
        probes = ["select id from patients where ssn like '123%'",
                  "select id from patients order by ssn",
                  "select id from patients where email = 'nobody@example.com'",
                  "select city, count(*) from patients group by ssn, city",
                  "select p.id from patients p join portal_accounts a on a.email = p.email",
                  "select id from patients where id in (select id from patients where mrn like 'MRN-1%')",
                  "with x as (select id, ssn from patients) select id from x where ssn like '1%'",
                  "select id from patient_contacts where contact like 'a%'",
                  "select id from patients where substr(ssn, 1, 3) = '123'",
                  "select count(*) from patients where dob < '1950-01-01'"]
        bad = []
        for n, sql in enumerate(probes):
            app = "mask-probe-%d" % n
            out, rc = run_psql(ctx, sql, agent=True, app=app)
            if b"ERROR:  " + PROBE_MSG.encode() not in out:
                bad.append("not refused: %s -> %r" % (sql, out[:200]))
            ran = [s for s in pg_ran(ctx, app) if "patients" in s or "patient_contacts" in s]
            if ran:
                bad.append("refused but ran: %s" % ran)
        # Over the extended protocol, with the probe in a parameter.
        code = ("import psycopg, sys\nc = psycopg.connect(sys.argv[1], autocommit=True)\n"
                "try:\n    c.execute('select id from patients where ssn like %s', ['123%'])\n    print('ran')\n"
                "except psycopg.errors.InsufficientPrivilege as e:\n    print('refused', e.sqlstate)\n"
                "print(c.execute('select count(*) from patients where id < %s', [10]).fetchone()[0])\n")
        r = ctx.cg.run([PY, "-c", code, dsn(ctx)], env=dict(os.environ, PGAPPNAME="mask-probe-ext"))
        if r.stdout.split() != ["refused", "42501", "9"]:
            bad.append("extended protocol probe: %r %r" % (r.stdout, r.stderr[-500:]))
        if [s for s in pg_ran(ctx, "mask-probe-ext") if "ssn like" in s]:
            bad.append("the extended-protocol probe ran")
        # What does not probe a masked column runs, masked where it returns one.
        out, rc = run_psql(ctx, "select id from patients where id < 10 order by id;\n"
                                "select ssn from patients where id < 10 order by id;", agent=True,
                           app="mask-probe-ok")
        lines = out.decode().split("--stderr--")[0].split("\n")
        if lines[1:10] != [str(i) for i in range(1, 10)] or b"ERROR" in out:
            bad.append("non-probing statement did not run: %r" % out[:300])
        if ctx.scanner.scan(out):
            bad.append("raw SSNs: %r" % ctx.scanner.scan(out)[:2])
        ev = [e for e in ctx.hd.events() if e["kind"] == "statement" and e.get("reason") == "phi-probe"]
        if len(ev) < len(probes):
            bad.append("only %d statement records name the phi-probe rule" % len(ev))
        check(not bad, "\n".join(bad))
    finally:
        ctx.hd.write_policy(policy_text(ctx))
        ctx.hd.ctl("reload")


def test_hoopd_stops_cleanly(ctx):
    if getattr(ctx, "refusals", None):
        log("  %d refused runs in the corpus (acceptable: no rows, no leak)" % len(ctx.refusals))
    check_clean_stop(ctx.hd, ctx.cg.path)


TESTS = [
    test_dataset_is_what_the_test_needs,
    test_corpus_returns_raw_phi_directly,
    test_corpus_runs_through_hoopd,
    test_no_phi_in_column_derivations,
    test_no_phi_through_subqueries_ctes_unions_joins,
    test_no_phi_through_views_and_functions,
    test_no_phi_in_whole_row_and_json_forms,
    test_no_phi_in_aggregates_windows_ordering,
    test_no_phi_in_encodings_and_hashes,
    test_no_phi_through_dynamic_sql,
    test_no_phi_through_prepared_statements_and_cursors,
    test_no_phi_through_copy,
    test_no_phi_in_free_text,
    test_no_phi_in_free_text_no_rule_names,
    test_no_phi_in_transformed_free_text,
    test_no_phi_in_errors_and_notices,
    test_no_phi_through_side_channels,
    test_no_phi_laundered_through_other_tables,
    test_execute_with_row_limit_was_exercised,
    test_extended_protocol_names_reused,
    test_legitimate_queries_same_as_direct,
    test_styles_follow_the_policy,
    test_hash_and_format_preserving_are_deterministic,
    test_keyed_styles_are_no_oracle_for_guesses,
    test_binary_copy_parses_back,
    test_values_computed_from_masked_columns_stay_valid_for_their_type,
    test_results_inside_a_transaction_and_session_state,
    test_masked_counts_in_the_complete_record,
    test_statements_kept_by_shape_follow_policy_and_session,
    test_inference_probes_are_refused_and_not_run,
    test_hoopd_stops_cleanly,
]


class _SuiteName:
    """hooptest.run_tests prints "e2e: N passed, M failed"; this suite's line is e2e-masking."""

    def __init__(self, f):
        self.f = f

    def write(self, s):
        if s.startswith("e2e: "):
            s = "e2e-masking: " + s[5:]
        return self.f.write(s)

    def __getattr__(self, name):
        return getattr(self.f, name)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root", file=sys.stderr)
        sys.exit(1)
    sys.stdout = _SuiteName(sys.stdout)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
