#!/usr/bin/python3
"""End-to-end tests of deployment: the manifests under deploy/ say what hoopd needs and work
as written (hoopd runs with exactly the DaemonSet's capabilities, its helper scripts reload and
drain a real hoopd), the kernel probe at start, and `hoopctl attach --pod/--container` on cgroup
trees laid out like the kubelet's (systemd and cgroupfs drivers, every QoS class, a nested
cgroup root) under the real cgroup2 mount, with psql agents going through hoopd.

The trees live in a directory of the test's own (HOOP_KUBEPODS_ROOT points the search there);
everything is removed at the end, failure or not.

Usage (as root): tests/e2e/test_deploy.py [NAME-SUBSTRING ...]
"""
import configparser
import errno
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hooptest  # noqa: E402
from hooptest import (BUILD, HOOPCTL, HOOPD, ROOT, Cleanup, Hoopd, Netns, Postgres,  # noqa: E402
                      cgroup2_mount, check, check_clean_stop, free_port, log, run_tests, sh,
                      wait_for)

DEPLOY = os.path.join(ROOT, "deploy")
PY = "/usr/bin/python3"
OWNER = "erin@example.org"
# The image's paths for what the Dockerfile copies from the repository.
IMAGE_BIN = "/usr/local/bin/"
IMAGE_LIB = "/usr/local/lib/hoop/"
POD_HOST_IP = "198.18.0.13"

# Pod UIDs and container ids, in the shapes the kubelet and the runtimes use.
U_BURST = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
U_BEST = "0a1b2c3d-1111-4222-8333-944455566677"
U_GUAR = "f00dbabe-2222-4333-8444-a55566677788"
U_FS_BURST = "11111111-aaaa-4bbb-8ccc-dddddddddddd"
U_FS_BEST = "22222222-aaaa-4bbb-8ccc-eeeeeeeeeeee"
U_FS_GUAR = "33333333-aaaa-4bbb-8ccc-ffffffffffff"
U_KIND = "44444444-aaaa-4bbb-8ccc-000000000000"
STATIC_POD = "9f86d081884c7d659a2feaa0c55ad015"  # a static pod's UID is its config hash


def cid(c):
    return (c * 64)[:64]


C_BURST, C_PAUSE, C_BEST, C_GUAR = cid("a1"), cid("a2"), cid("b1"), cid("c1")
C_FS_BURST, C_FS_BEST, C_FS_GUAR, C_KIND = cid("d1"), cid("e1"), cid("f1"), cid("0a")
C_TWIN1, C_TWIN2 = "deadbeef" + cid("1")[:56], "deadbeef" + cid("2")[:56]


class Ctx:
    pass


def policy_text(port):
    return "version: 1\ntargets:\n  - name: pg\n    protocol: postgres\n    ports: [%d]\n" % port


def systemd_uid(u):
    return u.replace("-", "_")


class KubeTree:
    """Directories under the real cgroup2 mount named exactly as the kubelet names them."""

    def __init__(self, cleanup, tag):
        self.root = os.path.join(cgroup2_mount(), "hoop-deploy-%d-%s" % (os.getpid(), tag))
        os.makedirs(self.root)
        cleanup.push(self.remove)

    def add(self, rel):
        p = os.path.join(self.root, rel)
        os.makedirs(p, exist_ok=True)
        return p

    def remove(self):
        dirs = sorted((d for d, _, _ in os.walk(self.root)), key=len, reverse=True)
        for d in dirs:
            try:
                pids = open(os.path.join(d, "cgroup.procs")).read().split()
            except OSError:
                pids = []
            for p in pids:
                try:
                    os.kill(int(p), signal.SIGKILL)
                except OSError:
                    pass
        for d in dirs:
            wait_for(lambda: not open(os.path.join(d, "cgroup.procs")).read().strip(), 5,
                     "cgroup %s to empty" % d)
            os.rmdir(d)


def build_trees(ctx):
    # systemd driver: QoS slices, Guaranteed pods right under kubepods.slice, three runtimes.
    sd = ctx.sd = KubeTree(ctx.cleanup, "sd")
    base = "kubepods.slice"
    burst = "%s/kubepods-burstable.slice/kubepods-burstable-pod%s.slice" % (base, systemd_uid(U_BURST))
    best = "%s/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice" % (base, systemd_uid(U_BEST))
    guar = "%s/kubepods-pod%s.slice" % (base, systemd_uid(U_GUAR))
    static = "%s/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice" % (base, STATIC_POD)
    ctx.p = {
        "sd_burst": sd.add(burst),
        "sd_burst_ctr": sd.add(burst + "/cri-containerd-%s.scope" % C_BURST),
        "sd_burst_pause": sd.add(burst + "/cri-containerd-%s.scope" % C_PAUSE),
        "sd_best": sd.add(best),
        "sd_best_ctr": sd.add(best + "/crio-%s.scope" % C_BEST),
        "sd_guar": sd.add(guar),
        "sd_guar_ctr": sd.add(guar + "/docker-%s.scope" % C_GUAR),
        "sd_static": sd.add(static),
    }
    sd.add(best + "/crio-conmon-%s.scope" % C_BEST)  # CRI-O's monitor: never a match
    sd.add(static + "/cri-containerd-%s.scope" % C_TWIN1)
    sd.add(burst + "/cri-containerd-%s.scope" % C_TWIN2)
    # cgroupfs driver: kubepods/<qos>/pod<uid>/<id>, Guaranteed as kubepods/pod<uid>.
    fs = ctx.fs = KubeTree(ctx.cleanup, "fs")
    ctx.p.update({
        "fs_burst": fs.add("kubepods/burstable/pod%s" % U_FS_BURST),
        "fs_burst_ctr": fs.add("kubepods/burstable/pod%s/%s" % (U_FS_BURST, C_FS_BURST)),
        "fs_best": fs.add("kubepods/besteffort/pod%s" % U_FS_BEST),
        "fs_best_ctr": fs.add("kubepods/besteffort/pod%s/%s" % (U_FS_BEST, C_FS_BEST)),
        "fs_guar": fs.add("kubepods/pod%s" % U_FS_GUAR),
        "fs_guar_ctr": fs.add("kubepods/pod%s/%s" % (U_FS_GUAR, C_FS_GUAR)),
    })
    # A kubelet with a cgroup root of its own (kind): kubelet.slice/kubelet-kubepods.slice.
    kind = ctx.kind = KubeTree(ctx.cleanup, "kind")
    kpod = ("kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
            "kubelet-kubepods-besteffort-pod%s.slice" % systemd_uid(U_KIND))
    ctx.p["kind_pod"] = kind.add(kpod)
    ctx.p["kind_ctr"] = kind.add(kpod + "/cri-containerd-%s.scope" % C_KIND)
    # Two drivers' leftovers under one root: the same pod UID twice.
    dup = ctx.dup = KubeTree(ctx.cleanup, "dup")
    dup.add("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice" % systemd_uid(U_BURST))
    dup.add("kubepods/burstable/pod%s" % U_BURST)
    ctx.empty = KubeTree(ctx.cleanup, "empty")
    ctx.empty.add("system.slice/containerd.service")


