#!/usr/bin/python3
"""The node image (make image) as built: what it holds beside its base, and the DaemonSet's pod
run from it exactly as deploy/daemonset.yaml says (command, args, mounts, capabilities, probes,
preStop hook, the policy-reloader sidecar, the check-bpffs init container) by tests/image/pod.py,
with a real PostgreSQL and a psql agent on the host going through it.

Run by tests/image/with-rootfs.sh, which mounts the image and its base (HOOP_IMAGE,
HOOP_IMAGE_ROOTFS, HOOP_IMAGE_BASE_ROOTFS):

  tests/image/with-rootfs.sh hoop:VERSION-COMMIT tests/image/test_image.py [NAME-SUBSTRING ...]
"""
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from hooptest import (ROOT, Cgroup, Cleanup, Postgres, check, children, log, proc_status, run_tests, sh,  # noqa: E402
                      wait_for)
sys.path.insert(0, HERE)
from pod import CAP_NUMBERS  # noqa: E402

POD = os.path.join(HERE, "pod.py")
IMAGE = os.environ.get("HOOP_IMAGE", "")
ROOTFS = os.environ.get("HOOP_IMAGE_ROOTFS", "")
BASE = os.environ.get("HOOP_IMAGE_BASE_ROOTFS", "")
OWNER = "ivy@example.org"
SSN = "123-45-6789"


class Ctx:
    pass


def daemonset():
    with open(os.path.join(ROOT, "deploy", "daemonset.yaml")) as f:
        return [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "DaemonSet"][0]


def container(ds, name):
    spec = ds["spec"]["template"]["spec"]
    return [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name][0]


def version():
    with open(os.path.join(ROOT, "user", "hoopd", "core", "daemon.h")) as f:
        return re.search(r'#define HOOPD_VERSION "([^"]+)"', f.read()).group(1)


def setup():
    check(IMAGE and os.path.isdir(os.path.join(ROOTFS, "usr")) and os.path.isdir(os.path.join(BASE, "usr")),
          "run me through tests/image/with-rootfs.sh IMAGE")
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.ds = daemonset()
    ctx.pg = Postgres(ctx.cleanup)
    ctx.pg.psql_direct("create table patients (id int, ssn text); insert into patients values (1, '%s')" % SSN)
    return ctx


def teardown(ctx):
    if ctx:
        ctx.cleanup.run()


# ---- what the image holds -------------------------------------------------------------------

def tree(root):
    """path -> what identifies the entry: type, mode, owner and (files) size and mtime, (links)
    target. Directories by type, mode and owner only: their mtime changes with any entry."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            key = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if stat.S_ISREG(st.st_mode):
                key += (st.st_size, int(st.st_mtime))
            elif stat.S_ISLNK(st.st_mode):
                key += (os.readlink(p),)
            out["/" + os.path.relpath(p, root)] = key
    return out


def packages(root):
    with open(os.path.join(root, "var/lib/dpkg/status")) as f:
        text = f.read()
    out = set()
    for block in text.split("\n\n"):
        m = re.search(r"^Package: (\S+)", block, re.M)
        if m and re.search(r"^Status: install ok installed", block, re.M):
            out.add(m.group(1))
    return out


def usr_merged(path):
    # The image's /bin, /sbin and /lib* are links into /usr; dpkg lists some files by the old names.
    m = re.match(r"^/(bin|sbin|lib|lib32|lib64|libx32)(/.*)?$", path)
    return "/usr" + path if m else path


def package_files(root, pkg):
    out = set()
    info = os.path.join(root, "var/lib/dpkg/info")
    for n in (pkg + ".list", pkg + ":amd64.list"):
        p = os.path.join(info, n)
        if os.path.exists(p):
            with open(p) as f:
                out |= {usr_merged(l.strip()) for l in f if l.strip() not in ("", "/.")}
    return out


def dockerfile_copies():
    """(sources, destination) of each COPY of the Dockerfile's last stage."""
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        last = re.split(r"^FROM ", f.read(), flags=re.M)[-1]
    out = []
    for line in re.findall(r"^COPY (.*)$", last, re.M):
        words = [w for w in line.split() if not w.startswith("--")]
        out.append((words[:-1], words[-1]))
    return out


