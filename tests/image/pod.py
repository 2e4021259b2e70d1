#!/usr/bin/python3
"""Run a command in hoop's node image the way deploy/daemonset.yaml's pod runs it, with no
container runtime: chrooted into the image's root filesystem ($HOOP_IMAGE_ROOTFS, a mounted
working container of the image: tests/image/with-rootfs.sh), with

- the container's volumeMounts, read from the manifest (hostPath volumes bind-mounted
  recursively, read-only where it says so, HostToContainer as a slave), over the host's /proc
  (hostPID) and a read-only /sys, as a runtime mounts them; the root filesystem read-only when
  readOnlyRootFilesystem says so; a /dev of its own;
- the container's user, its capabilities and no other (the bounding set; with
  allowPrivilegeEscalation: false, no_new_privs), its environment and its command;
- a mount and a cgroup namespace of its own (the runtime's), and the pod's network namespace.

The mount namespace dies with the command, so nothing stays mounted whatever happens. Not
reproduced: the runtime's seccomp and AppArmor profiles (the manifest asks for RuntimeDefault
and Unconfined), resource limits.

  pod.py run CONTAINER [OPTIONS] [-- ARG...]   the container's command and args (or ARGs)
  pod.py exec CONTAINER [OPTIONS] -- ARGV...   ARGV in that container, as `kubectl exec` does
  OPTIONS: --volume NAME=HOSTDIR  the host side of volume NAME; without it a hostPath under /sys
                                  is the host's own, any other volume an empty tmpfs
           --netns PATH           the pod's network namespace (default: a new one, lo up)
           --env NAME=VALUE       more environment

As tests/image/bin/hoopd and tests/image/bin/hoopctl (symlinks to this file) it stands in for
build/hoopd and build/hoopctl in the end-to-end suites (HOOP_BUILD=tests/image/bin): hoopd runs
as the DaemonSet's hoopd container with the suite's arguments, hoopctl is exec'd in it. Paths
the suite gives for flags the DaemonSet sets (--policy, --state-dir, --control, --pin-root)
become the host side of the volume the DaemonSet's value lies in, and the flag is given the
DaemonSet's path: the suite's state directory is mounted at /var/lib/hoop and hoopd is told
--state-dir /var/lib/hoop. The suite's other files (a policy's ca_file) are under /tmp, which is
mounted read-only at /tmp. hoopctl stays in the host's network namespace (it only uses the
control socket's path); HOOP_IMAGE_USER=NAME runs it as that user of the image.

So does hoopd, unlike in its pod (hostNetwork: false): the suites start agents in the host's
namespace after attaching their cgroup and count on hoopd listening there from the start, as it
does in its own namespace; in a pod's, the first connect from a namespace hoopd has not seen yet
is refused while it starts listening there. test_image.py runs the pod in a namespace of its own.
"""
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", ".."))
MANIFEST = os.path.join(ROOT, "deploy", "daemonset.yaml")
# What runtimes (containerd, CRI-O, docker) give a container whose capabilities are not set.
DEFAULT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"]
CAP_NUMBERS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWNET = 0x00020000, 0x02000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_SLAVE = 32, 4096, 16384, 1 << 18, 1 << 19
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def die(msg):
    print("pod: " + msg, file=sys.stderr)
    sys.exit(125)


def ok(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        die("%s: %s" % (what, os.strerror(e)))


def mount(src, dst, fstype, flags, data=None):
    ok(libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), flags,
                  data and data.encode()), "mount %s on %s" % (src or fstype, dst))


def bind(src, dst, flags=MS_REC, readonly=False):
    mount(src, dst, None, MS_BIND | flags)
    if readonly:
        # MS_BIND with MS_REMOUNT: this mount only, never the filesystem under it.
        mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def pod_spec():
    with open(MANIFEST) as f:
        ds = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "DaemonSet"]
    if len(ds) != 1:
        die("%s: expected one DaemonSet, found %d" % (MANIFEST, len(ds)))
    return ds[0]["spec"]["template"]["spec"]


def container(spec, name):
    for c in spec.get("initContainers", []) + spec["containers"]:
        if c["name"] == name:
            return c
    die("no container %r in %s" % (name, MANIFEST))


def capabilities(c):
    caps = c.get("securityContext", {}).get("capabilities", {})
    drop = [x.upper() for x in caps.get("drop", [])]
    have = [] if "ALL" in drop else [x for x in DEFAULT_CAPS if x not in drop]
    return sorted(set(have) | {x.upper() for x in caps.get("add", [])})


