#!/usr/bin/python3
"""hoop's benchmark (`make bench`, as root; not part of `make test`): hoopd against a direct
connection, haproxy (tcp) and pgbouncer (session pooling) in front of one throwaway PostgreSQL 15,
and against a direct connection and haproxy in front of one throwaway MariaDB 10.11, in one run,
and bench/RESULTS.md from it.

What it measures, all in one process so every ratio compares numbers from the same run:
  - pgbench -S and TPC-B, -M simple and -M prepared, 1, 8 and 64 clients, through: direct,
    haproxy, pgbouncer, and hoopd with an allow-all policy, with policies/hipaa-agents.yaml, and
    with that policy plus `durability: fsync`, each hoopd with --accel off and --accel sockmap.
    Cases run in rounds; in each round every workload runs through every configuration back to
    back, in an order rotated by one each round, so that drift cancels out. TPS, p50 and p99
    latency (from pgbench's per-transaction log), every ratio against direct (the median of the
    per-round ratios), the proxy's CPU seconds per 100k statements (/proc/PID/stat). Every
    pgbench run must end with status 0 and 0 failed transactions, or the benchmark stops.
  - Connection setup rate: pgbench -C -S -c 8 through every configuration, in the same rounds.
  - The process split: hoopd allow/off with one engine worker (w1) and with none (w0, the single
    process before the split) beside the default (one per CPU): the hand-off's cost per new
    connection (-C) and per statement. hoopd's CPU time and RSS count its workers.
  - Worker scaling: pgbench -S -M simple -c 64 as AGENTS pgbench processes at once, each in an
    agent cgroup of its own (AGENTS = 4 where the machine has 4 CPUs, else 2; hoopd places one
    agent's sessions on one worker), direct and through hoopd allow/off with 1, 2 (and 4)
    workers, in the same rounds: total TPS and its ratio to direct.
  - hoopd's RSS per idle agent connection: 1,000 through hoopd to the real PostgreSQL, 1,000 and
    10,000 to a stub server (bench/pgstub.py; PostgreSQL would need 10,000 backends), each on a
    fresh hoopd, held by bench/idle_agents.py in the agent cgroup; and pgbench -S -c 1 through
    hoopd while the 10,000 are held.
  - perf: a call-graph profile of hoopd and a system-wide profile (by command) during
    pgbench -S -c 8 -M simple through hoopd with the HIPAA policy.
  - MariaDB (after the PostgreSQL cases): sysbench oltp_point_select and oltp_read_only
    (--db-ps-mode=auto: server-side prepared statements) at 8 and 1 threads over MARIA_TABLES
    tables of MARIA_ROWS rows, direct, through haproxy (tcp), and through hoopd (--accel off) with
    an allow-all mysql target and with policies/hipaa-agents.yaml turned into a mysql target, in
    rounds as above: TPS, QPS, p50/p99 per transaction (sysbench's histogram), every ratio against
    direct and hoopd's against haproxy, the proxy's CPU per 100k statements. A run through hoopd
    counts only when sysbench ends clean (exit 0, no FATAL, no reconnect; "ignored errors" are
    shown, not counted) and hoopd's trail holds a `statement` record, verdict allow, for each of
    sysbench's queries and no `error` record; otherwise its row says FAILED and the benchmark
    exits 1 after writing the report.

Environment: BENCH_SECONDS (per pgbench run, default 3), BENCH_ROUNDS (default 3), BENCH_SCALE
(pgbench scale, default 10), BENCH_ONLY (comma-separated configuration names) and
BENCH_WORKLOADS (comma-separated workload names as in the table), for quick looks (RESULTS.md is
then not written), BENCH_NO_PERF=1, BENCH_NO_IDLE=1, BENCH_NO_SCALING=1, BENCH_NO_MARIADB=1;
BENCH_ONLY_MARIADB=1 runs the MariaDB cases alone (RESULTS.md is then not written).
Everything started is stopped and removed on exit, also on failure or Ctrl-C.
"""
import datetime
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import hooptest  # noqa: E402
from hooptest import Cleanup, Hoopd, Postgres, ROOT, PGBIN, free_port, wait_for  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MASK_MB = int(os.environ.get("BENCH_MASK_MB", "64"))
SCALE = int(os.environ.get("BENCH_SCALE", "10"))
ONLY = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x]
PGBENCH = os.path.join(PGBIN, "pgbench")
RESULTS = os.path.join(HERE, "RESULTS.md")
NOTES_MARK = "## Analysis"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Statements per pgbench transaction: -S is one SELECT; TPC-B is BEGIN, 3 UPDATEs, a SELECT,
# an INSERT and END.
STMTS = {"S": 1, "tpcb": 7}
# Copies of build/hoopd and build/hoopctl taken at start (see copy_binaries).
BIN = {"hoopd": hooptest.HOOPD, "hoopctl": hooptest.HOOPCTL}


def log(msg):
    print(msg, flush=True)


class Cgroup(hooptest.Cgroup):
    """An agent cgroup under hoop-bench-PID/ (hooptest's, under another name)."""

    def __init__(self, cleanup, name):
        self.path = os.path.join(hooptest.cgroup2_mount(), "hoop-bench-%d" % os.getpid(), name)
        os.makedirs(self.path, exist_ok=True)
        cleanup.push(self.remove)


class BenchHoopd(Hoopd):
    """hooptest's Hoopd with bench pins, info logging (the default, as in production) and
    --accel; attached to a cgroup of its own."""

    def __init__(self, cleanup, policy_text, tag, accel, workers=None):
        super().__init__(cleanup, policy_text, tag)
        self.workers = workers
        self.pin_root = "/sys/fs/bpf/hoop-bench-%d-%s" % (os.getpid(), tag)
        self.accel = accel
        self.tag = tag
        self.cg = None

    def start(self):
        args = [BIN["hoopd"], "--policy", self.policy, "--state-dir", self.state, "--control",
                self.control, "--pin-root", self.pin_root, "--listen-port", str(self.listen_port),
                "--accel", self.accel, "--log-level", "info"]
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        with open(self.logf, "a") as logf:
            self.proc = subprocess.Popen(args, stdout=logf, stderr=logf, start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or self.ctl_ok("ping"), 10, "hoopd to answer")
        if self.proc.poll() is not None:
            raise RuntimeError("hoopd %s exited %d:\n%s" % (self.tag, self.proc.returncode,
                                                             self.log_text()))

    def attach(self, cleanup):
        self.cg = Cgroup(cleanup, self.tag)
        cleanup.push(lambda: self.proc and self.ctl("detach", "--cgroup", self.cg.path, check=False))
        self.ctl("attach", "--cgroup", self.cg.path, "--owner", "bench@example.org")


def policy_text(kind, port):
    """allow: targets and nothing else (default allow, audit flush); hipaa: the shipped policy
    with our port and plaintext to PostgreSQL; fsync: hipaa with `durability: fsync`."""
    if kind == "allow":
        return ("version: 1\ntargets:\n  - name: bench-pg\n    protocol: postgres\n"
                "    ports: [%d]\n    upstream_tls: disable\ndefault: allow\n" % port)
    with open(os.path.join(ROOT, "policies", "hipaa-agents.yaml")) as f:
        text = f.read()
    for old, new in (("ports: [5432]", "ports: [%d]" % port),
                     ("upstream_tls: verify-full", "upstream_tls: disable")):
        if old not in text:
            raise RuntimeError("policies/hipaa-agents.yaml no longer has %r" % old)
        text = text.replace(old, new)
    if kind == "fsync":
        if "durability: flush" not in text:
            raise RuntimeError("policies/hipaa-agents.yaml no longer has 'durability: flush'")
        text = text.replace("durability: flush", "durability: fsync")
    return text


class Config:
    """One way for pgbench to reach PostgreSQL."""

    def __init__(self, name, port, proc_pid=None, cgroup=None, hoopd=None):
        self.name, self.port, self.cgroup, self.hoopd = name, port, cgroup, hoopd
        self.pid = proc_pid  # whose CPU time is the proxy's