def setup():
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.ds = load_daemonset()
    n = os.getpid() % 100000
    # An agent namespace (an unprivileged pod) on its own /30 of 198.18.0.0/15.
    ctx.ns = Netns(ctx.cleanup, "htd%d" % n, POD_HOST_IP, "198.18.0.14")
    ctx.pg = Postgres(ctx.cleanup, listen="127.0.0.1,::1," + POD_HOST_IP)
    ctx.hd = Hoopd(ctx.cleanup, policy_text(ctx.pg.port), tag="deploy")
    ctx.hoopds = [ctx.hd]
    ctx.hd.start()
    build_trees(ctx)
    return ctx


def teardown(ctx):
    if ctx:
        os.environ.pop("HOOP_KUBEPODS_ROOT", None)
        ctx.cleanup.run()


# ---- the manifests -------------------------------------------------------------------------

def manifests():
    out = []
    for p in sorted(glob.glob(os.path.join(DEPLOY, "*.yaml")) + glob.glob(os.path.join(DEPLOY, "*.yml"))):
        with open(p) as f:
            out += [(p, d) for d in yaml.safe_load_all(f) if d is not None]
    return out


def load_daemonset():
    ds = [d for _, d in manifests() if d.get("kind") == "DaemonSet"]
    check(len(ds) == 1, "expected one DaemonSet under deploy/, found %d" % len(ds))
    return ds[0]


def container(ds, name):
    for c in ds["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError("no container %r in the DaemonSet" % name)


def arg_value(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def hoopd_flags():
    out = subprocess.run([HOOPD, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"--[a-z][a-z-]+", out))


def caps_of(c):
    return c.get("securityContext", {}).get("capabilities", {})


def mounts_by_path(c):
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}


def volumes(ds):
    return {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}


def image_file(path):
    """The repository file the Dockerfile puts at an image path (scripts and binaries)."""
    if path.startswith(IMAGE_LIB):
        return os.path.join(DEPLOY, path[len(IMAGE_LIB):])
    if path.startswith(IMAGE_BIN) or "/" not in path:
        return os.path.join(BUILD, os.path.basename(path))
    return None


def test_every_manifest_parses_with_kind_name_namespace(ctx):
    docs = manifests()
    kinds = sorted(d["kind"] for _, d in docs)
    check({"Namespace", "ServiceAccount", "DaemonSet", "ConfigMap"} <= set(kinds), "kinds %r" % kinds)
    for p, d in docs:
        check(d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"),
              "%s: a document without apiVersion, kind or metadata.name" % p)
        if d["kind"] != "Namespace":
            check(d["metadata"].get("namespace") == "hoop-system",
                  "%s: %s %s is not in hoop-system" % (p, d["kind"], d["metadata"]["name"]))
    labels = ctx.ds["spec"]["template"]["metadata"]["labels"]
    sel = ctx.ds["spec"]["selector"]["matchLabels"]
    check(all(labels.get(k) == v for k, v in sel.items()), "selector %r does not select %r" % (sel, labels))


def test_daemonset_grants_exactly_what_hoopd_needs(ctx):
    spec = ctx.ds["spec"]["template"]["spec"]
    c = container(ctx.ds, "hoopd")
    sc = c["securityContext"]
    check(spec.get("hostPID") is True, "hostPID must be true: hoopd reads /proc/PID of host pids")
    check(not spec.get("hostNetwork"), "hostNetwork is not needed (hoopd setns()s into each pod)")
    check(not sc.get("privileged"), "the hoopd container must not be privileged")
    check(caps_of(c).get("drop") == ["ALL"], "capabilities.drop must be [ALL]: %r" % caps_of(c))
    check(sorted(caps_of(c).get("add", [])) == ["BPF", "NET_ADMIN", "SETGID", "SETPCAP", "SETUID",
                                                 "SYS_ADMIN", "SYS_PTRACE"],
          "capabilities.add %r" % caps_of(c).get("add"))
    check(sc.get("runAsUser") == 0, "hoopd's control socket answers uid 0: runAsUser must be 0")
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(spec.get("automountServiceAccountToken") is False, "hoopd needs no API token")
    # Every host path hoopd uses, mounted where hoopd looks for it.
    vols = volumes(ctx.ds)
    mounts = mounts_by_path(c)
    for host, why in (("/sys/fs/bpf", "pins"), ("/sys/fs/cgroup", "cgroups"),
                      ("/run/hoop", "control socket"), ("/var/lib/hoop", "state")):
        m = mounts.get(host)
        check(m, "%s (%s) is not mounted into hoopd" % (host, why))
        hp = vols[m["name"]].get("hostPath", {})
        check(hp.get("path") == host, "%s is mounted from %r, not the host's %s" % (host, hp, host))
        check("subPath" not in m, "%s must not be a subPath mount" % host)
    for host in ("/sys/fs/bpf", "/sys/fs/cgroup"):
        check(mounts[host].get("mountPropagation") == "HostToContainer",
              "%s needs mountPropagation HostToContainer" % host)
    check(mounts["/sys/fs/cgroup"].get("readOnly") is True, "hoopd never writes to cgroups")
    check(not mounts["/sys/fs/bpf"].get("readOnly"), "hoopd pins into /sys/fs/bpf")
    # hoopd's flags point at those mounts.
    cmd, args = c["command"], c.get("args", [])
    check(cmd[-1] == IMAGE_BIN + "hoopd", "the command must end in %shoopd: %r" % (IMAGE_BIN, cmd))
    check(arg_value(args, "--state-dir") == "/var/lib/hoop", "--state-dir %r" % arg_value(args, "--state-dir"))
    check(os.path.dirname(arg_value(args, "--control")) == "/run/hoop", "--control")
    check((arg_value(args, "--pin-root") or "/sys/fs/bpf/hoop").startswith("/sys/fs/bpf/"), "--pin-root")
    unknown = {a.split("=")[0] for a in args if a.startswith("--")} - hoopd_flags()
    check(not unknown, "flags hoopd --help does not know: %r" % unknown)


def test_policy_configmap_mounted_where_policy_points(ctx):
    c = container(ctx.ds, "hoopd")
    pol = arg_value(c["args"], "--policy")
    check(pol, "hoopd has no --policy")
    m = mounts_by_path(c).get(os.path.dirname(pol))
    check(m, "nothing is mounted at %s, where --policy points" % os.path.dirname(pol))
    check("subPath" not in m, "a subPath ConfigMap mount never updates: hot reload would not work")
    cm_name = volumes(ctx.ds)[m["name"]].get("configMap", {}).get("name")
    cms = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "ConfigMap"}
    check(cm_name in cms, "the policy volume names ConfigMap %r, which deploy/ does not have" % cm_name)
    key = os.path.basename(pol)
    text = cms[cm_name]["data"].get(key)
    check(text is not None, "ConfigMap %s has no key %s" % (cm_name, key))
    with open(os.path.join(ROOT, "policies", "hipaa-agents.yaml")) as f:
        check(text == f.read(), "deploy/policy-configmap.yaml is out of date with "
              "policies/hipaa-agents.yaml: run deploy/gen-policy-configmap.sh > deploy/policy-configmap.yaml")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        r = subprocess.run([HOOPCTL, "policy", "check", f.name], capture_output=True, text=True)
    check(r.returncode == 0, "the ConfigMap's policy does not load: " + r.stdout + r.stderr)
    # The reloader sidecar sees the same file and hoopd's control socket.
    rl = container(ctx.ds, "policy-reloader")
    env = {e["name"]: e.get("value") for e in rl.get("env", [])}
    check(env.get("HOOP_POLICY") == pol, "the reloader watches %r, hoopd reads %r" % (env.get("HOOP_POLICY"), pol))
    check(env.get("HOOP_CONTROL") == arg_value(c["args"], "--control"), "reloader's HOOP_CONTROL")
    rm = mounts_by_path(rl)
    check(rm.get(os.path.dirname(pol), {}).get("name") == m["name"], "the reloader lacks the policy volume")
    check("/run/hoop" in rm, "the reloader lacks /run/hoop (the control socket)")
    check(caps_of(rl).get("drop") == ["ALL"] and not caps_of(rl).get("add"), "the reloader needs no capability")
    check(os.access(image_file(rl["command"][0]), os.X_OK), "reloader script %r" % rl["command"])