# Written by dpkg, apt and ldconfig when packages are installed: bookkeeping the image needs (dpkg
# -l, ld.so). Anything else apt leaves (lists, caches, logs) is not needed.
BOOKKEEPING = re.compile(r"^(/var/lib/dpkg/(status|status-old|available|diversions|statoverride|triggers/.*"
                         r"|lock.*|info/[^/]+)|/var/lib/apt/extended_states|/etc/ld\.so\.cache"
                         r"|/var/cache/ldconfig/aux-cache|/var/cache/debconf/(config|templates)\.dat(-old)?"
                         r"|/etc/alternatives/[^/]+|/var/lib/dpkg/alternatives/[^/]+)$")
# The hoop system user the engine workers run as (deploy/Dockerfile): the base's lines and one more.
USER_FILES = {"/etc/passwd": "hoop:x:999:999:hoop engine workers:/nonexistent:/usr/sbin/nologin",
              "/etc/group": "hoop:x:999:"}


def user_added(base, p):
    with open(os.path.join(BASE, p.lstrip("/"))) as f:
        before = f.read().splitlines()
    with open(os.path.join(ROOTFS, p.lstrip("/"))) as f:
        after = f.read().splitlines()
    return after == before + [USER_FILES[p]]


# Left empty by buildah's RUN (it mounts its own there); a runtime mounts the pod's over them.
ENGINE_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
# What a runtime image never needs; named so that a failure says what it is.
JUNK = [
    (r"^/var/lib/apt/lists/.", "apt lists"),
    (r"^/var/cache/apt/.", "apt's cache"),
    (r"^/var/log/.", "logs of the build"),
    (r"^/usr/include/|\.h$|^/usr/lib/gcc", "headers or the compiler's files"),
    (r"/(gcc|cc|c\+\+|clang|ld|as|make|pkg-config|bpftool)(-[0-9.]+)?$", "build tools"),
    (r"^/(root|tmp|src|var/tmp)/.", "leftovers of the build"),
    (r"/__pycache__/|\.pyc$|^/root/\.cache/", "caches"),
]


def test_image_holds_only_what_it_needs(ctx):
    base, img = tree(BASE), tree(ROOTFS)
    added = sorted(p for p in img if p not in base)
    changed = sorted(p for p in img if p in base and img[p] != base[p])
    removed = sorted(p for p in base if p not in img)
    new_pkgs = packages(ROOTFS) - packages(BASE)
    owned = set()
    for p in new_pkgs:
        owned |= package_files(ROOTFS, p)
    # The Dockerfile's COPYs, each file identical to what the tree or the build has.
    copied = {}
    for srcs, dst in dockerfile_copies():
        for s in srcs:
            src = s.replace("/src/", "", 1) if s.startswith("/src/") else s
            full = os.path.join(ROOT, src)
            if os.path.isdir(full):
                for d, _, files in os.walk(full):
                    for n in files:
                        rel = os.path.relpath(os.path.join(d, n), full)
                        copied[os.path.join(dst, rel)] = os.path.join(d, n)
            else:
                copied[os.path.join(dst, os.path.basename(src))] = full
    parents = {os.path.dirname(p) for p in copied}
    parents |= {os.path.dirname(p) for p in parents}
    unexpected, why = [], {}
    for p in added + changed:
        for rx, what in JUNK:
            if re.search(rx, p) and p not in copied:
                why[p] = what
        if p in why:
            unexpected.append(p)
        elif p in USER_FILES and p in changed and user_added(base, p):
            continue
        elif p in ENGINE_FILES and img[p][0] == stat.S_IFREG and img[p][4] == 0:
            continue
        elif p in copied or p in owned or BOOKKEEPING.match(p) or (p in parents and img[p][0] == stat.S_IFDIR):
            continue
        else:
            unexpected.append(p)
    # Removing what apt left is fine; removing anything else from the base is not.
    gone = [p for p in removed if not re.match(r"^/var/(lib/apt/lists|cache/apt|log)/", p)]
    bad_pkgs = sorted(p for p in new_pkgs if re.search(r"-dev$|^(gcc|cpp|g\+\+|clang|llvm|make|binutils"
                                                        r"|pkg-config|bpftool|libc6-dev|linux-libc-dev)", p))
    log("  image vs base: %d added, %d changed, %d removed; %d new packages: %s"
        % (len(added), len(changed), len(removed), len(new_pkgs), " ".join(sorted(new_pkgs))))
    log("  added outside packages: " + " ".join(p for p in added if p not in owned and not
                                                  p.startswith("/var/lib/dpkg/info/")))
    check(not bad_pkgs, "build packages in the image: %s" % " ".join(bad_pkgs))
    check(not unexpected, "unexpected in the image:\n" + "\n".join(
        "  %s (%s)" % (p, why.get(p, "owned by no package it installs, copied by no COPY")) for p in unexpected[:40]))
    check(not gone, "files of the base the image removed: %s" % " ".join(gone[:20]))
    for dst, src in copied.items():
        st = os.stat(os.path.join(ROOTFS, dst.lstrip("/")))
        if "/build/" in src:  # built in the image's own build stage
            check(st.st_mode & 0o111, "%s is not executable" % dst)
            continue
        with open(os.path.join(ROOTFS, dst.lstrip("/")), "rb") as a, open(src, "rb") as b:
            check(a.read() == b.read(), "%s in the image is not this tree's %s" % (dst, src))
        check(bool(st.st_mode & 0o111) == os.access(src, os.X_OK), "%s: mode %o" % (dst, st.st_mode))