class Usage:
    """CPU time of the machine and of everything the benchmark started (the hoop-bench-PID
    cgroup and its children), to tell how much of the machine other work took during a run."""

    def __init__(self, cg_root):
        self.stat = os.path.join(cg_root, "cpu.stat")

    def sample(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        with open(self.stat) as f:
            ours = int(f.readline().split()[1])  # usage_usec
        busy = (v[0] + v[1] + v[2]) * 1e6 / CLK_TCK  # user, nice, system
        steal = v[7] * 1e6 / CLK_TCK if len(v) > 7 else 0.0
        return time.time(), busy, ours, steal

    @staticmethod
    def foreign_pct(a, b):
        """Share of the machine's CPU capacity used by others between samples a and b, and
        the share stolen by the hypervisor."""
        cap = (b[0] - a[0]) * 1e6 * os.cpu_count()
        if cap <= 0:
            return 0.0, 0.0
        return max(0.0, (b[1] - a[1]) - (b[2] - a[2])) * 100 / cap, (b[3] - a[3]) * 100 / cap


USAGE = None


def enter_bench_cgroup(cleanup):
    """Move this process (and so everything it starts) into hoop-bench-PID/main; the agent
    cgroups are its siblings. Moved back and removed at the end."""
    global USAGE
    mnt = hooptest.cgroup2_mount()
    with open("/proc/self/cgroup") as f:
        orig = [l.strip()[3:] for l in f if l.startswith("0::")][0]
    root = os.path.join(mnt, "hoop-bench-%d" % os.getpid())
    main = os.path.join(root, "main")
    os.makedirs(main, exist_ok=True)

    def leave():
        with open(os.path.join(mnt, orig.lstrip("/"), "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        with open(os.path.join(main, "cgroup.procs")) as f:
            for pid in f.read().split():
                if int(pid) == os.getpid():
                    continue
                try:
                    os.kill(int(pid), signal.SIGKILL)  # a straggler of ours
                except OSError:
                    pass
        wait_for(lambda: not open(os.path.join(main, "cgroup.procs")).read().strip(), 5,
                 "the bench cgroup to empty")
        os.rmdir(main)
        try:
            os.rmdir(root)
        except OSError:
            pass
    cleanup.push(leave)
    with open(os.path.join(main, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    USAGE = Usage(root)


def copy_binaries(work):
    """Other work on this tree may rebuild build/ while the benchmark runs: every hoopd of the
    run, and perf's symbols, come from copies taken now."""
    import hashlib
    for name in ("hoopd", "hoopctl"):
        dst = os.path.join(work, name)
        shutil.copy2(BIN[name], dst)
        BIN[name] = dst
    hooptest.HOOPCTL = BIN["hoopctl"]
    with open(BIN["hoopd"], "rb") as f:
        BIN["sha256"] = hashlib.sha256(f.read()).hexdigest()


def cpu_ticks(pid):
    """CPU time of pid and of its live children (hoopd's engine workers and catalog loaders)."""
    if not pid:
        return 0
    total = 0
    for p in [pid] + hooptest.children(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total


def nofile_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise RuntimeError("no open-file limit for %d" % pid)


def audit_bytes(state):
    """Bytes of audit records hoopd wrote: closed segments count whole (segment_bytes, 64 MiB
    by default, is where they roll over), plus the open one (the highest-numbered; lower plain
    ones are closed and wait for hoopd's compressor). And how many closed."""
    d = os.path.join(state, "audit")
    segs = {}
    for f in os.listdir(d):
        m = re.fullmatch(r"seg-(\d{8})\.jsonl(\.gz)?", f)
        if m:
            segs.setdefault(int(m.group(1)), set()).add(f)
    last = max(segs) if segs else 0
    closed = [n for n in segs if n != last or any(f.endswith(".gz") for f in segs[n])]
    open_b = 0
    if last and last not in closed:
        try:
            open_b = os.path.getsize(os.path.join(d, "seg-%08d.jsonl" % last))
        except OSError:
            pass
    return len(closed) * (64 << 20) + open_b, len(closed)


def rss_kib(pid):
    """RSS of pid and of its live children (hoopd's engine workers hold the sessions)."""
    total = int(hooptest.proc_status(pid)["VmRSS"].split()[0])
    for p in hooptest.children(pid):
        try:
            total += int(hooptest.proc_status(p).get("VmRSS", "0 kB").split()[0])
        except OSError:
            continue
    return total


def pctl(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


class Workload:
    def __init__(self, script, mode, clients, connect=False):
        self.script, self.mode, self.clients, self.connect = script, mode, clients, connect

    @property
    def key(self):
        return "%s%s %s c%d" % ("-C " if self.connect else "", "-S" if self.script == "S" else "TPC-B",
                                self.mode, self.clients)


def pgbench(work, cfg, w, seconds):
    """One pgbench run; a dict of its numbers. Raises unless it ran clean."""
    logdir = tempfile.mkdtemp(prefix="pgb-", dir=work)
    argv = [PGBENCH, "-n", "-T", str(seconds), "-c", str(w.clients), "-j", str(min(w.clients, 2)),
            "-M", w.mode, "-h", "127.0.0.1", "-p", str(cfg.port), "-U", "postgres"]
    if w.script == "S":
        argv.append("-S")
    if w.connect:
        argv.append("-C")
    else:
        argv += ["-l", "--log-prefix", os.path.join(logdir, "tx")]
    argv.append("bench")
    env = dict(os.environ, PGSSLMODE="disable")
    if cfg.cgroup:
        argv = cfg.cgroup.cmd(argv)
    c0 = cpu_ticks(cfg.pid)
    u0 = USAGE.sample()
    t0 = time.time()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 120)
    wall = time.time() - t0
    u1 = USAGE.sample()
    c1 = cpu_ticks(cfg.pid)
    foreign, steal = Usage.foreign_pct(u0, u1)
    out = r.stdout + r.stderr
    m_tps = re.search(r"^tps = ([0-9.]+) \((?:without initial connection time|including reconnection times)\)", out, re.M)
    m_n = re.search(r"^number of transactions actually processed: (\d+)", out, re.M)
    m_f = re.search(r"^number of failed transactions: (\d+)", out, re.M)
    if r.returncode != 0 or not m_tps or not m_n or not m_f or int(m_f.group(1)) != 0:
        raise RuntimeError("pgbench %s through %s failed (exit %d):\n%s" % (
            w.key, cfg.name, r.returncode, out[-3000:]))
    res = {"tps": float(m_tps.group(1)), "xacts": int(m_n.group(1)), "wall": wall,
           "cpu_s": (c1 - c0) / CLK_TCK if cfg.pid else None, "foreign": foreign, "steal": steal}
    if not w.connect:
        lat = []
        for fn in os.listdir(logdir):
            with open(os.path.join(logdir, fn)) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 3 and p[2].isdigit():
                        lat.append(int(p[2]))
        lat.sort()
        if len(lat) < res["xacts"] * 0.99:
            raise RuntimeError("pgbench %s through %s: %d latencies logged for %d transactions" % (
                w.key, cfg.name, len(lat), res["xacts"]))
        res["p50"] = pctl(lat, 0.50) / 1000.0  # ms
        res["p99"] = pctl(lat, 0.99) / 1000.0
    shutil.rmtree(logdir, ignore_errors=True)
    if res["cpu_s"] is not None:
        res["cpu_per_100k"] = res["cpu_s"] / max(1, res["xacts"] * STMTS[w.script]) * 1e5
    return res


def start_haproxy(cleanup, work, dbport, name="pg"):
    """haproxy in tcp mode on a free port in front of 127.0.0.1:dbport; name tells its files
    apart (one for PostgreSQL, one for MariaDB)."""
    port = free_port()
    cfgf = os.path.join(work, "haproxy-%s.cfg" % name)
    with open(cfgf, "w") as f:
        # haproxy wants two descriptors per connection under its limit.
        maxconn = min(20000, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100) // 2)
        f.write("global\n    maxconn %d\n"
                "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n"
                "    timeout server 1h\n"
                "frontend db\n    bind 127.0.0.1:%d\n    default_backend db\n"
                "backend db\n    server db 127.0.0.1:%d\n" % (maxconn, port, dbport))
    logf = os.path.join(work, "haproxy-%s.log" % name)
    with open(logf, "w") as lf:
        proc = subprocess.Popen(["haproxy", "-db", "-f", cfgf], stdout=lf, stderr=lf,
                                start_new_session=True)
    cleanup.push(stop_proc, proc)
    wait_port(port, proc, "haproxy", logf)
    return port, proc


def start_pgbouncer(cleanup, work, pgport):
    port = free_port()
    d = os.path.join(work, "pgbouncer")
    os.makedirs(d)
    with open(os.path.join(d, "users.txt"), "w") as f:
        f.write('"postgres" ""\n')
    cfgf = os.path.join(d, "pgbouncer.ini")
    with open(cfgf, "w") as f:
        f.write("[databases]\nbench = host=127.0.0.1 port=%d dbname=bench\n"
                "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
                "auth_type = trust\nauth_file = %s/users.txt\npool_mode = session\n"
                "max_client_conn = 2000\ndefault_pool_size = 100\n"
                "ignore_startup_parameters = extra_float_digits\n"
                "logfile = %s/pgbouncer.log\n" % (pgport, port, d, d))
    shutil.chown(d, "postgres", "postgres")
    for fn in os.listdir(d):
        shutil.chown(os.path.join(d, fn), "postgres", "postgres")
    # pgbouncer refuses to run as root.
    with open(os.path.join(work, "pgbouncer.stderr"), "a") as lf:
        proc = subprocess.Popen(["pgbouncer", cfgf], user="postgres", group="postgres",
                                extra_groups=[], stdout=lf, stderr=lf, start_new_session=True)
    cleanup.push(stop_proc, proc)
    wait_port(port, proc, "pgbouncer", os.path.join(d, "pgbouncer.log"))
    return port, proc


def wait_port(port, proc, what, logf):
    import socket

    def up():
        if proc.poll() is not None:
            try:
                with open(logf, errors="replace") as f:
                    text = f.read()[-2000:]
            except OSError:
                text = ""
            raise RuntimeError("%s exited %d:\n%s" % (what, proc.returncode, text))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(up, 10, what + " to listen")


def stop_proc(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sh_out(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception as e:  # a fact we could not get is reported as such
        return "? (%s)" % e


def machine_facts():
    model, mhz = "?", "?"
    with open("/proc/cpuinfo") as f:
        info = f.read()
    m = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    if m:
        model = m.group(1)
    m = re.search(r"^cpu MHz\s*:\s*(.*)$", info, re.M)
    if m:
        mhz = m.group(1)
    ncpu = len(re.findall(r"^processor\s*:", info, re.M))
    virt = "yes (cpuinfo flag hypervisor)" if re.search(r"^flags\s*:.*\bhypervisor\b", info, re.M) else "no"
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    with open("/etc/debian_version") as f:
        deb = f.read().strip()
    git = sh_out(["git", "-C", ROOT, "describe", "--always", "--dirty", "--abbrev=12"])
    return [
        ("CPU", "%s, %d logical CPUs, %s MHz, virtual machine: %s" % (model, ncpu, mhz, virt)),
        ("memory", "%d MiB" % mem),
        ("kernel", os.uname().release),
        ("OS", "Debian %s" % deb),
        ("PostgreSQL", sh_out([os.path.join(PGBIN, "postgres"), "--version"])),
        ("pgbench", sh_out([PGBENCH, "--version"])),
        ("haproxy", sh_out(["haproxy", "-v"])),
        ("pgbouncer", sh_out(["pgbouncer", "--version"])),
        ("hoopd", "%s, tree %s (uncommitted changes of the working tree included), binary sha256 %s"
         % (sh_out([BIN["hoopd"], "--version"]), git, BIN["sha256"][:16])),
        ("perf", sh_out(["perf", "--version"])),
        ("MariaDB", sh_out(["/usr/sbin/mariadbd", "--version"])),
        ("sysbench", sh_out(["sysbench", "--version"])),
    ]


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


# ---- idle connections --------------------------------------------------------------------------

def idle_case(cleanup, work, pg, stub_port, target_port, n, tag, with_pgbench=False):
    """A fresh hoopd (HIPAA policy, accel off), one warm-up connection, then n idle agent
    connections to target_port through it. Returns the numbers."""
    text = policy_text("hipaa", pg.port).replace("ports: [%d]" % pg.port,
                                                  "ports: [%d, %d]" % (pg.port, stub_port))
    # one agent cgroup holds them all: above the per-cgroup cap's default (256), which is a
    # limit, not what is measured here
    if "\nlimits:" in text:
        raise RuntimeError("policies/hipaa-agents.yaml has a limits section now: merge it here")
    text += "\nlimits:\n  connections_per_cgroup: 20000\n"
    hd = BenchHoopd(cleanup, text, tag, "off")
    hd.start()
    hd.attach(cleanup)
    idle = os.path.join(HERE, "idle_agents.py")
    # Warm-up: the first connection's one-time allocations (engine, TLS context, parser) are not
    # per-connection costs.
    r = hd.cg.run(["/usr/bin/python3", idle, "127.0.0.1", str(target_port), "1", "postgres", "bench"],
                  input="", timeout=60)
    if r.returncode:
        raise RuntimeError("warm-up connection failed: %s%s" % (r.stdout, r.stderr))
    time.sleep(0.5)
    before = rss_kib(hd.proc.pid)
    # Two descriptors per connection: what hoopd's open-file limit allows (the hard limit
    # where raising it is not permitted), with room for what it has open already.
    limit = nofile_limit(hd.proc.pid)
    fit = (limit - len(os.listdir("/proc/%d/fd" % hd.proc.pid)) - 32) // 2 // 100 * 100
    requested = n
    if fit < n:
        log("  hoopd's open-file limit is %d: %d connections at most; trying %d" % (limit, fit, fit))
        n = fit
    p = hd.cg.popen(["/usr/bin/python3", idle, "127.0.0.1", str(target_port), str(n), "postgres", "bench"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    cleanup.push(stop_proc, p)
    line = p.stdout.readline().strip()
    if not line.startswith("ready %d " % n):
        p.kill()
        raise RuntimeError("%d idle connections through hoopd: %s\n%s" % (n, line, hd.log_text()[-2000:]))
    setup_s = float(line.split()[2])
    time.sleep(1.0)
    held = rss_kib(hd.proc.pid)
    res = {"n": n, "requested": requested, "nofile": limit, "before_kib": before,
           "held_kib": held, "setup_s": setup_s, "per_conn_kib": (held - before) / n}
    if with_pgbench:
        cfg = Config("hoopd hipaa/off with %d idle" % n, pg.port, hd.proc.pid, hd.cg, hd)
        res["pgbench"] = pgbench(work, cfg, Workload("S", "simple", 1), SECONDS)
    p.stdin.close()
    p.wait(timeout=60)
    time.sleep(1.0)
    res["after_close_kib"] = rss_kib(hd.proc.pid)
    hd.ctl("detach", "--cgroup", hd.cg.path, check=False)
    hd.stop()
    return res


# ---- perf --------------------------------------------------------------------------------------

PERF_SECONDS = 6
# Frames every hoopd sample passes through: they say nothing about where the time goes.
PERF_GENERIC = {"_start", "main", "loop_run", "__libc_start_main_impl", "__libc_start_call_main",
                "pump", "on_agent", "on_server", "0xffffffffffffffff", "entry_SYSCALL_64_after_hwframe",
                "do_syscall_64"}


def perf_profiles(work, cfg):
    """perf through cfg (a hoopd) during pgbench: hoopd's call graph and the whole machine by
    command during -S -M simple -c 8, and hoopd's call graph during -C -S -c 8. Returns report
    texts and the TPS pgbench reached under perf."""
    out = {}
    # hoopd is a broker and its engine workers (hoopd --worker I, its children): every one of
    # them, or the profile shows only the broker's accept and audit work
    kids = subprocess.run(["pgrep", "-P", str(cfg.pid)], capture_output=True, text=True).stdout.split()
    pids = ",".join([str(cfg.pid)] + kids)
    runs = (("s", ["-S"], ["-p", pids, "--call-graph", "dwarf,16384", "-F", "999"]),
            ("system", ["-S"], ["-a", "-F", "999"]),
            ("c", ["-S", "-C"], ["-p", pids, "--call-graph", "dwarf,16384", "-F", "999"]))
    for kind, flags, rec in runs:
        data = os.path.join(work, "perf-%s.data" % kind)
        mode = os.environ.get("BENCH_PERF_MODE", "simple")  # a closer look at -M prepared
        bench = subprocess.Popen(cfg.cgroup.cmd([PGBENCH, "-n", "-M", mode, "-c", "8", "-j", "2",
                                                 "-T", str(PERF_SECONDS + 3), "-h", "127.0.0.1", "-p",
                                                 str(cfg.port), "-U", "postgres"] + flags + ["bench"]),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=dict(os.environ, PGSSLMODE="disable"))
        time.sleep(1.5)
        subprocess.run(["perf", "record", "-q", "-o", data] + rec + ["--", "sleep", str(PERF_SECONDS)],
                       check=True, capture_output=True)
        o = bench.communicate(timeout=120)[0]
        m = re.search(r"^tps = ([0-9.]+)", o, re.M)
        if bench.returncode or not m:
            raise RuntimeError("pgbench under perf failed:\n" + o)
        out[kind + "_tps"] = float(m.group(1))
        if os.environ.get("BENCH_KEEP_PERF"):
            # for a closer look with perf report: BENCH_KEEP_PERF=DIR keeps the data files
            os.makedirs(os.environ["BENCH_KEEP_PERF"], exist_ok=True)
            shutil.copy(data, os.environ["BENCH_KEEP_PERF"])
        if kind == "system":
            out["comm"] = perf_report(data, ["--sort", "comm"], 0.5)
            out["comm_dso"] = perf_report(data, ["--sort", "comm,dso"], 1.5)
        else:
            out[kind + "_dso"] = perf_report(data, ["--sort", "dso"], 0.5)
            out[kind + "_self"] = perf_report(data, ["--sort", "symbol,dso"], 1)
            out[kind + "_children"] = perf_report(data, ["--children", "--sort", "symbol"], 3,
                                                  lines=35)
    return out


def perf_report(data, args, limit, lines=40):
    if "--children" not in args:
        args = ["--no-children"] + args
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-header", "-g", "none",
                        "--percent-limit", str(limit)] + args,
                       capture_output=True, text=True, timeout=900)
    keep = []
    for l in r.stdout.splitlines():
        if not l.strip() or l.startswith("#"):
            continue
        m = re.search(r"\[[.k]\] (\S+)", l)
        if "--children" in args and m and m.group(1) in PERF_GENERIC:
            continue
        keep.append(l.rstrip())
    return "\n".join(keep[:lines])


# ---- the report --------------------------------------------------------------------------------

# ---- worker scaling ----------------------------------------------------------------------------

SCALING_CLIENTS = 64


def scaling_pgbench(work, port, cgroups, pids, seconds):
    """pgbench -S -M simple with SCALING_CLIENTS clients split over one pgbench per cgroup (None:
    direct, outside any), all at once: their total TPS and the proxy's CPU seconds."""
    env = dict(os.environ, PGSSLMODE="disable")
    per = SCALING_CLIENTS // len(cgroups)
    c0 = sum(cpu_ticks(p) for p in pids)
    procs = []
    for cg in cgroups:
        argv = [PGBENCH, "-n", "-S", "-M", "simple", "-T", str(seconds), "-c", str(per), "-j", "1",
                "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "bench"]
        procs.append(subprocess.Popen(cg.cmd(argv) if cg else argv, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=env))
    tps = 0.0
    for p in procs:
        out = p.communicate(timeout=seconds + 120)[0]
        m_tps = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", out, re.M)
        m_f = re.search(r"^number of failed transactions: (\d+)", out, re.M)
        if p.returncode != 0 or not m_tps or not m_f or int(m_f.group(1)) != 0:
            raise RuntimeError("scaling pgbench failed (exit %d):\n%s" % (p.returncode, out[-3000:]))
        tps += float(m_tps.group(1))
    return {"tps": tps, "cpu_s": (sum(cpu_ticks(p) for p in pids) - c0) / CLK_TCK}


def scaling_case(cleanup, work, pg):
    """Direct and hoopd allow/off with 1, 2 (and 4) workers, AGENTS agents at once."""
    ncpu = len(os.sched_getaffinity(0))
    counts = [1, 2, 4] if ncpu >= 4 else [1, 2]
    agents = max(counts)
    cases = [("direct", None, [None] * agents)]
    for n in counts:
        hd = BenchHoopd(cleanup, policy_text("allow", pg.port), "scale-w%d" % n, "off", workers=n)
        hd.start()
        cgs = []
        for a in range(agents):
            cg = Cgroup(cleanup, "scale-w%d-a%d" % (n, a))
            cleanup.push(lambda h=hd, c=cg: h.proc and h.ctl("detach", "--cgroup", c.path, check=False))
            hd.ctl("attach", "--cgroup", cg.path, "--owner", "agent%d@example.org" % a)
            cgs.append(cg)
        cases.append(("hoopd allow/off, %d worker%s" % (n, "" if n == 1 else "s"), hd, cgs))
    res = {}
    for rnd in range(ROUNDS):
        order = cases[rnd % len(cases):] + cases[:rnd % len(cases)]
        for name, hd, cgs in order:
            r = scaling_pgbench(work, pg.port, cgs, [hd.proc.pid] if hd else [], SECONDS)
            res.setdefault(name, []).append(r)
        log("scaling round %d/%d  %s" % (rnd + 1, ROUNDS, "  ".join(
            "%s %.0f" % (n, res[n][-1]["tps"]) for n, _, _ in cases)))
    for name, hd, cgs in cases:
        if hd:
            if hd.proc.poll() is not None:
                raise RuntimeError("%s died during the run:\n%s" % (name, hd.log_text()[-3000:]))
            for cg in cgs:
                hd.ctl("detach", "--cgroup", cg.path, check=False)
            hd.stop()
    return {"agents": agents, "ncpu": ncpu, "names": [n for n, _, _ in cases], "res": res}


# ---- MariaDB (sysbench) ------------------------------------------------------------------------

MARIA_WORKLOADS = ("oltp_point_select", "oltp_read_only")
MARIA_THREADS = (8, 1)
MARIA_TABLES, MARIA_ROWS = 4, 10000
MARIA_USER, MARIA_PW, MARIA_DB = "sbtest", "sbtestpw", "sbtest"
# What sysbench sends for MARIA_WORKLOADS (oltp_common.lua, 1.0.20), prepared: checked against
# the HIPAA policy before the runs, so that a policy change that holds or refuses them is named
# as such rather than read as a slow or failed run.
SYSBENCH_STATEMENTS = ("SELECT c FROM sbtest1 WHERE id=?",
                       "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ?",
                       "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?",
                       "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c",
                       "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c",
                       "BEGIN", "COMMIT")


def maria_policy_text(kind, port):
    """allow: a mysql target and nothing else; hipaa: the shipped policy with its target turned
    into this MariaDB the way tests/e2e/test_mysql.py's policy() does (without the tests' own
    rules): every rule, masking with every detector and `durability: flush` stay in force."""
    if kind == "allow":
        return ("version: 1\ntargets:\n  - name: bench-mariadb\n    protocol: mysql\n"
                "    ports: [%d]\n    upstream_tls: disable\ndefault: allow\n" % port)
    with open(os.path.join(ROOT, "policies", "hipaa-agents.yaml")) as f:
        text = f.read()
    for old, new in (("name: clinical-pg", "name: bench-mariadb"),
                     ("protocol: postgres ", "protocol: mysql "),
                     ("ports: [5432]", "ports: [%d]" % port),
                     ("upstream_tls: verify-full ", "upstream_tls: disable ")):
        if old not in text:
            raise RuntimeError("policies/hipaa-agents.yaml no longer has %r" % old)
        text = text.replace(old, new, 1)
    return text


def maria_policy_check(work, text):
    """hoopctl policy test --protocol mysql on sysbench's statements: those the policy does not
    allow, each with its verdict line. An allow rule for the sbtest tables would not help if
    there were any: deny and approve win over allow whatever the order (docs/policy.md,
    Precedence); their runs fail (a hold through the binary protocol is refused at once) and
    their rows say FAILED, and the report says why."""
    path = os.path.join(work, "maria-hipaa-check.yaml")
    with open(path, "w") as f:
        f.write(text)
    out = []
    for sql in SYSBENCH_STATEMENTS:
        r = subprocess.run([BIN["hoopctl"], "policy", "test", path, "--protocol", "mysql", "--sql", sql],
                           capture_output=True, text=True, timeout=30)
        m = re.search(r"^\s*verdict: (.*)$", r.stdout, re.M)
        if r.returncode or not m or not m.group(1).startswith("allow"):
            out.append((sql, m.group(1) if m else "hoopctl exit %d: %s" % (
                r.returncode, (r.stdout + r.stderr).strip()[-300:])))
    return out


class Trail:
    """The records a hoopd wrote to its audit trail since the last look. Closed segments are
    gzip'd by hoopd's compressor in the background: the plain file is read while it is there,
    else its .gz (as hooptest's Hoopd.events does), from where the last look stopped."""

    def __init__(self, state):
        self.dir = os.path.join(state, "audit")
        self.seg, self.off = 0, 0

    def read(self):
        import gzip
        import json
        out = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        nums = sorted({int(m.group(1)) for m in (re.fullmatch(r"seg-(\d{8})\.jsonl(\.gz)?", n)
                                                 for n in names) if m})
        for n in nums:
            if n < self.seg:
                continue
            if n > self.seg:
                self.seg, self.off = n, 0
            p = os.path.join(self.dir, "seg-%08d.jsonl" % n)
            try:
                f = open(p, "rb")
            except FileNotFoundError:
                f = gzip.open(p + ".gz", "rb")
            with f:
                f.seek(self.off)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a record still being written waits for the next look
            self.off += end
            out += [json.loads(l) for l in data[:end].splitlines() if l.strip()]
        return out


def trail_counts(records):
    c = {"statements": 0, "not_allowed": 0, "errors": 0, "masked": 0}
    for r in records:
        k = r.get("kind")
        if k == "statement":
            c["statements"] += 1
            if r.get("verdict") != "allow":
                c["not_allowed"] += 1
        elif k == "error":
            c["errors"] += 1
        if r.get("masked"):
            c["masked"] += 1
    return c


def sysbench_argv(test, port, action, threads=1, seconds=0):
    argv = ["sysbench", test, "--mysql-host=127.0.0.1", "--mysql-port=%d" % port,
            "--mysql-user=" + MARIA_USER, "--mysql-password=" + MARIA_PW, "--mysql-db=" + MARIA_DB,
            "--tables=%d" % MARIA_TABLES, "--table-size=%d" % MARIA_ROWS, "--threads=%d" % threads]
    if action == "run":
        argv += ["--time=%d" % seconds, "--db-ps-mode=auto", "--histogram=on", "--percentile=99"]
    return argv + [action]


def sysbench_run(cfg, test, threads, seconds, trail):
    """One sysbench run through cfg; a dict of its numbers, or {"failed": why} (with what was
    measured) when sysbench or hoopd's trail says it did not run clean."""
    argv = sysbench_argv(test, cfg.port, "run", threads, seconds)
    if cfg.cgroup:
        argv = cfg.cgroup.cmd(argv)
    c0 = cpu_ticks(cfg.pid)
    u0 = USAGE.sample()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:  # a stall: the row says so
        rc = "timeout"
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    u1 = USAGE.sample()
    c1 = cpu_ticks(cfg.pid)
    foreign, _ = Usage.foreign_pct(u0, u1)
    res = {"foreign": foreign}
    why = []

    def num(pat, conv=float):
        m = re.search(pat, out, re.M)
        return conv(m.group(1)) if m else None
    res["xacts"] = num(r"^\s*transactions:\s+(\d+)", int)
    res["tps"] = num(r"^\s*transactions:\s+\d+\s+\(([0-9.]+) per sec")
    res["queries"] = num(r"^\s*queries:\s+(\d+)", int)
    res["qps"] = num(r"^\s*queries:\s+\d+\s+\(([0-9.]+) per sec")
    res["ignored"] = num(r"^\s*ignored errors:\s+(\d+)", int)
    res["reconnects"] = num(r"^\s*reconnects:\s+(\d+)", int)
    res["max"] = num(r"^\s*max:\s+([0-9.]+)")
    hist = [(float(v), int(n)) for v, n in re.findall(r"^\s*([0-9.]+) \|\**\s+(\d+)\s*$", out, re.M)]
    total = sum(n for _, n in hist)

    def hpct(q):
        seen = 0
        for v, n in hist:
            seen += n
            if seen >= q * total:
                return v
        return None
    res["p50"], res["p99"] = (hpct(0.50), hpct(0.99)) if total else (None, None)
    if rc != 0:
        why.append("sysbench exit %s" % rc)
    if "FATAL" in out:
        why.append(re.search(r"^.*FATAL.*$", out, re.M).group(0).strip()[:160])
    if None in (res["xacts"], res["tps"], res["queries"], res["ignored"], res["reconnects"]) or not total:
        why.append("sysbench printed no statistics")
    elif not res["xacts"]:
        why.append("no transaction completed")
    if res["reconnects"]:
        why.append("%d reconnects" % res["reconnects"])
    if cfg.pid and res["queries"]:
        res["cpu_per_100k"] = (c1 - c0) / CLK_TCK / res["queries"] * 1e5
    if cfg.hoopd:
        # hoopd writes a statement's record before it forwards it; the wait is for the records
        # of statements still in flight when sysbench stopped the clock.
        t = trail_counts(trail.read())
        deadline = time.time() + 10
        while res["queries"] and t["statements"] < res["queries"] and time.time() < deadline:
            time.sleep(0.2)
            for k, v in trail_counts(trail.read()).items():
                t[k] += v
        res["trail"] = t
        if cfg.hoopd.proc.poll() is not None:
            why.append("hoopd exited %d" % cfg.hoopd.proc.returncode)
        if res["queries"] and t["statements"] < res["queries"]:
            why.append("trail: %d statement records for %d queries" % (t["statements"], res["queries"]))
        if t["not_allowed"]:
            why.append("trail: %d statements not allowed" % t["not_allowed"])
        if t["errors"]:
            why.append("trail: %d error records" % t["errors"])
    if why:
        res["failed"] = "; ".join(why)
        log("  FAILED: %s t%d through %s: %s\n    %s" % (test, threads, cfg.name, res["failed"],
                                                        "\n    ".join(out.strip().splitlines()[-12:])))
    return res


def start_mariadb(cleanup):
    """The throwaway MariaDB of the tests (hooptest.MariaDB) with room for the data set, the
    sbtest database and its user (mysql_native_password, from 127.0.0.1 only, the address
    haproxy and hoopd connect from), and the tables filled by sysbench directly."""
    db = hooptest.MariaDB(cleanup, port=free_port(),
                          extra=("--max-connections=300", "--innodb-buffer-pool-size=256M"))
    db.sql("create database %s" % MARIA_DB)
    db.sql("create user '%s'@'127.0.0.1' identified via mysql_native_password using password('%s')"
           % (MARIA_USER, MARIA_PW))
    db.sql("grant all on %s.* to '%s'@'127.0.0.1'" % (MARIA_DB, MARIA_USER))
    r = subprocess.run(sysbench_argv("oltp_read_only", db.port, "prepare", threads=MARIA_TABLES),
                       capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise RuntimeError("sysbench prepare failed:\n%s%s" % (r.stdout[-2000:], r.stderr[-2000:]))
    for i in range(1, MARIA_TABLES + 1):
        db.sql("analyze table %s.sbtest%d" % (MARIA_DB, i))
    return db


def mariadb_case(cleanup, work):
    """sysbench's MARIA_WORKLOADS at MARIA_THREADS direct, through haproxy and through hoopd
    (allow, hipaa; accel off) in ROUNDS rounds, the order rotated by one each round."""
    db = start_mariadb(cleanup)
    hipaa = maria_policy_text("hipaa", db.port)
    held = maria_policy_check(work, hipaa)
    for sql, verdict in held:
        log("  the HIPAA policy does not allow sysbench's %r: %s" % (sql, verdict))
    configs = [Config("direct", db.port)]
    hport, hproc = start_haproxy(cleanup, work, db.port, "mariadb")
    configs.append(Config("haproxy", hport, hproc.pid))
    for kind, text in (("allow", maria_policy_text("allow", db.port)), ("hipaa", hipaa)):
        hd = BenchHoopd(cleanup, text, "maria-%s" % kind, "off")
        hd.start()
        hd.attach(cleanup)
        configs.append(Config("hoopd %s/off" % kind, db.port, hd.proc.pid, hd.cg, hd))
    trails = {c.name: Trail(c.hoopd.state) for c in configs if c.hoopd}
    cases = [(w, t) for t in MARIA_THREADS for w in MARIA_WORKLOADS]
    log("bench: MariaDB: %d paths x %d workloads x %d rounds = %d sysbench runs of %d s" % (
        len(configs), len(cases), ROUNDS, len(configs) * len(cases) * ROUNDS, SECONDS))
    res = {}
    for rnd in range(ROUNDS):
        order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
        for w, t in cases:
            for c in order:
                res.setdefault((w, t, c.name), []).append(
                    sysbench_run(c, w, t, SECONDS, trails.get(c.name)))
            log("mariadb round %d/%d %-17s t%d  %s" % (rnd + 1, ROUNDS, w, t, "  ".join(
                "%s %s" % (c.name, "FAILED" if "failed" in res[(w, t, c.name)][-1]
                           else "%.0f" % res[(w, t, c.name)][-1]["tps"]) for c in configs)))
    for c in configs:
        if c.hoopd:
            c.hoopd.ctl("detach", "--cgroup", c.hoopd.cg.path, check=False)
            c.hoopd.stop()
    stop_proc(hproc)
    db.stop()
    return {"names": [c.name for c in configs], "cases": cases, "res": res, "held": held}


def mariadb_report(maria):
    """The report's MariaDB section: a table and sentences computed from it."""
    L = []
    if "error" in maria:
        L.append("## MariaDB (sysbench)\n")
        L.append("**FAILED** before its runs: %s\n" % maria["error"])
        return L
    res, names = maria["res"], maria["names"]

    def failed(w, t, n):
        return [r["failed"] for r in res.get((w, t, n), []) if "failed" in r]

    def get(w, t, n, field):
        if failed(w, t, n):
            return None
        return med([r.get(field) for r in res.get((w, t, n), [])])

    def ratio(w, t, n, field, base="direct"):
        if failed(w, t, n) or failed(w, t, base):
            return None
        rs = [x[field] / y[field] for x, y in zip(res.get((w, t, n), []), res.get((w, t, base), []))
              if x.get(field) and y.get(field)]
        return med(rs)

    if maria["held"]:
        held_text = (". **`hoopctl policy test --protocol mysql` does not allow sysbench's** " + "; ".join(
            "`%s`: %s" % (sql, v.replace("|", "/")) for sql, v in maria["held"]) +
            " (an allow rule cannot override deny or approve; those runs fail).")
    else:
        held_text = (": `hoopctl policy test --protocol mysql` allows each of sysbench's statements "
                     "as they are (its rules on bulk reads name the PHI tables, not sbtest, and "
                     "sbtest has no masked column), so no rule was added.")
    L.append("## MariaDB (sysbench)\n")
    L.append("One MariaDB 10.11 (hooptest.MariaDB, innodb_buffer_pool_size 256M) on 127.0.0.1, "
             "sysbench 1.0 over %d tables of %d rows (made by `sysbench oltp_read_only prepare`, "
             "directly), --db-ps-mode=auto (server-side prepared statements, the binary protocol), "
             "%d s per run, %d rounds, the order of the paths rotated by one each round. haproxy: "
             "mode tcp. hoopd: --accel off, sysbench in an attached agent cgroup; `allow` is a mysql "
             "target and nothing else, `hipaa` is policies/hipaa-agents.yaml with its target turned "
             "into this MariaDB (`protocol: mysql`, `upstream_tls: disable`), all its rules, masking "
             "and audit settings unchanged%s A transaction is one SELECT in oltp_point_select "
             "and 16 statements (BEGIN, 14 SELECTs, COMMIT) in oltp_read_only. Medians over the "
             "rounds; ratios per round, then the median. p50 and p99 are per transaction, from "
             "sysbench's latency histogram; max is a run's slowest transaction (the median "
             "over the rounds). CPU: the proxy's user+system seconds per 100k statements.\n"
             % (MARIA_TABLES, MARIA_ROWS, SECONDS, ROUNDS, held_text))
    L.append("| workload | threads | path | TPS | QPS | ×direct | ×haproxy | p50 ms | p99 ms | max ms | proxy CPU s/100k | other load |")
    L.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w, t in maria["cases"]:
        for n in names:
            rs = res.get((w, t, n), [])
            if not rs:
                continue
            bad = failed(w, t, n)
            if bad:
                L.append("| %s | %d | %s | **FAILED** (%d of %d runs: %s) | | | | | | | | |" % (
                    w, t, n, len(bad), len(rs), bad[0].replace("|", "/")))
                continue
            L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w, t, n, fmt(get(w, t, n, "tps"), ".0f"), fmt(get(w, t, n, "qps"), ".0f"),
                fmt(ratio(w, t, n, "qps"), ".3f") if n != "direct" else "—",
                fmt(ratio(w, t, n, "qps", "haproxy"), ".3f") if n.startswith("hoopd") else "—",
                fmt(get(w, t, n, "p50"), ".3f"), fmt(get(w, t, n, "p99"), ".3f"),
                fmt(get(w, t, n, "max"), ".1f"),
                fmt(get(w, t, n, "cpu_per_100k"), ".2f") if n != "direct" else "—",
                fmt(max(r["foreign"] for r in rs), ".0f") + "%"))
    L.append("")
    L.append("*×direct*, *×haproxy*: QPS against that path in the same round (for a workload, TPS "
             "and QPS give the same ratio). *other load*: the largest share of the machine's CPU "
             "that work outside the benchmark took during one of the row's runs. A FAILED row "
             "names its first failure; the end of each failed run's output is in the benchmark's "
             "console output.\n")
    # What the trail held: every hoopd run's statements were on record, allowed, without errors
    # (or the row above says FAILED); masked values are counted here.
    for n in names:
        if not n.startswith("hoopd"):
            continue
        runs = [r for (w, t, m), rs in res.items() if m == n for r in rs if "trail" in r]
        if runs:
            stm = sum(r["trail"]["statements"] for r in runs)
            q = sum(r["queries"] or 0 for r in runs)
            ign = sum(r["ignored"] or 0 for r in runs)
            L.append("- %s: %d statement records in its trail for %d sysbench queries over %d runs; "
                     "records with masked values: %d; sysbench's ignored errors: %d." % (
                         n, stm, q, len(runs), sum(r["trail"]["masked"] for r in runs), ign))
    L.append("")
    # Sentences from the numbers, not about them.
    S = []
    for w, t in maria["cases"]:
        h, a, hp = (ratio(w, t, "hoopd hipaa/off", "qps"), ratio(w, t, "hoopd allow/off", "qps"),
                    ratio(w, t, "haproxy", "qps"))
        hh = ratio(w, t, "hoopd hipaa/off", "qps", "haproxy")
        if h is None or a is None or hp is None:
            S.append("%s at %d thread%s: not comparable (a path FAILED)." % (w, t, "" if t == 1 else "s"))
            continue
        stm = 1 if w == "oltp_point_select" else 16
        d50, h50 = get(w, t, "direct", "p50"), get(w, t, "hoopd hipaa/off", "p50")
        add = (h50 - d50) * 1000 / stm if d50 is not None and h50 is not None else None
        ca, ch = get(w, t, "hoopd allow/off", "cpu_per_100k"), get(w, t, "hoopd hipaa/off", "cpu_per_100k")
        cx = get(w, t, "haproxy", "cpu_per_100k")
        S.append("%s at %d thread%s: hoopd kept %.0f%% of direct QPS with the HIPAA policy and "
                 "%.0f%% with allow-all, haproxy %.0f%% (HIPAA hoopd %.2f× haproxy); the HIPAA "
                 "policy added %s µs of p50 per statement over direct; hoopd's CPU per 100k "
                 "statements was %s s (HIPAA) and %s s (allow), %s× haproxy's %s s." % (
                     w, t, "" if t == 1 else "s", h * 100, a * 100, hp * 100, hh or 0,
                     fmt(add, ".0f"), fmt(ch, ".2f"), fmt(ca, ".2f"),
                     fmt(ch / cx if ch and cx else None, ".1f"), fmt(cx, ".2f")))
    L.append("Computed from the table: " + " ".join(S) + "\n")
    return L


def mariadb_failed(maria):
    return bool(maria) and ("error" in maria or any("failed" in r for rs in maria["res"].values()
                                                      for r in rs))


def write_results(text):
    notes = ""
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            old = f.read()
        i = old.find("\n" + NOTES_MARK)
        if i >= 0:
            notes = old[i + 1:]
    if not notes:
        notes = (NOTES_MARK + " (written by hand; run.py keeps this section when it rewrites the "
                 "file)\n\n(none yet)\n")
    with open(RESULTS, "w") as f:
        f.write(text + "\n" + notes)


def mask_bench():
    """The masking microbenchmark (bench/mask_bench.c, built by make bench): its report, and
    MB/s per core of mask_datarow with every detector on."""
    exe = os.path.join(os.path.dirname(HERE), "build", "bench", "mask_bench")
    if os.environ.get("BENCH_NO_MASK") == "1":
        return None
    log("bench: masking throughput (bench/mask_bench, %s MB) ..." % MASK_MB)
    r = subprocess.run([exe, str(MASK_MB)], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError("mask_bench failed:\n" + r.stdout + r.stderr)
    out = {"text": r.stdout.strip()}
    for key, pat in (("detectors", r"detectors only\s+([0-9.]+) MB/s"),
                     ("rules", r"detectors \+ rules\s+([0-9.]+) MB/s"),
                     ("copy", r"copy \(baseline\)\s+([0-9.]+) MB/s"),
                     ("ipb", r"detectors only: ([0-9.]+) instructions/byte")):
        m = re.search(pat, r.stdout)
        out[key] = float(m.group(1)) if m else None
    log("  %s MB/s per core with every detector on" % out["detectors"])
    return out


def report(facts, cmd, started, elapsed, configs, workloads, res, idle, perf, audit, mask=None,
           scaling=None, maria=None):
    names = [c.name for c in configs]
    L = []
    L.append("# hoop benchmark results\n")
    L.append("Generated by `bench/run.py` (`make bench`); the section *Analysis* at the end is "
             "written by hand and kept when the file is regenerated.\n")
    L.append("- command: `%s`" % cmd)
    L.append("- started %s, took %.1f min; %d rounds of %d s per pgbench run; pgbench scale %d"
             % (started, elapsed / 60, ROUNDS, SECONDS, SCALE))
    for k, v in facts:
        L.append("- %s: %s" % (k, v))
    L.append("")
    L.append("Setup: one PostgreSQL 15 (fsync=off, shared_buffers=512MB, max_connections=1100) on "
             "127.0.0.1; every client connects over TCP to 127.0.0.1 with sslmode=disable (no TLS on "
             "any leg; hoopd's policies say `upstream_tls: disable`). pgbench -n (no vacuum: the HIPAA "
             "policy denies the TRUNCATE pgbench's vacuum step does), -j 2 from 8 clients up. haproxy: "
             "mode tcp, default threads. pgbouncer: pool_mode session, default_pool_size 100, default "
             "logging. hoopd: --log-level info (the default), audit trail in a state dir on the same "
             "disk; `allow` is a policy with only the target (default allow, every statement still "
             "recorded); `hipaa` is policies/hipaa-agents.yaml (its deny and approval rules, "
             "masking of PHI columns with every detector on, audit `durability: flush`); "
             "`fsync` is that policy with `durability: fsync`. Each hoopd case runs with `--accel off` "
             "and `--accel sockmap`. All of it on one %d-CPU machine: pgbench, PostgreSQL and the "
             "proxy share the CPUs, so a proxy's CPU time is taken from PostgreSQL and pgbench."
             % os.cpu_count())
    L.append("")
    if mask:
        L.append("Masking throughput (bench/mask_bench.c, `make bench-mask`): mask_datarow over "
                 "%s MB of 10-column DataRows with every detector on, one core, against a plain "
                 "copy of the same rows in the same run; callgrind's instruction count is the "
                 "stable figure on a shared machine:\n" % MASK_MB)
        L.append("```\n%s\n```\n" % mask["text"])

    def get(wk, cn, field):
        return med([r.get(field) for r in res.get((wk, cn), [])])

    def ratio(wk, cn, field, base="direct"):
        a, b = res.get((wk, cn), []), res.get((wk, base), [])
        rs = [x[field] / y[field] for x, y in zip(a, b) if x.get(field) and y.get(field)]
        return med(rs)

    # Targets.
    L.append("## Targets (ratios from this run)\n")
    L.append("| target | case | measured | result |")
    L.append("|---|---|---|---|")

    def target(desc, case, val, ok, shown):
        if val is None:
            L.append("| %s | %s | not measured | — |" % (desc, case))
        else:
            L.append("| %s | %s | %s | %s |" % (desc, case, shown, "met" if ok else "**missed**"))

    for mode in ("simple", "prepared"):
        wk = Workload("S", mode, 8).key
        for acc in ("off", "sockmap"):
            hc = "hoopd hipaa/%s" % acc
            v = ratio(wk, hc, "tps")
            target("HIPAA ≥ 0.85× direct TPS", "%s, %s" % (wk, acc), v, v and v >= 0.85, fmt(v, ".3f") + "×")
            v = ratio(wk, hc, "tps", "haproxy")
            target("HIPAA ≥ 1.1× haproxy TPS", "%s, %s" % (wk, acc), v, v and v >= 1.1, fmt(v, ".3f") + "×")
            v = ratio(wk, hc, "tps", "pgbouncer")
            target("HIPAA ≥ 1.3× pgbouncer TPS", "%s, %s" % (wk, acc), v, v and v >= 1.3, fmt(v, ".3f") + "×")
            v = ratio(wk, "hoopd fsync/%s" % acc, "tps")
            target("audit fsync ≥ 0.7× direct TPS", "%s, %s" % (wk, acc), v, v and v >= 0.7, fmt(v, ".3f") + "×")
    for script in ("S", "tpcb"):
        for mode in ("simple", "prepared"):
            wk = Workload(script, mode, 1).key
            for acc in ("off", "sockmap"):
                a, b = get(wk, "hoopd hipaa/%s" % acc, "p50"), get(wk, "direct", "p50")
                v = None if a is None or b is None else (a - b) * 1000 / STMTS[script]
                target("added p50 per statement < 30 µs (HIPAA)", "%s, %s" % (wk, acc), v,
                       v is not None and v < 30, fmt(v, ".1f") + " µs")
    for i in idle:
        target("≤ 16 KiB RSS per idle connection", "%d idle, %s" % (i["n"], i["target"]),
               i["per_conn_kib"], i["per_conn_kib"] <= 16, "%.1f KiB" % i["per_conn_kib"])
    big = [i for i in idle if i["requested"] == 10000]
    if big and big[0]["n"] == 10000:
        target("10,000 concurrent connections held", "10,000 idle, %s" % big[0]["target"], 1, True,
               "all 10,000 completed startup and were held")
    elif big:
        L.append("| 10,000 concurrent connections held | %s idle, %s | %d held; 10,000 not tried: "
                 "hoopd's open-file limit here is %d (the hard limit; raising it needs "
                 "CAP_SYS_RESOURCE, which this machine does not give root) and hoopd needs two "
                 "descriptors per connection | **not measurable here** |"
                 % (format(big[0]["n"], ","), big[0]["target"], big[0]["n"], big[0]["nofile"]))
    else:
        target("10,000 concurrent connections held", "—", None, False, "")
    if mask and mask.get("detectors"):
        target("masking ≥ 500 MB/s per core", "mask_datarow, every detector on", mask["detectors"],
               mask["detectors"] >= 500, "%.0f MB/s (%.2f instructions/byte)"
               % (mask["detectors"], mask["ipb"] or 0))
    L.append("")

    fl = [r["foreign"] for rs in res.values() for r in rs]
    st = [r["steal"] for rs in res.values() for r in rs]
    if fl:
        L.append("Other work on the machine during the pgbench runs (CPU time outside the "
                 "benchmark's cgroup, as a share of all CPUs): median %.1f%%, max %.1f%%, %d of %d "
                 "runs above 5%%; hypervisor steal median %.1f%%, max %.1f%%.\n" % (
                     statistics.median(fl), max(fl), sum(1 for x in fl if x > 5), len(fl),
                     statistics.median(st), max(st)))

    # TPS ratio matrix.
    others = [n for n in names if n != "direct"]
    L.append("## TPS against direct (median of the per-round ratios)\n")
    L.append("| workload | direct TPS | " + " | ".join(others) + " |")
    L.append("|---|---:|" + "---:|" * len(others))
    for w in workloads:
        L.append("| %s | %s | %s |" % (w.key, fmt(get(w.key, "direct", "tps"), ".0f"),
                                      " | ".join(fmt(ratio(w.key, n, "tps"), ".3f") for n in others)))
    L.append("")

    # Full table.
    L.append("## Every case\n")
    L.append("Medians over the rounds. Ratios are against direct, per round, then the median. "
             "Latency is per transaction (TPC-B: 7 statements), from pgbench's per-transaction log. "
             "CPU is the proxy process's user+system time per 100k statements (hoopd, haproxy, "
             "pgbouncer; for -C, per 100k connections).\n")
    L.append("| workload | config | TPS | ×direct | p50 ms | ×direct | p99 ms | ×direct | proxy CPU s/100k | other load |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in workloads:
        for n in names:
            if (w.key, n) not in res:
                continue
            cpu = get(w.key, n, "cpu_per_100k")
            if w.connect:
                cpu = med([r["cpu_s"] / max(1, r["xacts"]) * 1e5 for r in res[(w.key, n)]
                           if r.get("cpu_s") is not None])
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w.key, n, fmt(get(w.key, n, "tps"), ".0f"), fmt(ratio(w.key, n, "tps"), ".3f"),
                fmt(get(w.key, n, "p50"), ".3f"), fmt(ratio(w.key, n, "p50"), ".2f"),
                fmt(get(w.key, n, "p99"), ".3f"), fmt(ratio(w.key, n, "p99"), ".2f"),
                fmt(cpu, ".2f"), fmt(max(r["foreign"] for r in res[(w.key, n)]), ".0f") + "%"))
    L.append("")
    L.append("*other load*: the largest share of the machine's CPU that work outside the benchmark "
             "took during one of the case's runs.\n")

    if scaling:
        sr = scaling["res"]
        L.append("## Worker scaling\n")
        L.append("pgbench -S -M simple with %d clients in all, as %d pgbench processes run at once "
                 "(%d clients each, -j 1), each in an agent cgroup of its own (hoopd runs one "
                 "agent's sessions on one worker, and spreads agents over the workers); direct "
                 "runs the same %d processes outside any cgroup. hoopd: the allow policy, --accel "
                 "off. %d CPUs, shared with PostgreSQL and pgbench. Medians over %d rounds; ratios "
                 "per round, then the median.\n" % (
                     SCALING_CLIENTS, scaling["agents"], SCALING_CLIENTS // scaling["agents"],
                     scaling["agents"], scaling["ncpu"], ROUNDS))
        L.append("| configuration | total TPS | ×direct | ×1 worker | hoopd CPU s/100k statements |")
        L.append("|---|---:|---:|---:|---:|")
        one = [n for n in scaling["names"] if n.endswith(", 1 worker")]

        def sratio(n, base):
            if not base or base not in sr:
                return None
            return med([a["tps"] / b["tps"] for a, b in zip(sr[n], sr[base]) if b["tps"]])
        for n in scaling["names"]:
            cpu = med([r["cpu_s"] / max(1.0, r["tps"] * SECONDS) * 1e5 for r in sr[n]]) \
                if n != "direct" else None
            L.append("| %s | %s | %s | %s | %s |" % (
                n, fmt(med([r["tps"] for r in sr[n]]), ".0f"), fmt(sratio(n, "direct"), ".3f"),
                fmt(sratio(n, one[0] if one else None), ".3f") if n != "direct" else "—",
                fmt(cpu, ".2f") if cpu is not None else "—"))
        L.append("")

    if audit:
        L.append("## Audit trail written by each hoopd over the matrix\n")
        L.append("Every closed segment (64 MiB) is gzip'd by hoopd's compressor thread after it "
                 "rolls over.\n")
        L.append("| hoopd | statements | audit MiB (≈) | bytes per statement | segments closed |")
        L.append("|---|---:|---:|---:|---:|")
        for a in audit:
            L.append("| %s | %d | %.0f | %.0f | %d |" % (a["name"], a["stmts"], a["bytes"] / 2**20,
                                                     a["bytes"] / max(1, a["stmts"]), a["closed"]))
        L.append("")

    if idle:
        L.append("## Idle agent connections through hoopd (HIPAA policy, accel off)\n")
        L.append("Each on a fresh hoopd, after one warm-up connection; RSS is hoopd's VmRSS. "
                 "Socket buffers are kernel memory and not in it.\n")
        L.append("| connections | upstream | RSS before | RSS held | per connection | RSS after close | setup time |")
        L.append("|---:|---|---:|---:|---:|---:|---:|")
        for i in idle:
            L.append("| %d | %s | %d KiB | %d KiB | %.1f KiB | %d KiB | %.1f s |" % (
                i["n"], i["target"], i["before_kib"], i["held_kib"], i["per_conn_kib"],
                i["after_close_kib"], i["setup_s"]))
        for i in idle:
            if "pgbench" in i:
                pb = i["pgbench"]
                L.append("\nWhile the %d were held: pgbench -S -M simple -c 1 through the same hoopd: "
                         "%.0f TPS, p50 %.3f ms, p99 %.3f ms (the same case without idle connections, "
                         "hoopd hipaa/off above: %s TPS, p50 %s ms)." % (
                             i["n"], pb["tps"], pb["p50"], pb["p99"],
                             fmt(get(Workload("S", "simple", 1).key, "hoopd hipaa/off", "tps"), ".0f"),
                             fmt(get(Workload("S", "simple", 1).key, "hoopd hipaa/off", "p50"), ".3f")))
        L.append("")

    if maria:
        L += mariadb_report(maria)

    if perf:
        L.append("## perf: what hoopd spends its time on (HIPAA policy, accel off)\n")
        L.append("During pgbench -S -M simple -c 8; the whole machine by command "
                 "(`perf record -a -F 999`, %d s; pgbench ran at %s TPS under it):\n"
                 % (PERF_SECONDS, fmt(perf.get("system_tps"), ".0f")))
        L.append("```\n" + perf["comm"] + "\n```\n")
        L.append("By command and object:\n")
        L.append("```\n" + perf["comm_dso"] + "\n```\n")
        for kind, what in (("s", "pgbench -S -M simple -c 8"),
                           ("c", "pgbench -C -S -M simple -c 8 (a new connection per transaction)")):
            L.append("### hoopd during %s\n" % what)
            L.append("`perf record -p HOOPD,WORKERS --call-graph dwarf -F 999`, %d s; pgbench ran at %s TPS "
                     "under it. Self time by object:\n" % (PERF_SECONDS, fmt(perf.get(kind + "_tps"), ".0f")))
            L.append("```\n" + perf[kind + "_dso"] + "\n```\n")
            L.append("Self time by symbol (≥ 1%):\n")
            L.append("```\n" + perf[kind + "_self"] + "\n```\n")
            L.append("Time including callees (≥ 3%; the event loop's own frames left out):\n")
            L.append("```\n" + perf[kind + "_children"] + "\n```\n")
    return "\n".join(L)


# ---- main --------------------------------------------------------------------------------------

def main():
    if os.getuid() != 0:
        log("bench: must run as root (BPF, cgroups)")
        return 1
    # 10,000 agent connections: 20,000 descriptors in hoopd, 10,000 in the client and the stub.
    # Raising the hard limit needs CAP_SYS_RESOURCE; without it, hoopd gets the hard limit.
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200000, 200000))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Every way of being stopped runs the clean-up (SIGINT too when started with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    t_start = time.time()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = " ".join(["make bench"] if os.environ.get("MAKELEVEL") else sys.argv)
    env_knobs = " ".join("%s=%s" % (k, os.environ[k]) for k in sorted(os.environ)
                         if k.startswith("BENCH_"))
    if env_knobs:
        cmd = env_knobs + " " + cmd
    cleanup = Cleanup()
    work = tempfile.mkdtemp(prefix="hoop-bench-")
    os.chmod(work, 0o755)  # pgbouncer runs as postgres and reads its files in here
    cleanup.push(shutil.rmtree, work, True)
    try:
        enter_bench_cgroup(cleanup)
        copy_binaries(work)
        return run(cleanup, work, t_start, started, cmd)
    finally:
        cleanup.run()


def run_mariadb_only(cleanup, work, t_start, started, cmd, facts):
    """BENCH_ONLY_MARIADB=1: the MariaDB cases alone, for work on the MySQL engine."""
    maria = mariadb_case(cleanup, work)
    elapsed = time.time() - t_start
    L = ["# hoop benchmark results (MariaDB only)\n",
         "- command: `%s`" % cmd,
         "- started %s, took %.1f min; %d rounds of %d s per sysbench run" % (
             started, elapsed / 60, ROUNDS, SECONDS)]
    L += ["- %s: %s" % (k, v) for k, v in facts if k not in ("PostgreSQL", "pgbench", "pgbouncer")]
    L.append("")
    print("\n".join(L + mariadb_report(maria)))
    log("bench: BENCH_ONLY_MARIADB set: %s not written (%.1f min)" % (RESULTS, elapsed / 60))
    return 1 if mariadb_failed(maria) else 0


def run(cleanup, work, t_start, started, cmd):
    facts = machine_facts()
    if os.environ.get("BENCH_ONLY_MARIADB") == "1":
        return run_mariadb_only(cleanup, work, t_start, started, cmd, facts)
    log("bench: PostgreSQL, pgbench -i -s %d ..." % SCALE)
    pg = Postgres(cleanup, listen="127.0.0.1",
                  extra=("max_connections=1100", "shared_buffers=512MB", "fsync=off"))
    pg.psql_direct("create database bench")
    subprocess.run([PGBENCH, "-i", "-q", "-s", str(SCALE), "-h", "127.0.0.1", "-p", str(pg.port),
                    "-U", "postgres", "bench"], check=True, capture_output=True)
    pg.psql_direct("vacuum analyze")

    configs = [Config("direct", pg.port)]
    hport, hproc = start_haproxy(cleanup, work, pg.port)
    configs.append(Config("haproxy", hport, hproc.pid))
    bport, bproc = start_pgbouncer(cleanup, work, pg.port)
    configs.append(Config("pgbouncer", bport, bproc.pid))
    for kind in ("allow", "hipaa", "fsync"):
        for accel in ("off", "sockmap"):
            hd = BenchHoopd(cleanup, policy_text(kind, pg.port), "%s-%s" % (kind, accel), accel)
            hd.start()
            hd.attach(cleanup)
            configs.append(Config("hoopd %s/%s" % (kind, accel), pg.port, hd.proc.pid, hd.cg, hd))
    # The process split (docs/architecture.md): the configurations above run the default, one
    # engine worker per CPU; these the same allow policy with one worker, and with none (the
    # single privileged process hoopd was before the split): what the hand-off costs and what
    # more workers give.
    for w in (0, 1):
        hd = BenchHoopd(cleanup, policy_text("allow", pg.port), "allow-w%d" % w, "off", workers=w)
        hd.start()
        hd.attach(cleanup)
        configs.append(Config("hoopd allow/off w%d" % w, pg.port, hd.proc.pid, hd.cg, hd))
    if ONLY:
        configs = [c for c in configs if c.name in ONLY or c.name == "direct"]
    workloads = [Workload(s, m, c) for s in ("S", "tpcb") for m in ("simple", "prepared")
                 for c in (1, 8, 64)]
    workloads.append(Workload("S", "simple", 8, connect=True))
    if os.environ.get("BENCH_WORKLOADS"):
        workloads = [w for w in workloads if w.key in os.environ["BENCH_WORKLOADS"].split(",")]
    n_runs = ROUNDS * len(workloads) * len(configs)
    log("bench: %d configurations x %d workloads x %d rounds = %d pgbench runs of %d s" % (
        len(configs), len(workloads), ROUNDS, n_runs, SECONDS))
    res = {}
    for rnd in range(ROUNDS):
        order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
        for w in workloads:
            for c in order:
                r = pgbench(work, c, w, SECONDS)
                res.setdefault((w.key, c.name), []).append(r)
            line = "  ".join("%s %.0f" % (c.name, res[(w.key, c.name)][-1]["tps"]) for c in configs)
            log("round %d/%d %-22s %s" % (rnd + 1, ROUNDS, w.key, line))
        log("bench: round %d done, %.1f min so far" % (rnd + 1, (time.time() - t_start) / 60))
    for c in configs:
        if c.hoopd and c.hoopd.proc.poll() is not None:
            raise RuntimeError("%s died during the run:\n%s" % (c.name, c.hoopd.log_text()[-3000:]))
    audit = []
    for c in configs:
        if c.hoopd:
            b, closed = audit_bytes(c.hoopd.state)
            stmts = sum(r["xacts"] * STMTS[w.script] for w in workloads for r in res.get((w.key, c.name), []))
            audit.append({"name": c.name, "bytes": b, "closed": closed, "stmts": stmts})

    perf = None
    hip = [c for c in configs if c.name == "hoopd hipaa/off"]
    if hip and os.environ.get("BENCH_NO_PERF") != "1" and shutil.which("perf"):
        log("bench: perf during -S simple c8 through hoopd hipaa/off ...")
        perf = perf_profiles(work, hip[0])

    # The matrix is done: the idle measurements get fresh hoopds; the others may go.
    for c in configs:
        if c.hoopd:
            c.hoopd.ctl("detach", "--cgroup", c.hoopd.cg.path, check=False)
            c.hoopd.stop()
    idle = []
    if os.environ.get("BENCH_NO_IDLE") != "1":
        stub_port = free_port()
        stub = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "pgstub.py"), str(stub_port)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        cleanup.push(stop_proc, stub)
        if stub.stdout.readline().strip() != "listening":
            raise RuntimeError("pgstub did not start")
        for n, port, what, tag in ((1000, pg.port, "PostgreSQL", "idle-pg-1k"),
                                   (1000, stub_port, "stub", "idle-stub-1k"),
                                   (10000, stub_port, "stub", "idle-stub-10k")):
            log("bench: %d idle connections through hoopd to the %s ..." % (n, what))
            i = idle_case(cleanup, work, pg, stub_port, port, n, tag, with_pgbench=(n == 10000))
            i["target"] = what
            idle.append(i)
            log("  RSS %d -> %d KiB: %.1f KiB per connection" % (i["before_kib"], i["held_kib"],
                                                                  i["per_conn_kib"]))

    scaling = None
    if os.environ.get("BENCH_NO_SCALING") != "1":
        log("bench: worker scaling ...")
        scaling = scaling_case(cleanup, work, pg)
    maria = None
    if os.environ.get("BENCH_NO_MARIADB") != "1":
        log("bench: MariaDB (sysbench) ...")
        try:
            maria = mariadb_case(cleanup, work)
        except Exception as e:  # the PostgreSQL results are still written, the section says why
            log("bench: MariaDB FAILED: %s" % e)
            maria = {"error": str(e).splitlines()[0] if str(e) else repr(e)}
    mask = mask_bench()
    elapsed = time.time() - t_start
    text = report(facts, cmd, started, elapsed, configs, workloads, res, idle, perf, audit, mask,
                  scaling, maria)
    print(text)
    if ONLY or os.environ.get("BENCH_WORKLOADS"):
        log("bench: BENCH_ONLY or BENCH_WORKLOADS set: %s not written" % RESULTS)
    else:
        write_results(text)
        log("bench: wrote %s (%.1f min)" % (RESULTS, elapsed / 60))
    if mariadb_failed(maria):
        log("bench: MariaDB runs FAILED (the report's MariaDB table names them)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