def test_prestop_does_not_detach(ctx):
    c = container(ctx.ds, "hoopd")
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    text = " ".join(cmd)
    script = image_file(cmd[0])
    if script and os.path.exists(script):
        with open(script) as f:
            text += "\n" + "\n".join(l for l in f.read().splitlines() if not l.lstrip().startswith("#"))
    for bad in ("detach", "rm ", "unlink", "/sys/fs/bpf", "bpftool"):
        check(bad not in text, "the preStop hook would undo fail-closed (%r): %s" % (bad, cmd))
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    grace = ctx.ds["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    check(int(env.get("HOOP_DRAIN_SECONDS", "20")) + 10 <= grace,
          "terminationGracePeriodSeconds %d leaves hoopd no time after the drain" % grace)


def owning_package(lib):
    """The Debian package of a library, whichever spelling dpkg registered (merged /usr)."""
    tried = []
    for p in (lib, os.path.realpath(lib)):
        for q in (p, p[4:] if p.startswith("/usr/") else "/usr" + p):
            r = subprocess.run(["dpkg", "-S", q], capture_output=True, text=True)
            if r.returncode == 0:
                return r.stdout.split(":")[0]
            tried.append(q)
    raise AssertionError("no Debian package owns %s (tried %s)" % (lib, ", ".join(tried)))


