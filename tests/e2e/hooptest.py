"""Shared machinery for hoop's end-to-end tests: a real PostgreSQL, a real hoopd with real BPF
programs attached to a fresh cgroup, network namespaces on 198.18.0.0/15 veths, and a tiny
runner that prints `e2e: N passed, M failed`. Everything a test starts is torn down, even when
the test fails. Run as root with Debian's /usr/bin/python3.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("HOOP_BUILD", os.path.join(ROOT, "build"))
HOOPD = os.path.join(BUILD, "hoopd")
HOOPCTL = os.path.join(BUILD, "hoopctl")
PGBIN = "/usr/lib/postgresql/15/bin"
# HOOP_BUILD=tests/image/bin: the node image's own hoopd and hoopctl, run as deploy/daemonset.yaml
# runs them (tests/image/pod.py, inside tests/image/with-rootfs.sh).
IN_IMAGE = os.path.basename(os.path.realpath(HOOPD)) == "pod.py"


def log(msg):
    print(msg, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, typ = line.split()[:3]
            if typ == "cgroup2":
                return mnt
    raise RuntimeError("no cgroup2 mount")


def children(ppid, marker=None):
    """The live processes whose parent is ppid (with marker, only those whose argv holds that
    word, e.g. b"--worker": hoopd's engine workers), as pids."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                pp = int(f.read().rsplit(")", 1)[1].split()[1])
            if pp != ppid:
                continue
            if marker is not None:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if marker not in f.read().split(b"\0"):
                        continue
        except (OSError, ValueError, IndexError):
            continue
        out.append(int(d))
    return sorted(out)


def proc_status(pid):
    """/proc/PID/status as a dict, values stripped (OSError when the process is gone)."""
    with open("/proc/%d/status" % pid) as f:
        return {k: v.strip() for k, v in (l.split(":", 1) for l in f.read().splitlines() if ":" in l)}


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Cleanup:
    """A stack of undo actions run in reverse, each guarded so one failure doesn't stop the rest."""

    every = []  # each one made, so that run_tests can undo a setup that failed half-way

    def __init__(self):
        self.stack = []
        Cleanup.every.append(self)

    def push(self, fn, *a):
        self.stack.append((fn, a))

    def run(self):
        while self.stack:
            fn, a = self.stack.pop()
            try:
                fn(*a)
            except Exception as e:  # keep cleaning
                log("  cleanup: %s%r: %s" % (getattr(fn, "__name__", fn), a, e))


class Postgres:
    """A throwaway PostgreSQL 15 cluster on a free port."""

    def __init__(self, cleanup, listen="127.0.0.1,::1", extra=(), hba_first=(), ssl=False):
        self.dir = tempfile.mkdtemp(prefix="hoop-pg-")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        self._pg(["initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"])
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            old = f.read()
        with open(hba, "w") as f:
            # First match wins: the test's own lines go before initdb's trust lines.
            f.write("".join(l + "\n" for l in hba_first) + old)
            f.write("host all all 198.18.0.0/15 trust\n")  # the tests' agent namespaces
        if ssl:
            # A server certificate for 127.0.0.1 from a throwaway CA of the test's own.
            d = self.data
            sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
               "-subj /CN=test-ca -keyout %s/ca.key -out %s/ca.crt 2>/dev/null" % (d, d))
            sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 "
               "-keyout %s/server.key -out %s/server.csr 2>/dev/null" % (d, d))
            with open(os.path.join(d, "san.ext"), "w") as f:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            sh("openssl x509 -req -in %s/server.csr -CA %s/ca.crt -CAkey %s/ca.key -CAcreateserial "
               "-days 2 -extfile %s/san.ext -out %s/server.crt 2>/dev/null" % (d, d, d, d, d))
            for f in ("server.key", "server.crt", "ca.crt"):
                shutil.chown(os.path.join(d, f), "postgres", "postgres")
            os.chmod(os.path.join(d, "server.key"), 0o600)
            # The CA also outside the data directory (postgres' own, mode 0700): a hoopd that
            # holds only the DaemonSet's capabilities (no CAP_DAC_OVERRIDE) reads it there.
            self.ca = os.path.join(self.dir, "ca.crt")
            shutil.copy(os.path.join(d, "ca.crt"), self.ca)
            extra = tuple(extra) + ("ssl=on",)
        opts = "-p %d -k %s -c listen_addresses='%s' -c max_connections=200 -c fsync=off" % (
            self.port, self.dir, listen)
        for e in extra:
            opts += " -c " + e
        cleanup.push(shutil.rmtree, self.dir, True)
        cleanup.push(self.stop)
        self._pg(["pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"),
                  "-w", "start"])

    def _pg(self, args):
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PGBIN, args[0])] + args[1:],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._pg(["pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])

    def psql_direct(self, sql):
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-tAX", "-c", sql], check=True, capture_output=True,
                              text=True).stdout.strip()


class MariaDB:
    """A throwaway MariaDB server (mariadbd from Debian's mariadb-server-core) in a temporary
    directory, on a Unix socket where root logs in without a password, and with port= also on
    TCP 127.0.0.1:port, where only the accounts a test makes log in (root is the socket's
    alone). Removed at clean-up."""

    def __init__(self, cleanup, port=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="hoop-maria-")
        cleanup.push(shutil.rmtree, self.dir, True)
        data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.port = port
        r = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + data, "--user=root",
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("mariadb-install-db failed:\n" + r.stdout + r.stderr)
        self.log = os.path.join(self.dir, "err.log")
        net = ["--skip-networking"] if port is None else [
            "--port=%d" % port, "--bind-address=127.0.0.1", "--skip-name-resolve"]
        self.proc = subprocess.Popen(["/usr/sbin/mariadbd", "--no-defaults", "--datadir=" + data,
                                      "--socket=" + self.sock, "--user=root",
                                      "--pid-file=" + os.path.join(self.dir, "pid"),
                                      "--log-error=" + self.log, "--innodb-buffer-pool-size=32M"]
                                     + net + list(extra),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        cleanup.push(self.stop)
        wait_for(lambda: self.proc.poll() is not None or self._up(), 60, "mariadbd to answer")
        if self.proc.poll() is not None:
            raise RuntimeError("mariadbd exited %d:\n%s" % (self.proc.returncode, open(self.log).read()[-2000:]))
        if port is not None:
            # root over TCP (install-db makes root@127.0.0.1, ::1 and the host name, without a
            # password) would let any agent that reaches the port log in as root
            self.sql("delete from mysql.global_priv where user = 'root' and host <> 'localhost'")
            self.sql("flush privileges")

    def _up(self):
        import pymysql
        try:
            self.connect().close()
            return True
        except pymysql.MySQLError:
            return False

    def connect(self, user="root", password="", db=None, **kw):
        """A pymysql connection over the Unix socket (root by default), autocommit."""
        import pymysql
        return pymysql.connect(unix_socket=self.sock, user=user, password=password, database=db,
                               autocommit=True, read_timeout=30, write_timeout=30, **kw)

    def sql(self, query, args=None, db=None):
        """query as root over the socket; its rows as a list of tuples."""
        c = self.connect(db=db)
        try:
            cur = c.cursor()
            cur.execute(query, args)
            return list(cur.fetchall())
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Hoopd:
    """One hoopd with its own pin root, state dir, control socket and ports."""

    def __init__(self, cleanup, policy_text, tag="t"):
        self.cleanup = cleanup
        self.dir = tempfile.mkdtemp(prefix="hoop-d-")
        cleanup.push(shutil.rmtree, self.dir, True)
        self.policy = os.path.join(self.dir, "policy.yaml")
        self.state = os.path.join(self.dir, "state")
        self.control = os.path.join(self.dir, "hoopd.sock")
        self.pin_root = "/sys/fs/bpf/hoop-test-%d-%s" % (os.getpid(), tag)
        self.listen_port = free_port()
        self.metrics_port = free_port()
        self.proc = None
        self.exit_codes = []
        self.logf = os.path.join(self.dir, "hoopd.log")
        self.write_policy(policy_text)
        cleanup.push(self._remove_pins)
        cleanup.push(self.stop)

    def write_policy(self, text):
        with open(self.policy, "w") as f:
            f.write(text)

    def start(self, *extra, expect_fail=False):
        args = [HOOPD, "--policy", self.policy, "--state-dir", self.state, "--control",
                self.control, "--pin-root", self.pin_root, "--listen-port", str(self.listen_port),
                "--metrics", "127.0.0.1:%d" % self.metrics_port, "--log-level", "debug"] + list(extra)
        # HOOPD_WORKERS=N runs a suite against the split hoopd with N engine workers
        if os.environ.get("HOOPD_WORKERS") is not None and not any(
                a == "--workers" or a.startswith("--workers=") for a in extra):
            args += ["--workers", os.environ["HOOPD_WORKERS"]]
        logf = open(self.logf, "a")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        if expect_fail:
            return self.proc.wait(timeout=10)
        wait_for(lambda: self.proc.poll() is not None or self.ctl_ok("ping"), 10, "hoopd to answer")
        if self.proc.poll() is not None:
            raise AssertionError("hoopd exited %d:\n%s" % (self.proc.returncode, self.log_text()))
        return 0

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        if rc is not None:
            self.exit_codes.append(rc)
        self.proc = None
        return rc

    def sanitizer_reports(self):
        """Sanitizer findings and unclean exits of every hoopd run so far."""
        bad = [l for l in self.log_text().splitlines()
               if "ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l
               or "runtime error:" in l]
        bad += ["hoopd exited with status %d" % rc for rc in self.exit_codes if rc != 0]
        return bad

    def _remove_pins(self):
        # Tests detach what they attach; this only catches a test that died half-way.
        if os.path.isdir(os.path.join(self.pin_root, "cgroups")):
            for d in os.listdir(os.path.join(self.pin_root, "cgroups")):
                p = os.path.join(self.pin_root, "cgroups", d)
                for f in os.listdir(p):
                    os.unlink(os.path.join(p, f))
                os.rmdir(p)
        if os.path.isdir(self.pin_root):
            shutil.rmtree(self.pin_root, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.logf, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args, check=True):
        r = subprocess.run([HOOPCTL, "--control", self.control] + list(args), capture_output=True,
                           text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("hoopctl %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                                  r.stdout, r.stderr))
        return r

    def ctl_ok(self, *args):
        try:
            return self.ctl(*args, check=False).returncode == 0
        except Exception:
            return False

    def events(self):
        """Every record of the audit trail, oldest first. Closed segments are gzip'd by hoopd's
        compressor in the background: a plain segment may turn into its .gz while we look (and
        both exist for a moment), so read the plain one when it is there, else the .gz."""
        import gzip
        import re
        out = []
        d = os.path.join(self.state, "audit")
        nums = sorted({int(m.group(1)) for m in (re.fullmatch(r"seg-(\d{8})\.jsonl(\.gz)?", n)
                                                 for n in os.listdir(d)) if m})
        for n in nums:
            p = os.path.join(d, "seg-%08d.jsonl" % n)
            try:
                f = open(p, "rt", errors="replace")
            except FileNotFoundError:
                f = gzip.open(p + ".gz", "rt", errors="replace")
            with f:
                out += [json.loads(l) for l in f if l.endswith("\n")]
        return out

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def metrics(self):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            return r.read().decode()


class Cgroup:
    def __init__(self, cleanup, name):
        self.path = os.path.join(cgroup2_mount(), "hoop-test-%d" % os.getpid(), name)
        os.makedirs(self.path, exist_ok=True)
        cleanup.push(self.remove)

    def remove(self):
        # Move stragglers out (kill them: they are ours), then remove the directory and parent.
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            pids = []
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        wait_for(lambda: not open(os.path.join(self.path, "cgroup.procs")).read().strip(), 5,
                 "cgroup to empty")
        os.rmdir(self.path)
        try:
            os.rmdir(os.path.dirname(self.path))
        except OSError:
            pass

    def cmd(self, argv, netns=None):
        """argv run inside this cgroup (and netns): the shell joins, then execs argv."""
        # Join the cgroup first: `ip netns exec` remounts /sys, hiding the cgroup mount.
        if netns:
            argv = ["ip", "netns", "exec", netns] + list(argv)
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path] + list(argv)

    def run(self, argv, netns=None, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(self.cmd(argv, netns), **kw)

    def popen(self, argv, netns=None, **kw):
        return subprocess.Popen(self.cmd(argv, netns), **kw)


class Netns:
    """A network namespace joined to the host by a veth pair on 198.18.0.0/15."""

    def __init__(self, cleanup, name, host_ip, ns_ip, prefix=30):
        self.name = name
        self.host_if = name[:10] + "h"
        self.ns_if = name[:10] + "n"
        self.host_ip, self.ns_ip = host_ip, ns_ip
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        sh("ip netns add %s" % name)
        cleanup.push(sh, "ip netns del %s" % name)
        sh("ip link add %s type veth peer name %s" % (self.host_if, self.ns_if))
        cleanup.push(lambda: subprocess.run(["ip", "link", "del", self.host_if], capture_output=True))
        sh("ip link set %s netns %s" % (self.ns_if, name))
        sh("ip addr add %s/%d dev %s" % (host_ip, prefix, self.host_if))
        sh("ip link set %s up" % self.host_if)
        sh("ip -n %s addr add %s/%d dev %s" % (name, ns_ip, prefix, self.ns_if))
        sh("ip -n %s link set %s up" % (name, self.ns_if))
        sh("ip -n %s link set lo up" % name)


def sh(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("%s: %s" % (cmd, r.stderr.strip()))
    return r.stdout


def as_user(user, argv):
    """argv as another user: runuser, or for the image's binaries that user of the image."""
    if IN_IMAGE:
        return ["env", "HOOP_IMAGE_USER=" + user] + list(argv)
    return ["runuser", "-u", user, "--"] + list(argv)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def attach_agents(ctx, owner, name="agents", **attach_args):
    """A fresh agent cgroup attached to ctx.hd with an owner; detached again at clean-up."""
    cg = Cgroup(ctx.cleanup, name)
    ctx.cleanup.push(lambda: ctx.hd.proc and ctx.hd.ctl("detach", "--cgroup", cg.path, check=False))
    ctx.hd.ctl("attach", "--cgroup", cg.path, "--owner", owner)
    return cg


def teardown(ctx):
    """Undo everything a suite's setup and tests pushed onto ctx.cleanup."""
    if ctx:
        ctx.cleanup.run()


def check_clean_stop(hd, cgroup_path):
    """Detach, stop hoopd, and fail on an unclean exit or any sanitizer report of any run:
    the last test of every suite (with the sanitizer build this is where ASan, UBSan and
    LeakSanitizer findings surface)."""
    hd.ctl("detach", "--cgroup", cgroup_path, check=False)
    check(hd.stop() in (0, None), "hoopd did not exit cleanly")
    bad = hd.sanitizer_reports()
    check(not bad, "hoopd reported:\n" + "\n".join(bad[:20]))


def run_tests(tests, setup, teardown, only=None):
    """Run test functions in order with a shared context; print one summary line."""
    passed = failed = 0
    failures = []
    ctx = None
    try:
        ctx = setup()
        for t in tests:
            name = t.__name__
            if only and not any(o in name for o in only):
                continue
            t0 = time.time()
            try:
                t(ctx)
                passed += 1
                log("PASS %s (%.1fs)" % (name, time.time() - t0))
            except Exception:
                failed += 1
                failures.append(name)
                log("FAIL %s (%.1fs)\n%s" % (name, time.time() - t0, traceback.format_exc()))
                for h in getattr(ctx, "hoopds", []):
                    log("---- hoopd log (last 40 lines) ----\n" + "\n".join(h.log_text().splitlines()[-40:]))
    except Exception:
        failed += 1
        log("FAIL setup\n" + traceback.format_exc())
        if ctx is None:
            # setup raised before returning its context: undo what it had made (a leaked
            # namespace on 198.18.0.0/15 breaks every later run's agents in namespaces).
            for c in reversed(Cleanup.every):
                c.run()
    finally:
        try:
            teardown(ctx)
        except Exception:
            failed += 1
            log("FAIL teardown\n" + traceback.format_exc())
    if failures:
        log("failed: " + ", ".join(failures))
    print("e2e: %d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0
