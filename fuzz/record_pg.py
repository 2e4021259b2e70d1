#!/usr/bin/python3
"""Regenerate the seed corpora of the PostgreSQL engine fuzz targets from real sessions.

Starts a throwaway PostgreSQL 15 (initdb in a temporary directory, as the postgres user when run
as root; trust for most users, SCRAM and cleartext password for two), puts a small recording TCP
proxy in front of it, and drives real clients through the proxy: psql (simple queries, COPY,
errors, notices, large objects over FunctionCall), pgbench -M extended and -M prepared, psycopg 3
(binary parameters, pipeline mode, server-side cursors, COPY, a cancel). Each connection's two
directions are saved as fuzz/corpus/pg_agent/NAME and fuzz/corpus/pg_server/NAME, cut at a
message boundary to at most 16 KiB. A few hand-made seeds are written too. Everything it started
or created is removed at the end.

The fuzz targets read decisions from the end of an input (fuzz/pg_fuzz.h): a recording's last
bytes steer chunking, and the hand-made seeds end with a byte chosen for that.

Usage: /usr/bin/python3 fuzz/record_pg.py [--out fuzz/corpus] [--handmade-only]
Not part of `make test`; run it by hand when the corpus should change, and commit the result.
"""

import argparse
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PGBIN = "/usr/lib/postgresql/15/bin"
MAX_SEED = 16 * 1024
SSLREQUEST, GSSENCREQUEST, CANCELREQUEST = 80877103, 80877104, 80877102


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """A TCP proxy that keeps every byte of every connection, by direction."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.label = "unnamed"
        self.sessions = {}  # name -> [agent bytes, server bytes]
        self.counts = {}
        self.lock = threading.Lock()
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                n = self.counts.get(self.label, 0) + 1
                self.counts[self.label] = n
                name = self.label if n == 1 else "%s-%d" % (self.label, n)
                rec = self.sessions[name] = [bytearray(), bytearray()]
            u = socket.create_connection(("127.0.0.1", self.upstream))
            for src, dst, buf in ((c, u, rec[0]), (u, c, rec[1])):
                t = threading.Thread(target=self._pump, args=(src, dst, buf), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, buf):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                buf += b
                dst.sendall(b)
        except OSError:
            pass
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def settle(self):
        """Wait until every connection so far has closed both ways."""
        for t in list(self.threads):
            t.join(timeout=10)

    def close(self):
        self.sock.close()


def messages(data, agent):
    """Message boundaries of one direction: the agent's untyped startup-phase packets, then
    typed messages; the server's one-byte TLS/GSS answers, then typed messages."""
    o, startup = 0, agent
    while o < len(data):
        if startup:
            if o + 8 > len(data):
                return
            n, code = struct.unpack("!II", data[o:o + 8])
            if code not in (SSLREQUEST, GSSENCREQUEST):
                startup = False
            o += n
        elif not agent and o == 0 and data[0:1] in (b"N", b"S") and data[1:2] != b"\0":
            o += 1  # the answer to an SSLRequest (N or S, then no length)
        else:
            if o + 5 > len(data):
                return
            o += 1 + struct.unpack("!I", data[o + 1:o + 5])[0]
        if o <= len(data):
            yield o


def cut(data, agent):
    """At most MAX_SEED bytes, ending at a message boundary."""
    end = 0
    for o in messages(bytes(data), agent):
        if o > MAX_SEED:
            break
        end = o
    return bytes(data[:end])


def run(cmd, env=None, check=True, user=None, **kw):
    if user and os.geteuid() == 0:
        cmd = ["runuser", "-u", user, "--"] + cmd
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if check and r.returncode:
        sys.stderr.write(r.stdout.decode(errors="replace"))
        raise SystemExit("record_pg: %s failed (%d)" % (cmd[0], r.returncode))
    return r


PSQL_SIMPLE = r"""
create table patients (id int primary key, name text, born date);
insert into patients values (1, 'Ada', '1815-12-10'), (2, 'Grace', '1906-12-09');
select * from patients order by id;
select count(*) from patients; select now() > '2000-01-01';
begin;
update patients set name = 'Ada L.' where id = 1;
savepoint s1;
select 1/0;
rollback to s1;
commit;
select name from patients where id = 1 \gset
\echo :name
do $$ begin raise notice 'a notice from the server'; end $$;
listen ch; notify ch, 'payload';
select 'x' || repeat('y', 20);
;
"""