def with_dependencies(pkgs):
    """The packages apt installs for pkgs: they and, recursively, what they depend on (read from
    this machine's dpkg database, the same Debian 12 packages as the image's)."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p],
                           capture_output=True, text=True)
        for alt in r.stdout.split(","):
            name = alt.split("|")[0].strip().split(" ")[0].split(":")[0]
            if name:
                todo.append(name)
    return seen


def test_dockerfile_ships_what_the_manifest_runs(ctx):
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    check(len(stages) == 2, "expected a build and a runtime stage, got %d" % len(stages))
    check(all(s.startswith("debian:12") for s in stages), "both stages must be debian:12")

    def apt(stage):
        m = re.search(r"apt-get install ([^&]*)", stage)
        return {w for w in m.group(1).split() if not w.startswith("-")} if m else set()
    with open(os.path.join(ROOT, "scripts", "deps.sh")) as f:
        build = set(re.search(r'BUILD="([^"]*)"', f.read()).group(1).split())
    check(apt(stages[0]) == build, "builder packages differ from scripts/deps.sh BUILD: %r" %
          (apt(stages[0]) ^ build))
    check(re.search(r"^RUN make", stages[0], re.M), "the builder does not run make")
    # Every library the binaries link against comes from a package the runtime installs.
    runtime = apt(stages[1])
    need = set()
    # The image is built without sanitizers, whatever HOOP_BUILD says.
    for b in (os.path.join(ROOT, "build", "hoopd"), os.path.join(ROOT, "build", "hoopctl")):
        for lib in re.findall(r"=> (/\S+)", subprocess.run(["ldd", b], capture_output=True, text=True).stdout):
            need.add(owning_package(lib))
    missing = need - with_dependencies(runtime) - {"libc6"}
    check(not missing, "the runtime stage lacks %r" % missing)
    check(not (runtime & {"gcc", "clang", "make", "libbpf-dev"}), "build tools in the runtime image")
    copies = re.findall(r"^COPY (.*)$", stages[1], re.M)
    joined = " ".join(copies)
    for src in ("/src/build/hoopd", "/src/build/hoopctl", "policies/", "deploy/policy-reloader.sh",
                "deploy/prestop.sh"):
        check(src in joined, "the runtime image does not get %s" % src)
    # What the DaemonSet runs from the image is there.
    ds = ctx.ds
    for c in ds["spec"]["template"]["spec"]["containers"]:
        for path in [c.get("command", [""])[0], c["command"][-1]] + \
                (c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])[:1]):
            if path.startswith(IMAGE_LIB):
                check(os.path.basename(path) in joined, "the image lacks %s" % path)
    for s in ("policy-reloader.sh", "prestop.sh", "gen-policy-configmap.sh"):
        check(os.access(os.path.join(DEPLOY, s), os.X_OK), "deploy/%s is not executable" % s)
        r = subprocess.run(["sh", "-n", os.path.join(DEPLOY, s)], capture_output=True, text=True)
        check(r.returncode == 0, "deploy/%s: %s" % (s, r.stderr))


def test_systemd_unit_verifies(ctx):
    unit = os.path.join(DEPLOY, "hoopd.service")
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read(unit)
    svc = cp["Service"]
    check(re.fullmatch(r"/bin/kill -HUP \$MAINPID", svc["ExecReload"]), "ExecReload=%s" % svc["ExecReload"])
    start = shlex.split(svc["ExecStart"])
    unknown = {a for a in start[1:] if a.startswith("--")} - hoopd_flags()
    check(not unknown, "ExecStart flags hoopd does not know: %r" % unknown)
    caps = sorted(c[len("CAP_"):] for c in svc["CapabilityBoundingSet"].split())
    check(caps == sorted(caps_of(container(ctx.ds, "hoopd"))["add"]),
          "the unit's capabilities %r differ from the DaemonSet's" % caps)
    if not shutil.which("systemd-analyze"):
        log("  (no systemd-analyze: unit syntax not verified)")
        return
    d = tempfile.mkdtemp(prefix="hoop-unit-")
    try:
        with open(unit) as f:
            text = f.read().replace("/usr/local/bin/hoopd", os.path.abspath(HOOPD))
        with open(os.path.join(d, "hoopd.service"), "w") as f:
            f.write(text)
        r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "hoopd.service")],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "hoopd.service" not in r.stderr, "systemd-analyze: " + r.stderr)
    finally:
        shutil.rmtree(d, True)


def test_bpffs_init_check_refuses_a_node_without_bpffs(ctx):
    ic = [c for c in ctx.ds["spec"]["template"]["spec"].get("initContainers", []) if c["name"] == "check-bpffs"]
    check(ic, "no check-bpffs init container")
    cmd = ic[0]["command"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 0, "check-bpffs refused this host's bpffs: " + r.stderr)
    # The same check on a node whose /sys/fs/bpf is no bpffs (a private mount namespace).
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs none /sys/fs/bpf && exec "$@"', "sh"] + cmd,
                       capture_output=True, text=True)
    check(r.returncode == 1 and "not a bpffs" in r.stderr and "tmpfs" in r.stderr,
          "check-bpffs on tmpfs: %d %s" % (r.returncode, r.stderr))


# ---- hoopd with the DaemonSet's capabilities ------------------------------------------------

def ds_capabilities(ctx):
    return [c.lower() for c in caps_of(container(ctx.ds, "hoopd"))["add"]]


def capped_start(hd, caps, wrapper=(), extra=(), expect_fail=False):
    """hoopd as uid 0 with only CAPS (what the runtime gives the container), via WRAPPER."""
    prefix = ["setpriv", "--bounding-set", "-all," + ",".join("+" + c for c in caps),
              "--inh-caps", "-all", "--ambient-caps", "-all", "--"] + list(wrapper)
    # Hoopd.start runs hooptest.HOOPD: put the prefix in front of it for this start only.
    script = os.path.join(hd.dir, "capped-hoopd")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(shlex.quote(a) for a in prefix),
                                                  shlex.quote(HOOPD)))
    os.chmod(script, 0o755)
    hooptest.HOOPD = script
    try:
        return hd.start(*extra, expect_fail=expect_fail)
    finally:
        hooptest.HOOPD = HOOPD


def manifest_wrapper(ctx):
    """The DaemonSet's command before hoopd (nsenter into pid 1's cgroup namespace). Here the
    test's own process stands in for pid 1: a root process with every capability, which hoopd's
    capabilities must be enough to open, as on a node."""
    cmd = container(ctx.ds, "hoopd")["command"][:-1]
    return [a.replace("/proc/1/", "/proc/%d/" % os.getpid()) for a in cmd]


def nobody_in_netns(cg_path, netns):
    """A process as uid nobody inside the cgroup and the namespace: an unprivileged pod."""
    return subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg_path,
                             "ip", "netns", "exec", netns, "runuser", "-u", "nobody", "--", "sleep", "60"])


def in_cgroup(path, argv, netns=None, user=None):
    if user:
        argv = ["runuser", "-u", user, "--"] + list(argv)
    if netns:
        argv = ["ip", "netns", "exec", netns] + list(argv)
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path] + list(argv)


def test_hoopd_serves_an_unprivileged_pod_with_exactly_the_daemonsets_capabilities(ctx):
    cl = Cleanup()
    try:
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="caps")
        ctx.hoopds.append(hd)
        capped_start(hd, ds_capabilities(ctx), wrapper=manifest_wrapper(ctx))
        check("kernel probe:" in hd.log_text() and "has every BPF feature" in hd.log_text(),
              "no probe result in hoopd's log")
        check("lacks CAP_" not in hd.log_text(), "hoopd warned about a capability:\n" + hd.log_text())
        pod = ctx.p["sd_burst_ctr"]
        sleeper = nobody_in_netns(pod, ctx.ns.name)
        cl.push(lambda: (sleeper.kill(), sleeper.wait()))
        wait_for(lambda: str(sleeper.pid) in open(os.path.join(pod, "cgroup.procs")).read(), 5, "pod process")
        os.environ["HOOP_KUBEPODS_ROOT"] = ctx.sd.root
        cl.push(lambda: hd.ctl("detach", "--cgroup", pod, check=False))
        r = hd.ctl("attach", "--container", "containerd://" + C_BURST, "--owner", OWNER)
        check("attached " + pod in r.stdout, r.stdout)
        ino = os.stat("/run/netns/" + ctx.ns.name).st_ino
        check(any(l["netns_inode"] == ino for l in hd.status()["listeners"]),
              "no listener in the unprivileged pod's namespace:\n" + hd.log_text()[-2000:])
        p = subprocess.Popen(in_cgroup(pod, ["psql", "-h", POD_HOST_IP, "-p", str(ctx.pg.port), "-U", "postgres",
                                             "-tAX", "-c", "select 'pod-' || 6 * 7 from pg_sleep(1)"],
                                       netns=ctx.ns.name, user="nobody"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")

        def mine():
            return [c for c in hd.status()["connections"] if c["comm"] == "psql"]
        conns = wait_for(mine, 10, "the pod's psql in hoopctl status")
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0 and out.strip() == "pod-42", "psql in the pod: %r %r" % (out, err))
        c = conns[0]
        check(c["uid"] == 65534 and c["owner"] == OWNER, "identity %r" % c)
        check(c["exe"].endswith("/psql"), "exe %r (needs CAP_SYS_PTRACE)" % c["exe"])
        check(cgroup2_mount() + c["cgroup"] == pod, "cgroup %r" % c["cgroup"])
        check(hd.stop() == 0, "hoopd with the DaemonSet's capabilities did not stop cleanly")
    finally:
        os.environ.pop("HOOP_KUBEPODS_ROOT", None)
        cl.run()


def test_each_granted_capability_is_needed(ctx):
    full = ds_capabilities(ctx)
    pod = ctx.p["fs_best_ctr"]
    cl = Cleanup()
    try:
        sleeper = nobody_in_netns(pod, ctx.ns.name)
        cl.push(lambda: (sleeper.kill(), sleeper.wait()))
        wait_for(lambda: str(sleeper.pid) in open(os.path.join(pod, "cgroup.procs")).read(), 5, "pod process")
        ino = os.stat("/run/netns/" + ctx.ns.name).st_ino
        # Without CAP_SYS_ADMIN: refused at start, by name.
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="nosa")
        rc = capped_start(hd, [c for c in full if c != "sys_admin"], expect_fail=True)
        check(rc == 1 and "lacks CAP_SYS_ADMIN" in hd.log_text(), "without SYS_ADMIN: %r\n%s" % (rc, hd.log_text()))
        # Without CAP_SETUID, CAP_SETGID or CAP_SETPCAP the catalog loader could not give up
        # root: refused at start, by name.
        for cap in ("setuid", "setgid", "setpcap"):
            hd = Hoopd(cl, policy_text(ctx.pg.port), tag="no" + cap)
            rc = capped_start(hd, [c for c in full if c != cap], expect_fail=True)
            check(rc == 1 and "lacks CAP_%s" % cap.upper() in hd.log_text(),
                  "without %s: %r\n%s" % (cap, rc, hd.log_text()))
        # The DaemonSet's nsenter needs CAP_SYS_PTRACE (and CAP_SYS_ADMIN) to reach pid 1's namespace.
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="nopt")
        rc = capped_start(hd, [c for c in full if c != "sys_ptrace"], wrapper=manifest_wrapper(ctx),
                          expect_fail=True)
        check(rc != 0 and "nsenter" in hd.log_text(), "nsenter without SYS_PTRACE: %r %s" % (rc, hd.log_text()))
        # Without CAP_SYS_PTRACE hoopd cannot open an unprivileged pod's namespace: no listener.
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="nopt2")
        ctx.hoopds.append(hd)
        capped_start(hd, [c for c in full if c != "sys_ptrace"])
        check("lacks CAP_SYS_PTRACE" in hd.log_text(), "no warning without SYS_PTRACE")
        cl.push(lambda: hd.ctl("detach", "--cgroup", pod, check=False))
        hd.ctl("attach", "--cgroup", pod)
        check(not any(l["netns_inode"] == ino for l in hd.status()["listeners"]),
              "a listener in nobody's namespace without CAP_SYS_PTRACE: the capability would not be needed")
        hd.ctl("detach", "--cgroup", pod)
        hd.stop()
        # Without CAP_NET_ADMIN, --reset-existing cannot end a connection opened before attach.
        holder = subprocess.Popen(in_cgroup(pod, [PY, "-c", HOLDER, str(ctx.pg.port)]), stdout=subprocess.PIPE,
                                  text=True)
        cl.push(lambda: (holder.kill(), holder.wait()))
        check(holder.stdout.readline().startswith("connected"), "holder did not connect")
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="nona")
        ctx.hoopds.append(hd)
        capped_start(hd, [c for c in full if c != "net_admin"])
        check("lacks CAP_NET_ADMIN" in hd.log_text(), "no warning without NET_ADMIN")
        cl.push(lambda: hd.ctl("detach", "--cgroup", pod, check=False))
        r = hd.ctl("attach", "--cgroup", pod, "--reset-existing")
        check("NOT reset" in r.stdout and holder.poll() is None,
              "--reset-existing worked without CAP_NET_ADMIN: the capability would not be needed\n" + r.stdout)
        hd.ctl("detach", "--cgroup", pod)
        hd.stop()
        # With it (the DaemonSet's set), the same reset works.
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="all")
        ctx.hoopds.append(hd)
        capped_start(hd, full)
        cl.push(lambda: hd.ctl("detach", "--cgroup", pod, check=False))
        r = hd.ctl("attach", "--cgroup", pod, "--reset-existing")
        check("  reset" in r.stdout and "NOT reset" not in r.stdout, r.stdout)
        hd.ctl("detach", "--cgroup", pod)
        hd.stop()
    finally:
        cl.run()


HOLDER = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
try:
    s.recv(1)
except OSError:
    pass  # ended by --reset-existing
"""