def image_size_mb():
    """Its layers, uncompressed, in MB as `make image` and the engines print it."""
    out = subprocess.run(["buildah", "inspect", "--type", "image", "--format", "{{.Manifest}}", IMAGE],
                         capture_output=True, text=True, check=True).stdout
    return sum(l["size"] for l in json.loads(out)["layers"]) / 1e6


def test_size_is_what_docs_deploy_md_says(ctx):
    with open(os.path.join(ROOT, "docs", "deploy.md")) as f:
        m = re.search(r"The image is about (\d+) MB", f.read())
    check(m, "docs/deploy.md does not say the image's size ('The image is about N MB')")
    said, size = int(m.group(1)), image_size_mb()
    log("  %s: %.0f MB (docs/deploy.md: %d MB)" % (IMAGE, size, said))
    check(abs(size - said) <= max(5, said * 0.1), "the image is %.0f MB, docs/deploy.md says %d MB" % (size, said))


def test_tag_and_manifest_name_this_version(ctx):
    v = version()
    check(re.fullmatch(r"(localhost/)?hoop:%s-[0-9a-f]{7,40}(-dirty)?|(localhost/)?hoop:%s-nogit(-dirty)?"
                       % (re.escape(v), re.escape(v)), IMAGE), "tag %r does not carry %s and a commit" % (IMAGE, v))
    spec = ctx.ds["spec"]["template"]["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        check(c["image"] == "hoop:" + v, "container %s runs %s, make image tags hoop:%s" % (c["name"], c["image"], v))
    r = subprocess.run([POD, "exec", "hoopd", "--", "hoopd", "--version"], capture_output=True, text=True,
                       env=dict(os.environ, HOOP_IMAGE_ROOTFS=ROOTFS), timeout=30)
    check(r.returncode == 0 and r.stdout.strip() == "hoopd " + v, "the image's hoopd --version: %r %r" % (r.stdout, r.stderr))


# ---- the pod, as the manifest runs it ---------------------------------------------------------

class PodRun:
    """The DaemonSet's pod on this host: a network namespace (the sandbox), the host sides of
    its volumes in a directory of the test's own (a fresh bpffs instance for /sys/fs/bpf, so
    that its pins at the DaemonSet's --pin-root /sys/fs/bpf/hoop meet nobody else's)."""

    def __init__(self, cl, policy):
        self.cl = cl
        self.dir = tempfile.mkdtemp(prefix="hoop-pod-")
        cl.push(sh, "rm -rf " + self.dir)
        self.netns = "hoopimg%d" % (os.getpid() % 100000)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        sh("ip netns add %s && ip -n %s link set lo up" % (self.netns, self.netns))
        cl.push(sh, "ip netns del " + self.netns)
        self.vol = {n: os.path.join(self.dir, n) for n in ("run", "state", "policy", "bpffs")}
        for p in self.vol.values():
            os.mkdir(p)
        sh("mount -t bpf bpffs-hoop-image " + self.vol["bpffs"])
        cl.push(sh, "umount " + self.vol["bpffs"])
        configmap(self.vol["policy"], policy, 1)
        self.procs = []

    def argv(self, mode, name, rest=None, netns=True):
        a = [POD, mode, name]
        for k, v in self.vol.items():
            a += ["--volume", "%s=%s" % (k, v)]
        if netns:
            a += ["--netns", "/run/netns/" + self.netns]
        return a + (["--"] + rest if rest is not None else [])

    def run(self, name, **kw):
        """A container of the pod, started: its command and args from the manifest."""
        log_path = os.path.join(self.dir, name + ".log")
        logf = open(log_path, "a")
        p = subprocess.Popen(self.argv("run", name), stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True, **kw)
        logf.close()
        p.log_path = log_path
        self.procs.append(p)
        self.cl.push(self.kill, p)
        return p

    def kill(self, p):
        if p.poll() is None:
            p.kill()
            p.wait()

    def exec(self, name, argv, **kw):
        """kubectl exec: argv in container name of the running pod."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(self.argv("exec", name, argv), **kw)

    def probe(self, name, kind):
        c = container(daemonset(), name)
        return self.exec(name, c[kind]["exec"]["command"], timeout=c[kind].get("timeoutSeconds", 1) + 30)

    def status(self):
        r = self.exec("hoopd", ["hoopctl", "status", "--json"])
        check(r.returncode == 0, "hoopctl status in the pod: " + r.stderr)
        return json.loads(r.stdout)

    def events(self):
        d = os.path.join(self.vol["state"], "audit")
        out = []
        for n in sorted(os.listdir(d)):
            if n.endswith(".jsonl"):
                with open(os.path.join(d, n)) as f:
                    out += [json.loads(l) for l in f if l.endswith("\n")]
        return out


def configmap(path, text, gen):
    """A directory laid out as the kubelet writes a ConfigMap volume; an update is one rename."""
    ts = "..2026_01_01_00_00_%02d.%d" % (gen, gen)
    os.makedirs(os.path.join(path, ts))
    with open(os.path.join(path, ts, "policy.yaml"), "w") as f:
        f.write(text)
    os.symlink(ts, os.path.join(path, "..data_tmp"))
    os.rename(os.path.join(path, "..data_tmp"), os.path.join(path, "..data"))
    if not os.path.islink(os.path.join(path, "policy.yaml")):
        os.symlink("..data/policy.yaml", os.path.join(path, "policy.yaml"))


def configmap_policy(port, extra_port=None):
    """The policy of deploy/policy-configmap.yaml, for the test's PostgreSQL port."""
    with open(os.path.join(ROOT, "deploy", "policy-configmap.yaml")) as f:
        cm = yaml.safe_load(f)
    text = cm["data"]["policy.yaml"]
    ports = "[%d]" % port if extra_port is None else "[%d, %d]" % (port, extra_port)
    new = text.replace("ports: [5432]", "ports: " + ports)
    check(new != text, "the ConfigMap's policy has no `ports: [5432]` to point at the test's database")
    # The test's database speaks no TLS; the shipped verify-full is checked by test_hostile.py.
    tls = new.replace("upstream_tls: verify-full", "upstream_tls: disable")
    check(tls != new, "the ConfigMap's policy does not verify the database (upstream_tls)")
    return tls


def agent_psql(ctx, cg, sql):
    return cg.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-tAX", "-c", sql], timeout=20)


def test_daemonset_pod_runs_as_written(ctx):
    ds, cl = ctx.ds, Cleanup()
    spec = ds["spec"]["template"]["spec"]
    hoopd_c = container(ds, "hoopd")
    pod = None
    try:
        pod = PodRun(cl, configmap_policy(ctx.pg.port))
        # The init container passes on a node with a bpffs, and refuses one without.
        r = subprocess.run(pod.argv("run", "check-bpffs"), capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "check-bpffs on a bpffs: %d %s" % (r.returncode, r.stderr))
        tmpfs = os.path.join(pod.dir, "not-bpffs")
        os.mkdir(tmpfs)
        a = [x if not x.startswith("bpffs=") else "bpffs=" + tmpfs for x in pod.argv("run", "check-bpffs")]
        r = subprocess.run(a, capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and "not a bpffs" in r.stderr, "check-bpffs on a directory: %d %s" % (r.returncode, r.stderr))
        # hoopd: the manifest's command and args, its mounts and capabilities.
        hd = pod.run("hoopd")
        t0 = time.time()
        wait_for(lambda: hd.poll() is not None or pod.probe("hoopd", "readinessProbe").returncode == 0, 20,
                 "the readiness probe")
        check(hd.poll() is None, "hoopd exited %r:\n%s" % (hd.poll(), open(hd.log_path).read()[-3000:]))
        log("  ready after %.1fs" % (time.time() - t0))
        text = open(hd.log_path).read()
        check('"has every BPF feature' in text or "has every BPF feature" in text, "no kernel probe line:\n" + text[-2000:])
        check("lacks CAP_" not in text, "hoopd lacks a capability the manifest should grant:\n" + text[-2000:])
        caps = [l for l in open("/proc/%d/status" % hd.pid) if l.startswith("CapEff")][0].split()[1]
        want = sum(1 << CAP_NUMBERS[c] for c in hoopd_c["securityContext"]["capabilities"]["add"])
        check(int(caps, 16) == want, "hoopd runs with capabilities %s, the manifest grants %x" % (caps, want))
        check(os.stat("/proc/%d/ns/net" % hd.pid).st_ino == os.stat("/run/netns/" + pod.netns).st_ino,
              "hoopd is not in the pod's network namespace")
        # Its engine workers, once ready (a worker enters its sandbox before it takes its first
        # session, right after its first policy): the image's hoop user, no capability, a
        # seccomp filter.
        wait_for(lambda: pod.status().get("workers") and all(w["ready"] for w in pod.status()["workers"]),
                 20, "hoopd's engine workers to be ready")
        workers = children(hd.pid, b"--worker")
        check(sorted(workers) == sorted(w["pid"] for w in pod.status()["workers"]),
              "worker processes %r, status says %r" % (workers, pod.status()["workers"]))
        for w in workers:
            st = proc_status(w)
            check(st["Uid"].split() == ["999"] * 4 and int(st["CapEff"], 16) == 0 and
                  int(st["CapBnd"], 16) == 0 and st["Seccomp"].strip() == "2",
                  "worker %d: uid %s CapEff %s CapBnd %s Seccomp %s" % (
                      w, st["Uid"].strip(), st["CapEff"].strip(), st["CapBnd"].strip(), st["Seccomp"].strip()))
        check(pod.probe("hoopd", "livenessProbe").returncode == 0, "the liveness probe fails")
        # Where the manifest says: the control socket, the state, the pins.
        check(os.path.exists(os.path.join(pod.vol["run"], "hoopd.sock")), "no control socket in the run volume")
        check(os.path.isdir(os.path.join(pod.vol["bpffs"], "hoop")), "no pins at --pin-root in the bpffs volume")
        # Metrics in the pod's network, at the address the manifest's --metrics names (its
        # loopback: kubectl port-forward reaches it, other pods do not).
        args = hoopd_c.get("command", []) + hoopd_c.get("args", [])
        maddr = args[args.index("--metrics") + 1]
        mhost, _, port = maddr.rpartition(":")
        check(mhost in ("127.0.0.1", ""), "the manifest serves metrics beyond loopback: %r" % maddr)
        m = subprocess.run(["ip", "netns", "exec", pod.netns, "/usr/bin/python3", "-c",
                            "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
                            "'http://127.0.0.1:%s/metrics', timeout=5).read().decode())" % port],
                           capture_output=True, text=True, timeout=30)
        check(m.returncode == 0 and "hoop_connections_accepted_total" in m.stdout, "metrics: " + m.stderr)
        # An agent's pod (a process that lives in its cgroup before the attach), attached from
        # inside hoopd's pod as docs/deploy.md does with kubectl exec: hoopd, in a network
        # namespace of its own, listens in the agent's from then on.
        cg = Cgroup(cl, "image-agent")
        sleeper = cg.popen(["sleep", "600"])
        cl.push(lambda: (sleeper.kill(), sleeper.wait()))
        wait_for(lambda: str(sleeper.pid) in open(os.path.join(cg.path, "cgroup.procs")).read(), 5, "the agent's pod")
        r = pod.exec("hoopd", ["hoopctl", "attach", "--cgroup", cg.path, "--owner", OWNER])
        check(r.returncode == 0, "attach in the pod: " + r.stdout + r.stderr)
        host_ns = os.stat("/proc/self/ns/net").st_ino
        check(any(l["netns_inode"] == host_ns for l in pod.status()["listeners"]),
              "no listener in the agent's network namespace after attach: %r" % pod.status()["listeners"])
        cl.push(lambda: hd.poll() is None and pod.exec("hoopd", ["hoopctl", "detach", "--cgroup", cg.path]))
        r = agent_psql(ctx, cg, "select ssn from patients limit 1")  # without a LIMIT it is held
        check(r.returncode == 0, "agent psql: " + r.stderr)
        masked = r.stdout.strip()
        check(masked and masked != SSN and masked.endswith("6789"), "the ConfigMap's masking: %r" % masked)
        check(ctx.pg.psql_direct("select ssn from patients") == SSN, "the database holds the value")
        st = pod.status()
        check(st["stats"]["connections_accepted"] >= 1, "status: %r" % st["stats"])
        starts = [e for e in pod.events() if e.get("kind") == "session_start"]
        check(starts and starts[-1]["agent"].get("owner") == OWNER, "no session_start for the agent in the state volume")
        # The sidecar applies a ConfigMap update.
        rl = pod.run("policy-reloader")
        extra = 5433 if ctx.pg.port != 5433 else 5434
        wait_for(lambda: "watching" in open(rl.log_path).read() or rl.poll() is not None, 20, "the reloader to start")
        configmap(pod.vol["policy"], configmap_policy(ctx.pg.port, extra), 2)
        wait_for(lambda: [extra in t["ports"] for t in pod.status()["targets"]] == [True], 20,
                 "hoopd to apply the updated ConfigMap (reloader: %s)" % open(rl.log_path).read())
        # hoopd may answer status with the new policy before the sidecar has logged its reply
        wait_for(lambda: "reloaded" in open(rl.log_path).read(), 10,
                 "the reloader to log the reload (%s)" % open(rl.log_path).read())
        # preStop with a session open: it waits for it, then the kubelet's SIGTERM.
        p = cg.popen(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-tAX", "-c",
                      "select 'long' from pg_sleep(2)"], stdout=subprocess.PIPE, text=True)
        wait_for(lambda: pod.status()["stats"]["connections_active"] > 0, 10, "the session to open")
        r = pod.exec("hoopd", hoopd_c["lifecycle"]["preStop"]["exec"]["command"])
        check(r.returncode == 0 and "open session" in r.stdout, "preStop: %r %r" % (r.stdout, r.stderr))
        check(p.communicate(timeout=30)[0].strip() == "long", "the drained session was cut")
        hd.send_signal(signal.SIGTERM)
        rc = hd.wait(timeout=spec.get("terminationGracePeriodSeconds", 30))
        check(rc == 0, "hoopd exited %d on SIGTERM" % rc)
        # Fail closed while the pod is away; the next pod's hoopd serves the agent, no re-attach.
        r = agent_psql(ctx, cg, "select 'around'")
        check(r.returncode != 0 and "around" not in r.stdout, "the agent reached the database around a stopped hoopd")
        hd = pod.run("hoopd")
        wait_for(lambda: hd.poll() is not None or pod.probe("hoopd", "readinessProbe").returncode == 0, 20,
                 "the readiness probe after a restart")
        r = agent_psql(ctx, cg, "select 'back'")
        check(r.stdout.strip() == "back", "after the restart: %r %r" % (r.stdout, r.stderr))
        r = pod.exec("hoopd", ["hoopctl", "detach", "--cgroup", cg.path])
        check(r.returncode == 0, "detach: " + r.stderr)
        hd.send_signal(signal.SIGTERM)
        check(hd.wait(timeout=30) == 0, "hoopd did not stop cleanly")
        # (A new bpffs holds the kernel's own maps.debug and progs.debug: only hoop's is checked.)
        pins = os.path.join(pod.vol["bpffs"], "hoop")
        check(not os.path.exists(pins), "pins left with nothing attached under %s" % pins)
    except Exception:
        for p in getattr(pod, "procs", []):
            with open(p.log_path, errors="replace") as f:
                log("---- %s (last 40 lines) ----\n%s" % (os.path.basename(p.log_path),
                                                         "\n".join(f.read().splitlines()[-40:])))
        raise
    finally:
        cl.run()


TESTS = [
    test_image_holds_only_what_it_needs,
    test_size_is_what_docs_deploy_md_says,
    test_tag_and_manifest_name_this_version,
    test_daemonset_pod_runs_as_written,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("image tests need root (chroot, mounts, BPF)", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