PSQL_COPY = r"""
create table t (a int, b text);
copy t from stdin;
1	one
2	two
3	three
\.
copy t to stdout;
copy (select a, b from t order by a) to stdout with (format csv, header);
\copy t from program 'printf "4\tfour\n"'
select * from t order by a;
"""

PSQL_ERRORS = r"""
\set ON_ERROR_STOP off
select * from no_such_table;
select 'unterminated;
';
begin;
select no_such_function();
select 1;
rollback;
create table patients (id int);
set lock_timeout = '1ms';
prepare q(int) as select $1 + 1;
execute q(41);
deallocate q;
explain select * from pg_class where oid = 1;
"""

PSQL_LO = r"""
begin;
\lo_import /etc/hostname
select count(*) from pg_largeobject_metadata;
commit;
select lo_unlink(oid) from pg_largeobject_metadata;
"""


def psql(rec, label, script, user="postgres", env=None, extra=()):
    rec.label = label
    run([os.path.join(PGBIN, "psql"), "-X", "-h", "127.0.0.1", "-p", str(rec.port), "-U", user,
         "-d", "postgres", *extra], env=env, check=False, input=script.encode())
    rec.settle()


def psycopg_sessions(rec):
    import psycopg

    dsn = "host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable" % rec.port

    rec.label = "psycopg-binary"
    with psycopg.connect(dsn, application_name="agent-binary") as c:
        c.execute("create temporary table m (id int, v bytea, n numeric, t timestamptz)")
        with c.cursor(binary=True) as cur:
            cur.execute("insert into m values (%s, %s, %s, now())", (1, b"\x00\xff\x10", 3.5))
            cur.executemany("insert into m values (%s, %s, %s, now())",
                            [(i, bytes([i]) * i, i / 3) for i in range(2, 6)])
            cur.execute("select * from m where id > %s order by id", (1,))
            cur.fetchall()
        c.execute("select %s::int + 1", (41,), prepare=True).fetchone()
        c.execute("select %s::int + 1", (42,), prepare=True).fetchone()
        with c.cursor(name="srv") as cur:  # DECLARE ... CURSOR, FETCH
            cur.execute("select generate_series(1, 50)")
            cur.fetchmany(10)
        with c.cursor().copy("copy m (id, v) from stdin") as cp:
            cp.write_row((9, b"nine"))
        try:
            c.execute("select %s::int", ("not a number",))
        except psycopg.Error:
            c.rollback()
    rec.settle()

    rec.label = "psycopg-pipeline"
    with psycopg.connect(dsn) as c:
        c.autocommit = True
        with c.pipeline():
            cur = c.cursor()
            cur.execute("create temporary table p (id int primary key, v text)")
            cur.executemany("insert into p values (%s, %s)", [(i, "v%d" % i) for i in range(5)])
            cur.execute("select * from p order by id")
            c.cursor().execute("select pg_catalog.version()")
            c.cursor().execute("update p set v = upper(v) where id < %s returning id", (3,))
        try:
            with c.pipeline():
                c.cursor().execute("insert into p values (1, 'dup')")
                c.cursor().execute("select 'after the error'")
        except psycopg.Error:
            pass
    rec.settle()

    rec.label = "cancel"
    with psycopg.connect(dsn) as c:
        def cancel_later():
            time.sleep(0.5)
            c.cancel()
        t = threading.Thread(target=cancel_later)
        t.start()
        try:
            c.execute("select pg_sleep(5)")
        except psycopg.errors.QueryCanceled:
            c.rollback()
        t.join()
        c.execute("select 'still usable'").fetchone()
    rec.settle()