# ---- the kernel probe ------------------------------------------------------------------------

def test_kernel_probe_logged_refuses_by_name_and_turns_accel_off(ctx):
    check(re.search(r"kernel probe: \S+ has every BPF feature hoop needs \(\d+ probed\); --accel sockmap available",
                    ctx.hd.log_text()), "no probe result line:\n" + ctx.hd.log_text()[:3000])
    cl = Cleanup()
    try:
        os.environ["HOOPD_PROBE_HIDE"] = "ringbuf,netns_cookie_sock_ops"
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="old")
        rc = hd.start(expect_fail=True)
        text = hd.log_text()
        check(rc == 1, "hoopd on a kernel without ring buffers started (%r)" % rc)
        release = os.uname().release
        want = ("kernel %s lacks BPF map type ring buffer (Linux 5.8+); helper bpf_get_netns_cookie "
                "in sock_ops programs (Linux 5.15+). hoop needs Linux 5.15 or later" % release)
        check(want in text, "refusal message:\n" + text)
        check(not os.path.exists(hd.pin_root), "a refused hoopd left pins")
        os.environ["HOOPD_PROBE_HIDE"] = "sk_msg"
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="noaccel")
        ctx.hoopds.append(hd)
        hd.start("--accel", "sockmap")
        check(hd.status()["accel"] == "off", "accel %r without sk_msg" % hd.status()["accel"])
        check("--accel sockmap turned off: kernel %s lacks BPF program type sk_msg (Linux 4.17+)" % release
              in hd.log_text(), "no warning:\n" + hd.log_text())
        hd.stop()
    finally:
        os.environ.pop("HOOPD_PROBE_HIDE", None)
        cl.run()


