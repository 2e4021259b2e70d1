#!/usr/bin/python3
"""hoopd on a kernel without sk_msg and sockhash support. Inside the vmtest guest ONLY:

A BPF LSM program (vmtests/no_sockmap.bpf.c, loaded by build/vm/no_sockmap) makes bpf() refuse
sk_msg/sk_skb programs and sockmap/sockhash maps with EINVAL for every process, as a kernel built
without CONFIG_NET_SOCK_MSG answers. hoopd must then turn --accel sockmap off, say so, load
neither the sk_msg program nor a sockhash, and intercept as usual. On a shared machine this would
break every other sockmap user, so the suite refuses to run outside the guest.

Usage (as root, in the guest): vmtests/test_no_sockmap.py [NAME-SUBSTRING ...]
"""
import ctypes
import errno
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from hooptest import (ROOT, Cgroup, Cleanup, Hoopd, Postgres, check, teardown,  # noqa: E402
                      run_tests)

NO_SOCKMAP = os.path.join(ROOT, "build", "vm", "no_sockmap")
NO_SOCKMAP_OBJ = os.path.join(ROOT, "build", "vm", "no_sockmap.bpf.o")
OWNER = "carol@example.org"
BPF_PROG_TYPE_SK_MSG = 16
BPF_MAP_TYPE_SOCKHASH = 18

# Connect, send a StartupMessage, report the peer and the first answer byte ('R': PostgreSQL).
PROBE = r"""
import socket, sys, json, struct
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    print(json.dumps({"error": e.errno})); sys.exit(0)
body = struct.pack("!i", 196608) + b"user\0postgres\0database\0postgres\0\0"
s.sendall(struct.pack("!i", len(body) + 4) + body)
print(json.dumps({"peer": list(s.getpeername()), "answer": s.recv(1).decode()}))
"""


class Ctx:
    pass


def setup():
    if not os.path.exists("/run/hoop-vmtest-guest"):
        raise RuntimeError("test_no_sockmap.py runs only inside the vmtest guest (make vmtest)")
    ctx = Ctx()
    ctx.cleanup = Cleanup()
    ctx.hoopds = []
    ctx.pg = Postgres(ctx.cleanup, listen="127.0.0.1")
    # The LSM program stays attached while its loader runs; closing its stdin ends both.
    lsm = subprocess.Popen([NO_SOCKMAP, NO_SOCKMAP_OBJ], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    ctx.cleanup.push(lambda: (lsm.stdin.close(), lsm.wait(timeout=10)))
    if lsm.stdout.readline().strip() != "ready":
        raise RuntimeError("cannot load the no-sockmap LSM program (exit %r)" % lsm.wait())
    ctx.hd = Hoopd(ctx.cleanup, """version: 1
targets:
  - name: pg
    protocol: postgres
    ports: [%d]
""" % ctx.pg.port, tag="nosockmap")
    ctx.hoopds.append(ctx.hd)
    ctx.hd.start("--accel", "sockmap")
    ctx.cg = Cgroup(ctx.cleanup, "agents")
    ctx.cleanup.push(lambda: ctx.hd.proc and ctx.hd.ctl("detach", "--cgroup", ctx.cg.path, check=False))
    ctx.hd.ctl("attach", "--cgroup", ctx.cg.path, "--owner", OWNER)
    return ctx


def map_create_errno(map_type):
    """0 if bpf(BPF_MAP_CREATE) makes a map of this type (4-byte key, 8-byte value), else errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(struct.pack("=IIII", map_type, 4, 8, 1), 128)
    fd = libc.syscall(321, 0, attr, 128)  # __NR_bpf on x86_64, BPF_MAP_CREATE
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return 0


def test_kernel_refuses_sockhash(ctx):
    # The premise: this kernel has no sockhash now (and still has hash maps).
    check(map_create_errno(1) == 0, "the kernel refuses plain hash maps too")
    check(map_create_errno(BPF_MAP_TYPE_SOCKHASH) == errno.EINVAL, "the kernel still creates sockhashes")


def test_accel_turned_off_by_name(ctx):
    release = os.uname().release
    text = ctx.hd.log_text()
    check("--accel sockmap turned off: kernel %s lacks BPF program type sk_msg (Linux 4.17+); "
          "BPF map type sockhash (Linux 4.18+)" % release in text, "no warning:\n" + text[-3000:])
    check(ctx.hd.status()["accel"] == "off", "accel %r" % ctx.hd.status()["accel"])


def test_no_sk_msg_program_and_no_sockhash_held(ctx):
    progs, maps = set(), set()
    d = "/proc/%d/fdinfo" % ctx.hd.proc.pid
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k == "prog_type":
                        progs.add(int(v))
                    elif k == "map_type":
                        maps.add(int(v))
        except OSError:
            pass
    check(BPF_PROG_TYPE_SK_MSG not in progs and BPF_MAP_TYPE_SOCKHASH not in maps,
          "hoopd holds program types %r, map types %r" % (progs, maps))


def test_psql_goes_through_hoopd(ctx):
    before = ctx.hd.status()["stats"]["connections_accepted"]
    r = ctx.cg.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-tAX",
                    "-c", "select 'via ' || 'hoopd'"])
    check(r.returncode == 0 and r.stdout.strip() == "via hoopd", "psql: %s%s" % (r.stdout, r.stderr))
    check(ctx.hd.status()["stats"]["connections_accepted"] == before + 1, "psql went around hoopd")
    r = json.loads(ctx.cg.run(["/usr/bin/python3", "-c", PROBE, str(ctx.pg.port)]).stdout)
    check(r.get("peer") == ["127.0.0.1", ctx.pg.port] and r.get("answer") == "R", "probe %r" % r)


def test_fail_closed_then_back(ctx):
    check(ctx.hd.stop() == 0, "hoopd did not exit cleanly")
    r = json.loads(ctx.cg.run(["/usr/bin/python3", "-c", PROBE, str(ctx.pg.port)]).stdout)
    check(r.get("error") == errno.ECONNREFUSED, "with hoopd down the agent got %r" % r)
    ctx.hd.start("--accel", "sockmap")
    r = ctx.cg.run(["psql", "-h", "127.0.0.1", "-p", str(ctx.pg.port), "-U", "postgres", "-tAX",
                    "-c", "select 'back'"])
    check(r.stdout.strip() == "back", "after restart: %s%s" % (r.stdout, r.stderr))


def test_detach_and_clean_stop(ctx):
    ctx.hd.ctl("detach", "--cgroup", ctx.cg.path)
    check(ctx.hd.stop() == 0, "hoopd did not exit cleanly")
    check(not os.path.exists(ctx.hd.pin_root), "pins left under %s" % ctx.hd.pin_root)


TESTS = [
    test_kernel_refuses_sockhash,
    test_accel_turned_off_by_name,
    test_no_sk_msg_program_and_no_sockhash_held,
    test_psql_goes_through_hoopd,
    test_fail_closed_then_back,
    test_detach_and_clean_stop,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