def record(out):
    tmp = tempfile.mkdtemp(prefix="hoop-record-")
    data, sockdir = os.path.join(tmp, "data"), os.path.join(tmp, "sock")
    os.mkdir(sockdir)
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        pw = pwd.getpwnam(user)
        for d in (tmp, sockdir):
            os.chown(d, pw.pw_uid, pw.pw_gid)
    port = free_port()
    started = False
    try:
        run([os.path.join(PGBIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
             "--no-sync"], user=user, cwd=tmp)
        with open(os.path.join(data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "host all scram_user 127.0.0.1/32 scram-sha-256\n"
                    "host all pw_user 127.0.0.1/32 password\n"
                    "host all all 127.0.0.1/32 trust\n")
        run([os.path.join(PGBIN, "pg_ctl"), "-D", data, "-w", "-l", os.path.join(tmp, "log"),
             "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (port, sockdir),
             "start"], user=user, cwd=tmp)
        started = True
        sql = [os.path.join(PGBIN, "psql"), "-X", "-q", "-h", sockdir, "-p", str(port), "-U",
               "postgres", "-d", "postgres", "-c"]
        run(sql + ["create role scram_user login password 'scram-secret'; "
                   "set password_encryption = 'md5'; "
                   "create role pw_user login password 'pw-secret'"])
        run([os.path.join(PGBIN, "pgbench"), "-i", "-q", "-h", sockdir, "-p", str(port), "-U",
             "postgres", "postgres"])

        rec = Recorder(port)
        psql(rec, "psql-simple", PSQL_SIMPLE)
        psql(rec, "psql-copy", PSQL_COPY)
        psql(rec, "psql-errors", PSQL_ERRORS)
        psql(rec, "psql-large-object", PSQL_LO)
        psql(rec, "psql-scram", "select current_user;\n", user="scram_user",
             env={"PGPASSWORD": "scram-secret", "PGSSLMODE": "disable"})
        psql(rec, "psql-password", "select current_user;\n", user="pw_user",
             env={"PGPASSWORD": "pw-secret"})
        psql(rec, "psql-big-result", "select g, md5(g::text) from generate_series(1, 500) g;\n")
        for mode in ("extended", "prepared", "simple"):
            rec.label = "pgbench-" + mode
            run([os.path.join(PGBIN, "pgbench"), "-n", "-M", mode, "-t", "4", "-c", "1", "-h",
                 "127.0.0.1", "-p", str(rec.port), "-U", "postgres", "postgres"])
            rec.settle()
        psycopg_sessions(rec)
        rec.close()
    finally:
        if started:
            run([os.path.join(PGBIN, "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                user=user, check=False, cwd=tmp)
        shutil.rmtree(tmp, ignore_errors=True)

    names = {"cancel-2": "cancel-request", "cancel": "cancel-victim"}
    for name, (agent, server) in sorted(rec.sessions.items()):
        name = names.get(name, name)
        a, s = cut(agent, True), cut(server, False)
        if not a:
            continue
        write(out, "pg_agent", name, a)
        if s:
            write(out, "pg_server", name, s)


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    print("  %-9s %-24s %6d bytes" % (target, name, len(data)))


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def untyped(code, body=b""):
    return struct.pack("!II", len(body) + 8, code) + body


def handmade(out):
    """Seeds no real client sends, each ending with the decisions the harness reads from the
    end of an input: first cfg, then per chunk a few bytes (see the two tails below)."""

    def agent_tail(cfg, steps):
        """fuzz_pg_agent.c: cfg bit 0 agent TLS enabled, bit 1 its handshake succeeds, bit 4
        no approval request opens, bit 7 authentication from bits 5-6; then per chunk its size
        (0xff: all), when the database's answer arrives (0: at once), how a hold ends (0x40:
        approved, 0xe8: a CancelRequest on another connection), the audit trail (0xf0: full)."""
        t = b""
        for size, db, hold, audit in steps:
            t = bytes([audit, hold, db, size]) + t
        return t + bytes([cfg])

    def each(n, hold=0x40, audit=0):
        return [(0xff, 0, hold, audit)] * n

    startup = untyped(196608, b"user\0agent\0database\0clinical\0\0")
    q = msg(b"Q", b"select name from patients\0")
    x = msg(b"X")
    extended = msg(b"P", b"s\0select 2\0\0\0") + msg(b"B", b"p\0s\0\0\0\0\0\0\0") + \
        msg(b"E", b"p\0\0\0\0\0") + msg(b"S")
    mixed = extended + msg(b"Q", b"select 2\0") + msg(b"Q", b"select 2; select 1\0") + \
        msg(b"F", b"\0\0\0\x01\0\0\0\0\0\0") + q + x
    agent = {
        "hand-sslrequest": untyped(SSLREQUEST) + startup + q + x + agent_tail(0, each(3)),
        "hand-sslrequest-tls": untyped(SSLREQUEST) + startup + q + x + agent_tail(3, each(3)),
        "hand-gssencrequest": untyped(GSSENCREQUEST) + untyped(SSLREQUEST) + startup + q +
        agent_tail(0, each(4)),
        "hand-direct-tls": b"\x16" + startup + q + x + agent_tail(3, each(2)),
        "hand-cancelrequest": untyped(CANCELREQUEST, struct.pack("!II", 4242, 99)) +
        agent_tail(0, each(1)),
        "hand-oversized": startup + b"Q\x7f\xff\xff\xff" + b"select 1\0" + agent_tail(0, each(2)),
        "hand-unknown-type": startup + q + msg(b"Y", b"x") + agent_tail(0, each(2)),
        "hand-protocol-2": struct.pack("!II", 8, 0x00020000) + agent_tail(0, each(1)),
        "hand-extended-hold": startup + mixed + agent_tail(0, each(1) + each(1, hold=0xe8)),
        "hand-hold-no-approvals": startup + mixed + agent_tail(0x10, each(2)),
        "hand-audit-full": startup + mixed + agent_tail(0, each(1) + each(1, audit=0xf0)),
    }
    z = msg(b"Z", b"I")
    ok = msg(b"R", b"\0\0\0\0") + msg(b"S", b"server_version\00015\0") + \
        msg(b"K", struct.pack("!II", 4242, 99)) + z
    row = msg(b"T", b"\0\1name\0\0\0\x40\0\0\2\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0") + \
        msg(b"D", b"\0\1\0\0\0\3Ada") + msg(b"C", b"SELECT 1\0")
    sasl = msg(b"R", b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")
    scram = msg(b"R", b"\0\0\0\x0br=abc") + msg(b"R", b"\0\0\0\x0cv=xyz") + ok + row + z

    def server_tail(cfg, steps):
        """fuzz_pg_server.c reads, per step: the agent's request group, the chunk size, the
        audit switch; all from the end, after cfg."""
        t = b""
        for group, size in steps:
            t = bytes([0, size, group]) + t
        return t + bytes([cfg])

    # Upstream TLS (prefer, handshake succeeds: cfg 0x88): 'S' alone, then SCRAM; the agent
    # answers with channel binding flag y (request group 0x39), so hoopd redials in plain TCP and
    # replays its SASLInitialResponse to the new server's SCRAM request. 0x6a: a 43-byte chunk.
    redial = [(0, 0x00), (0, 0x6a), (0x39, 0xff)]
    server = {
        "hand-sasl-plus": sasl + scram,
        "hand-tls-answer-n": b"N" + ok + row + z + b"\x80",
        "hand-tls-answer-s": b"S" + ok + row + z + server_tail(0x88, [(0, 0x00), (1, 0xff)]),
        "hand-tls-scram-redial": b"S" + sasl + sasl + scram + server_tail(0x88, redial),
        "hand-tls-scram-require": b"S" + sasl + scram + server_tail(0xc8, redial),
        "hand-oversized": ok + b"D\x7f\xff\xff\xff" + b"\0\0",
        "hand-unknown-type": ok + msg(b"Y", b"x") + row + z,
        "hand-bad-rowdescription": ok + msg(b"T", b"\0\5name\0") + z,
        "hand-auth-error": msg(b"E", b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"),
        "hand-negotiate-version": msg(b"v", b"\0\0\0\0\0\0\0\1_pq_.x\0") + ok + row + z,
    }
    for name, data in sorted(agent.items()):
        write(out, "pg_agent", name, data)
    for name, data in sorted(server.items()):
        write(out, "pg_server", name, data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "corpus"))
    ap.add_argument("--handmade-only", action="store_true",
                    help="rewrite the hand-made seeds only, keep the recordings")
    args = ap.parse_args()
    if not args.handmade_only:
        for target in ("pg_agent", "pg_server"):
            shutil.rmtree(os.path.join(args.out, target), ignore_errors=True)
        record(args.out)
    handmade(args.out)


if __name__ == "__main__":
    main()