# ---- attach --pod / --container --------------------------------------------------------------

def attach_k8s(ctx, root, *args):
    os.environ["HOOP_KUBEPODS_ROOT"] = root
    try:
        return ctx.hd.ctl("attach", *args, check=False)
    finally:
        os.environ.pop("HOOP_KUBEPODS_ROOT", None)


def test_pod_and_container_resolve_in_both_drivers_and_every_qos(ctx):
    cases = [
        (ctx.sd.root, ["--pod", U_BURST], "sd_burst"),
        (ctx.sd.root, ["--pod", systemd_uid(U_BURST)], "sd_burst"),  # systemd's own spelling
        (ctx.sd.root, ["--pod", U_BEST], "sd_best"),
        (ctx.sd.root, ["--pod", U_GUAR], "sd_guar"),
        (ctx.sd.root, ["--pod", STATIC_POD], "sd_static"),
        (ctx.sd.root, ["--container", C_BURST], "sd_burst_ctr"),
        (ctx.sd.root, ["--container", "containerd://" + C_BURST], "sd_burst_ctr"),
        (ctx.sd.root, ["--container", "cri-o://" + C_BEST], "sd_best_ctr"),  # not crio-conmon
        (ctx.sd.root, ["--container", "docker://" + C_GUAR.upper()], "sd_guar_ctr"),
        (ctx.sd.root, ["--pod", U_BURST, "--container", C_PAUSE[:12]], "sd_burst_pause"),
        (ctx.sd.root + "/kubepods.slice", ["--pod", U_GUAR], "sd_guar"),  # the root is kubepods itself
        (ctx.fs.root, ["--pod", U_FS_BURST], "fs_burst"),
        (ctx.fs.root, ["--pod", U_FS_BEST[:8]], "fs_best"),  # a unique prefix
        (ctx.fs.root, ["--pod", U_FS_GUAR], "fs_guar"),
        (ctx.fs.root, ["--container", C_FS_BURST], "fs_burst_ctr"),
        (ctx.fs.root, ["--container", C_FS_BEST], "fs_best_ctr"),
        (ctx.fs.root, ["--pod", U_FS_GUAR, "--container", C_FS_GUAR], "fs_guar_ctr"),
        (ctx.kind.root, ["--pod", U_KIND], "kind_pod"),
        (ctx.kind.root, ["--container", C_KIND], "kind_ctr"),
    ]
    for root, args, key in cases:
        want = ctx.p[key]
        r = attach_k8s(ctx, root, *args, "--owner", OWNER)
        try:
            check(r.returncode == 0, "attach %s under %s failed: %s" % (args, root, r.stderr))
            check(": cgroup %s\n" % want in r.stdout and "attached %s " % want in r.stdout,
                  "attach %s resolved to\n%s\nwanted %s" % (args, r.stdout, want))
            atts = [a["cgroup"] for a in ctx.hd.status()["attachments"]]
            check(want in atts, "status does not list %s: %r" % (want, atts))
        finally:
            ctx.hd.ctl("detach", "--cgroup", want, check=False)
    check(not ctx.hd.status()["attachments"], "attachments left: %r" % ctx.hd.status()["attachments"])


def test_not_found_and_ambiguous_say_what_and_where(ctx):
    sd_pods = ctx.sd.root + "/kubepods.slice"
    bad = "12345678-0000-4000-8000-000000000000"
    expect = [
        (ctx.sd.root, ["--pod", bad], 1, ["pod %s: no cgroup for it under %s" % (bad, sd_pods), "pods on this node"]),
        (ctx.fs.root, ["--container", cid("99")], 1, ["not found in the 3 pods under %s/kubepods" % ctx.fs.root]),
        (ctx.sd.root, ["--pod", U_BURST, "--container", C_BEST], 1, ["not in pod " + U_BURST, ctx.p["sd_burst"]]),
        (ctx.sd.root, ["--container", C_BURST[:6]], 1, ["not found"]),  # shorter than a prefix may be
        (ctx.sd.root, ["--container", "deadbeef"], 1,
         ["container deadbeef is ambiguous: 2 cgroups match", "cri-containerd-%s.scope" % C_TWIN1,
          "cri-containerd-%s.scope" % C_TWIN2, "give more of the id"]),
        (ctx.dup.root, ["--pod", U_BURST], 1, ["pod %s is ambiguous: 2 cgroups match" % U_BURST,
                                                "--cgroup"]),
        (ctx.empty.root, ["--pod", U_BURST], 1, ["no kubelet cgroups under %s" % ctx.empty.root,
                                                  "kubepods.slice", "HOOP_KUBEPODS_ROOT"]),
        (ctx.sd.root, ["--pod", "not-a-uid!"], 2, ["is not a pod UID"]),
        (ctx.sd.root, ["--container", "xyz"], 2, ["is not a container id"]),
        (ctx.sd.root, ["--cgroup", ctx.p["sd_burst"], "--pod", U_BURST], 2, ["not both"]),
        ("/nonexistent-kube-root", ["--pod", U_BURST], 1, ["HOOP_KUBEPODS_ROOT"]),
    ]
    for root, args, rc, says in expect:
        r = attach_k8s(ctx, root, *args)
        check(r.returncode == rc, "attach %s under %s: exit %d, wanted %d\n%s%s" %
              (args, root, r.returncode, rc, r.stdout, r.stderr))
        for s in says:
            check(s in r.stderr, "attach %s: %r not in\n%s" % (args, s, r.stderr))
    check(not ctx.hd.status()["attachments"], "an error attached something: %r" % ctx.hd.status()["attachments"])