def mkdirs(root, path):
    p = os.path.join(root, path.lstrip("/"))
    if not os.path.isdir(p):
        os.makedirs(p, exist_ok=True)
    return p


def set_capabilities(names):
    """Leave names as the bounding set, with nothing inheritable or ambient: after execve a
    root process then holds exactly these, as under a runtime."""
    ok(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]
    hdr, data = Header(0x20080522, 0), (Data * 2)()
    ok(libc.capget(ctypes.byref(hdr), data), "capget")
    data[0].inheritable = data[1].inheritable = 0
    ok(libc.capset(ctypes.byref(hdr), data), "capset")
    keep = {CAP_NUMBERS[n] for n in names}
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in keep:
            ok(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability %d" % cap)


def image_user(rootfs, name):
    """uid, gid of a user of the image (its /etc/passwd, not the host's)."""
    with open(os.path.join(rootfs, "etc/passwd")) as f:
        for line in f:
            p = line.split(":")
            if p[0] == name:
                return int(p[2]), int(p[3])
    die("no user %r in the image" % name)


def enter(c, argv, volumes, netns, env, tmp=False, user=None):
    """Become container c of the pod and exec argv: never returns."""
    rootfs = os.environ.get("HOOP_IMAGE_ROOTFS")
    if not rootfs or not os.path.isdir(os.path.join(rootfs, "usr")):
        die("HOOP_IMAGE_ROOTFS must name the image's mounted root filesystem (tests/image/with-rootfs.sh)")
    spec = pod_spec()
    sc = c.get("securityContext", {})
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    # The runtime's cgroup namespace, left again by the DaemonSet's `nsenter --cgroup=/proc/1/
    # ns/cgroup`. Where this process may not open pid 1's (a sandbox whose pid 1 is not the
    # host's init), the namespace it starts in stands in for it, held open across exec.
    argv = list(argv)
    try:
        os.close(os.open("/proc/1/ns/cgroup", os.O_RDONLY))
    except OSError:
        fd = os.open("/proc/self/ns/cgroup", os.O_RDONLY)
        os.set_inheritable(fd, True)
        argv = [a.replace("/proc/1/ns/cgroup", "/proc/self/fd/%d" % fd) for a in argv]
    flags = CLONE_NEWNS | CLONE_NEWCGROUP
    if netns == "new":
        flags |= CLONE_NEWNET
    elif netns:
        nfd = os.open(netns, os.O_RDONLY)
        ok(libc.setns(nfd, CLONE_NEWNET), "setns " + netns)
        os.close(nfd)
    ok(libc.unshare(flags), "unshare")
    if netns == "new":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Nothing mounted from here on reaches the host's mount namespace.
    mount(None, "/", None, MS_REC | MS_SLAVE)
    bind(rootfs, rootfs, flags=0)
    # hostPID: the host's /proc. A read-only /sys, as for any container that is not privileged.
    bind("/proc", mkdirs(rootfs, "/proc"))
    bind("/sys", mkdirs(rootfs, "/sys"), flags=0, readonly=True)
    dev = mkdirs(rootfs, "/dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k")
    for d in DEVICES:
        open(os.path.join(dev, d), "w").close()
        bind("/dev/" + d, os.path.join(dev, d), flags=0)
    for i, n in enumerate(("stdin", "stdout", "stderr")):
        os.symlink("/proc/self/fd/%d" % i, os.path.join(dev, n))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    mount("shm", mkdirs(rootfs, "/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777")
    if tmp:
        bind("/tmp", mkdirs(rootfs, "/tmp"), readonly=True)
    for m in c.get("volumeMounts", []):
        v = vols.get(m["name"]) or die("volumeMount %s names no volume" % m["name"])
        src = volumes.get(m["name"])
        if not src and v.get("hostPath", {}).get("path", "").startswith("/sys/"):
            src = v["hostPath"]["path"]  # the node's own kernel interfaces: bpffs, cgroups
        dst = mkdirs(rootfs, m["mountPath"])
        if not src:
            # A volume this run was given no host side for (the suites' hoopctl needs only the
            # control socket's): an empty one, never the host's real /run/hoop or /var/lib/hoop.
            mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
            continue
        if v.get("hostPath", {}).get("type") == "DirectoryOrCreate" and not os.path.exists(src):
            os.makedirs(src, 0o755)  # as the kubelet does
        bind(src, dst, readonly=bool(m.get("readOnly")))
        prop = m.get("mountPropagation", "None")
        mount(None, dst, None, MS_REC | (MS_SLAVE if prop == "HostToContainer" else MS_PRIVATE))
    if sc.get("readOnlyRootFilesystem"):
        mount(None, rootfs, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chroot(rootfs)
    os.chdir(c.get("workingDir", "/"))
    env = dict(env)
    env.setdefault("PATH", IMAGE_PATH)
    env.setdefault("HOME", "/root")
    env.setdefault("HOSTNAME", "hoopd-node")
    for e in c.get("env", []):
        env[e["name"]] = str(e.get("value", ""))
    uid, gid = sc.get("runAsUser", 0), sc.get("runAsGroup", sc.get("runAsUser", 0))
    if user:
        uid, gid = image_user("/", user)
    set_capabilities(capabilities(c))
    if sc.get("allowPrivilegeEscalation") is False:
        ok(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env["PATH"])
    if not exe:
        die("%s: not found in the image (PATH=%s)" % (argv[0], env["PATH"]))
    try:
        os.execve(exe, argv, env)
    except OSError as e:
        die("exec %s in the image: %s" % (exe, e.strerror))


def translate(ds_args, args, volume_of):
    """The suite's args with the DaemonSet's paths, and the host side of each volume."""
    ds = {ds_args[i]: ds_args[i + 1] for i in range(len(ds_args) - 1) if ds_args[i].startswith("--")}
    out, vols, i = [], {}, 0
    while i < len(args):
        a = args[i]
        if a in ds and i + 1 < len(args) and ds[a].startswith("/") and args[i + 1].startswith("/"):
            want, given = ds[a], os.path.normpath(args[i + 1])
            mnt = volume_of(want)
            if mnt:
                name, mpath = mnt
                rel = os.path.relpath(want, mpath)
                if rel == ".":
                    host, inside = given, want
                elif given.endswith("/" + rel):
                    host, inside = given[:-len(rel) - 1], want
                elif "/" not in rel:
                    host, inside = os.path.dirname(given), os.path.join(mpath, os.path.basename(given))
                else:
                    die("%s %s: cannot be laid out like the DaemonSet's %s" % (a, given, want))
                if vols.get(name, host) != host:
                    die("volume %s is %s for one flag and %s for another" % (name, vols[name], host))
                vols[name] = host
                out += [a, inside]
                i += 2
                continue
        out.append(a)
        i += 1
    return out, vols


def shim(name, args):
    c = container(pod_spec(), "hoopd")
    mounts = sorted(((m["mountPath"], m["name"]) for m in c.get("volumeMounts", [])), reverse=True)

    def volume_of(path):
        for mpath, vname in mounts:  # the longest mount path first
            if path == mpath or path.startswith(mpath.rstrip("/") + "/"):
                return vname, mpath
        return None
    args, vols = translate(c.get("args", []), args, volume_of)
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "HOME")}
    if name == "hoopd":
        enter(c, c["command"] + args, vols, None, env, tmp=True)
    enter(c, [name] + args, vols, None, env, tmp=True, user=os.environ.get("HOOP_IMAGE_USER"))


def main(argv):
    name = os.path.basename(argv[0])
    if name in ("hoopd", "hoopctl"):
        shim(name, argv[1:])
    if len(argv) < 3 or argv[1] not in ("run", "exec"):
        die("usage: pod.py run|exec CONTAINER [--volume NAME=HOSTDIR] [--netns PATH] [--env N=V] [-- ARGV...]")
    mode, c = argv[1], container(pod_spec(), argv[2])
    vols, netns, env, rest, i = {}, "new", {}, None, 3
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest = argv[i + 1:]
            break
        if a in ("--volume", "--netns", "--env") and i + 1 < len(argv):
            v = argv[i + 1]
            if a == "--netns":
                netns = v
            else:
                k, _, val = v.partition("=")
                (vols if a == "--volume" else env)[k] = val
            i += 2
            continue
        die("unknown option %r" % a)
    if mode == "run":
        cmd = c["command"] + (rest if rest is not None else c.get("args", []))
    else:
        if not rest:
            die("exec needs a command after --")
        cmd = rest
    enter(c, cmd, vols, netns, env)


if __name__ == "__main__":
    main(sys.argv)