def test_psql_in_a_container_goes_through_hoopd(ctx):
    """--container attaches one container; --pod covers every container of the pod."""
    ctr = ctx.p["sd_guar_ctr"]
    try:
        r = attach_k8s(ctx, ctx.sd.root, "--container", C_GUAR, "--owner", OWNER, "--label", "app=agent")
        check(r.returncode == 0, r.stderr)
        p = subprocess.Popen(in_cgroup(ctr, ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                                             "-tAX", "-c", "select 'ctr-ok' from pg_sleep(1)"]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def mine():
            return [c for c in ctx.hd.status()["connections"] if c["pid"] == p.pid]
        c = wait_for(mine, 10, "psql in the container in hoopctl status")[0]
        table = ctx.hd.ctl("status").stdout
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0 and out.strip() == "ctr-ok", "psql: %r %r" % (out, err))
        check(cgroup2_mount() + c["cgroup"] == ctr and c["owner"] == OWNER, "status connection %r" % c)
        check(str(p.pid) in table and OWNER in table, "status table:\n" + table)
        # A sibling container of the same pod is not attached: it goes direct.
        before = ctx.hd.status()["stats"]["connections_accepted"]
        pause = ctx.p["sd_guar"] + "/sibling"
        os.mkdir(pause)
        try:
            r = subprocess.run(in_cgroup(pause, ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U",
                                                 "postgres", "-tAX", "-c", "select 1"]),
                               capture_output=True, text=True, timeout=30)
            check(r.returncode == 0, r.stderr)
            check(ctx.hd.status()["stats"]["connections_accepted"] == before, "the sibling was intercepted")
        finally:
            os.rmdir(pause)
    finally:
        ctx.hd.ctl("detach", "--cgroup", ctr, check=False)
    # --pod (cgroupfs, Burstable): its container's psql goes through hoopd, and the audit trail
    # names the pod and the container.
    pod, ctr = ctx.p["fs_burst"], ctx.p["fs_burst_ctr"]
    try:
        r = attach_k8s(ctx, ctx.fs.root, "--pod", U_FS_BURST, "--owner", OWNER)
        check(r.returncode == 0 and "attached %s " % pod in r.stdout, r.stdout + r.stderr)
        before = ctx.hd.status()["stats"]["connections_accepted"]
        r = subprocess.run(in_cgroup(ctr, ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                                           "-tAX", "-c", "select 'pod-ok'"]),
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and r.stdout.strip() == "pod-ok", r.stdout + r.stderr)
        check(ctx.hd.status()["stats"]["connections_accepted"] == before + 1, "psql bypassed hoopd")
        starts = [e for e in ctx.hd.events() if e.get("kind") == "session_start"
                  and e.get("agent", {}).get("cgroup", "").endswith(os.path.basename(ctr))]
        check(starts, "no session_start for the container in the audit trail")
        a = starts[-1]["agent"]
        check(a.get("pod_uid") == U_FS_BURST and a.get("container_id") == C_FS_BURST,
              "audit identity %r" % a)
    finally:
        ctx.hd.ctl("detach", "--cgroup", pod, check=False)


# ---- the DaemonSet's helper scripts against a real hoopd -------------------------------------

def script_env(hd, **kw):
    env = dict(os.environ, PATH=os.path.dirname(HOOPCTL) + ":" + os.environ.get("PATH", ""),
               HOOP_CONTROL=hd.control)
    env.update({k: str(v) for k, v in kw.items()})
    return env


def configmap_dir(path, text, gen):
    """Lay out (or update) a directory the way the kubelet writes a ConfigMap volume:
    ..<timestamp>/policy.yaml, ..data -> it, policy.yaml -> ..data/policy.yaml; an update is
    one rename of the ..data symlink."""
    ts = "..2026_01_01_00_00_%02d.%d" % (gen, gen)
    os.makedirs(os.path.join(path, ts))
    with open(os.path.join(path, ts, "policy.yaml"), "w") as f:
        f.write(text)
    os.symlink(ts, os.path.join(path, "..data_tmp"))
    os.rename(os.path.join(path, "..data_tmp"), os.path.join(path, "..data"))
    if not os.path.islink(os.path.join(path, "policy.yaml")):
        os.symlink("..data/policy.yaml", os.path.join(path, "policy.yaml"))


def test_policy_reloader_applies_a_configmap_update(ctx):
    cl = Cleanup()
    try:
        hd = Hoopd(cl, policy_text(ctx.pg.port), tag="cm")
        ctx.hoopds.append(hd)
        cm = os.path.join(hd.dir, "etc-hoop")
        os.mkdir(cm)
        configmap_dir(cm, policy_text(ctx.pg.port), 1)
        hd.policy = os.path.join(cm, "policy.yaml")
        hd.start()
        rl = subprocess.Popen([os.path.join(DEPLOY, "policy-reloader.sh")],
                              env=script_env(hd, HOOP_POLICY=hd.policy, HOOP_RELOAD_INTERVAL=1),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
        cl.push(lambda: (os.killpg(rl.pid, signal.SIGKILL), rl.wait()))
        check("watching" in rl.stdout.readline(), "the reloader did not start")
        extra = free_port()
        configmap_dir(cm, policy_text(ctx.pg.port).replace("[%d]" % ctx.pg.port, "[%d, %d]" % (ctx.pg.port, extra)), 2)
        wait_for(lambda: [extra in t["ports"] for t in hd.status()["targets"]] == [True], 10,
                 "hoopd to apply the updated ConfigMap")
        line = rl.stdout.readline()
        check("changed" in line and "reloaded" in line, "reloader said %r" % line)
        # A bad update is refused; the running policy stays and the reloader says so.
        configmap_dir(cm, "version: 1\ntargets: [{name: x, protocol: oracle, ports: [1]}]\n", 3)
        line = rl.stdout.readline()
        check("refused" in line and "policy.yaml:2:" in line, "reloader on a bad policy: %r" % line)
        check([extra in t["ports"] for t in hd.status()["targets"]] == [True], "the running policy was lost")
        check(rl.poll() is None, "the reloader exited")
        hd.stop()
    finally:
        cl.run()


def test_prestop_drains_then_agents_stay_fail_closed_until_hoopd_is_back(ctx):
    ctr = ctx.p["kind_ctr"]
    hd = ctx.hd
    try:
        r = attach_k8s(ctx, ctx.kind.root, "--container", C_KIND, "--owner", OWNER)
        check(r.returncode == 0, r.stderr)
        cgid = [a["cgroup_id"] for a in hd.status()["attachments"] if a["cgroup"] == ctr][0]
        p = subprocess.Popen(in_cgroup(ctr, ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                                             "-tAX", "-c", "select 'long' from pg_sleep(2)"]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: hd.status()["stats"]["connections_active"] > 0, 10, "the session to open")
        t0 = time.time()
        r = subprocess.run([os.path.join(DEPLOY, "prestop.sh")], env=script_env(hd, HOOP_DRAIN_SECONDS=15),
                           capture_output=True, text=True, timeout=30)
        took = time.time() - t0
        out, _ = p.communicate(timeout=30)
        check(r.returncode == 0 and "open session" in r.stdout, "prestop: %r" % r.stdout)
        check(0.5 < took < 12, "prestop returned after %.1fs while a 2s session was open" % took)
        check(out.strip() == "long", "the drained session was cut: %r" % out)
        check(any(a["cgroup"] == ctr for a in hd.status()["attachments"]), "prestop detached")
        # The kubelet's SIGTERM: the pins stay, the agent is refused at once, not let through.
        check(hd.stop() == 0, "hoopd did not stop cleanly")
        pins = os.listdir(os.path.join(hd.pin_root, "cgroups", str(cgid)))
        check(len(pins) == 5, "pinned links after stop: %r" % pins)
        r = subprocess.run(in_cgroup(ctr, ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                                           "-tAX", "-c", "select 'around'"]),
                           capture_output=True, text=True, timeout=30)
        check(r.returncode != 0 and "around" not in r.stdout, "an agent reached the database around a stopped hoopd")
        # The next hoopd (the new pod) serves it without a re-attach.
        hd.start()
        r = subprocess.run(in_cgroup(ctr, ["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres",
                                           "-tAX", "-c", "select 'back'"]),
                           capture_output=True, text=True, timeout=30)
        check(r.stdout.strip() == "back", "after restart: %r %r" % (r.stdout, r.stderr))
    finally:
        if hd.proc:
            hd.ctl("detach", "--cgroup", ctr, check=False)


def test_agent_pod_example_drops_raw_network_capabilities(ctx):
    """The example agent pod (deploy/examples/agent-pod.yaml) runs without NET_RAW and NET_ADMIN
    (issue 14 point 7: a root agent holding them reads and forges its namespace's traffic), off
    the host's network and PID namespaces, and docs/deploy.md says why."""
    with open(os.path.join(DEPLOY, "examples", "agent-pod.yaml")) as f:
        pod = yaml.safe_load(f)
    spec = pod["spec"]
    check(not spec.get("hostNetwork") and not spec.get("hostPID"), "host namespaces: %r" % spec)
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        drop = {x.upper() for x in sc.get("capabilities", {}).get("drop", [])}
        add = {x.upper() for x in sc.get("capabilities", {}).get("add", [])}
        check(("ALL" in drop or {"NET_RAW", "NET_ADMIN"} <= drop) and not add & {"NET_RAW", "NET_ADMIN"},
              "container %s keeps NET_RAW or NET_ADMIN: %r" % (c["name"], sc))
        check(sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"),
              "container %s may escalate: %r" % (c["name"], sc))
    with open(os.path.join(ROOT, "docs", "deploy.md")) as f:
        text = f.read()
    check("NET_RAW" in text and "NET_ADMIN" in text and "examples/agent-pod.yaml" in text,
          "docs/deploy.md does not tell agents to drop NET_RAW and NET_ADMIN")


def test_hoopds_exited_cleanly_without_sanitizer_reports(ctx):
    check_clean_stop(ctx.hd, ctx.p["kind_ctr"])
    for h in ctx.hoopds[1:]:
        h.stop()
        bad = h.sanitizer_reports()
        check(not bad, "hoopd %s reported:\n%s" % (h.pin_root, "\n".join(bad[:20])))
    left = os.path.exists(ctx.hd.pin_root) and os.listdir(ctx.hd.pin_root)
    check(not left, "pins left with nothing attached: %r" % left)


TESTS = [
    test_every_manifest_parses_with_kind_name_namespace,
    test_daemonset_grants_exactly_what_hoopd_needs,
    test_policy_configmap_mounted_where_policy_points,
    test_prestop_does_not_detach,
    test_dockerfile_ships_what_the_manifest_runs,
    test_systemd_unit_verifies,
    test_bpffs_init_check_refuses_a_node_without_bpffs,
    test_kernel_probe_logged_refuses_by_name_and_turns_accel_off,
    test_pod_and_container_resolve_in_both_drivers_and_every_qos,
    test_not_found_and_ambiguous_say_what_and_where,
    test_psql_in_a_container_goes_through_hoopd,
    test_hoopd_serves_an_unprivileged_pod_with_exactly_the_daemonsets_capabilities,
    test_each_granted_capability_is_needed,
    test_policy_reloader_applies_a_configmap_update,
    test_prestop_drains_then_agents_stay_fail_closed_until_hoopd_is_back,
    test_agent_pod_example_drops_raw_network_capabilities,
    test_hoopds_exited_cleanly_without_sanitizer_reports,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root (BPF, cgroups, network namespaces)", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
