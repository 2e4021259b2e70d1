#!/usr/bin/python3
"""The agent side of the masking test: runs the corpus's statements with psycopg in several ways
and with a raw extended-protocol client, and saves every byte or value representation the
client received, per statement and way, for the leak scanner (test_masking.py).

Ways ("modes"):
  text      cursor.execute(sql): simple Query protocol, text results (scripts: every result set)
  binary    cursor(binary=True): extended protocol, binary results (scripts: statement by statement)
  prepared  execute(sql, prepare=True): a named prepared statement, text results
  named     a server-side cursor (DECLARE / FETCH FORWARD itersize), text or binary
  pipeline  pipeline mode: the statement in text and in binary, in one pipeline
  params    execute(sql, params) in text and in binary (corpus entries that carry params)
  copy      cursor.copy(sql): COPY ... TO STDOUT, every CopyData byte
  portal-text, portal-binary, portal-nodescribe
            a raw socket: Parse, Bind (result format), Describe, Execute with a row limit and
            Flush until CommandComplete (PortalSuspended in between), Sync; nodescribe: text
            results and no Describe (hoopd must learn the columns itself)

Usage: clients.py JOBS.json OUTDIR "host=... port=... user=... dbname=..."
JOBS.json: [{"id": ..., "sql": ..., "kind": "query"|"copy"|"script", "modes": [...],
             "params": [...] (optional), "statements": [...] (scripts)}]
Writes OUTDIR/<id>.<mode> (what was received) and OUTDIR/results.json:
  {"<id>.<mode>": {"status": "ok"|"server_error"|"client_error", "sqlstate", "message",
                   "rows"}}
"""
import json
import os
import socket
import struct
import sys
import time
import traceback

import psycopg

ROW_LIMIT = 113  # Execute's row limit in the portal modes: an odd size, rows cross it often
ITERSIZE = 97


def dump_rows(out, cur):
    n = 0
    while True:
        if cur.description is not None:
            out.append(repr([d.name for d in cur.description]))
            for row in cur.fetchall():
                out.append(repr(row))
                n += 1
        out.append("-- " + str(cur.statusmessage))
        if not cur.nextset():
            break
    return n


def server_error(e):
    diag = getattr(e, "diag", None)
    return {"status": "server_error" if getattr(e, "sqlstate", None) else "client_error",
            "sqlstate": getattr(e, "sqlstate", None),
            "message": "%s: %s" % (type(e).__name__, e),
            "detail": diag.message_detail if diag else None,
            "hint": diag.message_hint if diag else None,
            "context": diag.context if diag else None}


class Conns:
    """One connection per purpose, reopened after a broken one."""

    def __init__(self, dsn):
        self.dsn = dsn
        self.c = {}

    def get(self, name, autocommit=True):
        c = self.c.get(name)
        if c is None or c.closed or c.broken:
            c = self.c[name] = psycopg.connect(self.dsn, autocommit=autocommit)
            # No automatic server-side prepares: the corpus's own DEALLOCATE ALL would pull
            # them from under psycopg ("prepare" asks for one explicitly).
            c.prepare_threshold = None
            c.add_notice_handler(lambda d: Conns.notices.append(
                "NOTICE %s %s %s" % (d.severity, d.message_primary, d.message_detail or "")))
            c.add_notify_handler(lambda n: Conns.notices.append(
                "NOTIFY %s %s" % (n.channel, n.payload)))
            c.app = c.info.parameter_status("application_name")
        return c

    notices = []

    def reset(self, name):
        c = self.c.pop(name, None)
        if c is not None:
            try:
                c.close()
            except Exception:
                pass


def run_psycopg(conns, job, mode, out):
    sql, kind = job["sql"], job["kind"]
    rows = 0
    if mode == "text":
        c = conns.get("text")
        if kind == "copy":
            cur = c.cursor()
            with cur.copy(sql) as cp:
                for data in cp:
                    out.append(bytes(data))
                    rows += 1
            return rows
        rows = dump_rows(out, c.cursor().execute(sql))
    elif mode == "copy":
        c = conns.get("copy")
        with c.cursor().copy(sql) as cp:
            for data in cp:
                out.append(bytes(data))
                rows += 1
    elif mode == "binary":
        c = conns.get("binary")
        stmts = job.get("statements") or [sql]
        for s in stmts:
            cur = c.cursor(binary=True)
            try:
                cur.execute(s)
            except psycopg.errors.InsufficientPrivilege:
                raise
            rows += dump_rows(out, cur)
    elif mode == "prepared":
        c = conns.get("prepared")
        rows = dump_rows(out, c.cursor().execute(sql, prepare=True))
    elif mode in ("named", "named-binary"):
        c = conns.get("named", autocommit=False)
        try:
            with c.cursor(name="leak_c", binary=(mode == "named-binary")) as cur:
                cur.itersize = ITERSIZE
                cur.execute(sql)
                out.append(repr([d.name for d in cur.description]))
                for row in cur:
                    out.append(repr(row))
                    rows += 1
            c.commit()
        except BaseException:
            c.rollback()
            raise
    elif mode == "pipeline":
        c = conns.get("pipeline")
        with c.pipeline():
            a = c.cursor().execute(sql)
            b = c.cursor(binary=True).execute(sql)
        rows = dump_rows(out, a) + dump_rows(out, b)
    elif mode == "params":
        c = conns.get("params")
        p = job["params"]
        rows = dump_rows(out, c.cursor().execute(sql, p))
        rows += dump_rows(out, c.cursor(binary=True).execute(sql, p))
    else:
        raise ValueError("unknown mode " + mode)
    return rows


# ---- a raw extended-protocol client -------------------------------------------------------

def msg(t, body):
    return t + struct.pack("!i", len(body) + 4) + body


class Raw:
    def __init__(self, host, port, user, db):
        self.s = socket.create_connection((host, port), timeout=60)
        body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0" + \
            db.encode() + b"\0\0"
        self.s.sendall(struct.pack("!i", len(body) + 4) + body)
        self.buf = b""
        while True:
            t, b = self.read()
            if t == b"R" and struct.unpack("!i", b[:4])[0] != 0:
                raise RuntimeError("raw client: authentication other than trust requested")
            if t == b"E":
                raise RuntimeError("raw client: " + b.decode(errors="replace"))
            if t == b"Z":
                break

    def read(self):
        while True:
            if len(self.buf) >= 5:
                n = struct.unpack("!i", self.buf[1:5])[0]
                if len(self.buf) >= 1 + n:
                    t, b = self.buf[:1], self.buf[5:1 + n]
                    self.raw = self.buf[:1 + n]
                    self.buf = self.buf[1 + n:]
                    return t, b
            d = self.s.recv(1 << 20)
            if not d:
                raise RuntimeError("raw client: connection closed")
            self.buf += d

    def portal(self, sql, fmt, out, describe=True):
        """Every message received for one statement, with Execute row limits (and without a
        Describe, as some drivers send it, when describe is false)."""
        q = sql.encode()
        self.s.sendall(msg(b"P", b"\0" + q + b"\0" + struct.pack("!h", 0)) +
                       msg(b"B", b"\0\0" + struct.pack("!hhhh", 0, 0, 1, fmt)) +
                       (msg(b"D", b"P\0") if describe else b"") +
                       msg(b"E", b"\0" + struct.pack("!i", ROW_LIMIT)) + msg(b"H", b""))
        rows, suspended, err = 0, 0, None
        while True:
            t, b = self.read()
            out.append(self.raw)
            if t == b"D":
                rows += 1
            elif t == b"s":
                suspended += 1
                self.s.sendall(msg(b"E", b"\0" + struct.pack("!i", ROW_LIMIT)) + msg(b"H", b""))
            elif t in (b"C", b"I", b"E"):
                if t == b"E":
                    err = b
                self.s.sendall(msg(b"S", b""))
                while True:
                    t2, b2 = self.read()
                    out.append(self.raw)
                    if t2 == b"Z":
                        break
                    if t2 == b"E" and err is None:
                        err = b2
                break
        return rows, suspended, err


def err_fields(b):
    f = {}
    for part in b.split(b"\0"):
        if part:
            f[part[:1].decode()] = part[1:].decode(errors="replace")
    return f


def main():
    jobs = json.load(open(sys.argv[1]))
    outdir = sys.argv[2]
    dsn = sys.argv[3]
    kv = dict(x.split("=", 1) for x in dsn.split())
    conns = Conns(dsn)
    results = {}
    raw = None
    for job in jobs:
        for mode in job["modes"]:
            key = "%s.%s" % (job["id"], mode)
            out = []
            res = {"status": "ok"}
            t0 = time.time()
            Conns.notices = []
            try:
                if mode.startswith("portal-"):
                    if raw is None:
                        raw = Raw(kv["host"], int(kv["port"]), kv["user"], kv["dbname"])
                    rows, susp, err = raw.portal(job["sql"], 1 if mode == "portal-binary" else 0, out,
                                                 describe=mode != "portal-nodescribe")
                    res["rows"], res["suspended"] = rows, susp
                    if err:
                        f = err_fields(err)
                        res.update(status="server_error", sqlstate=f.get("C"),
                                   message=f.get("M"))
                else:
                    res["rows"] = run_psycopg(conns, job, mode, out)
            except psycopg.Error as e:
                res.update(server_error(e))
                out.append("EXCEPTION " + repr(res))
                if mode.startswith("named"):
                    conns.reset("named")
            except Exception as e:
                res.update(status="client_error", message="%s: %s" % (type(e).__name__, e),
                           trace=traceback.format_exc()[-2000:])
                out.append("EXCEPTION " + repr(res))
                if mode.startswith("portal-"):
                    raw = None
                else:
                    for n in list(conns.c):
                        conns.reset(n)
            out += Conns.notices
            res["seconds"] = round(time.time() - t0, 3)
            results[key] = res
            with open(os.path.join(outdir, key), "wb") as f:
                for x in out:
                    f.write(x if isinstance(x, bytes) else x.encode("utf-8", "backslashreplace"))
                    f.write(b"\n")
            # A script that failed half-way leaves its transaction open: end it, so the next
            # job starts clean. A session whose reported settings the job changed (ParameterStatus)
            # is recorded with the job and not used again.
            for name, c in list(conns.c.items()):
                try:
                    app = c.info.parameter_status("application_name")
                    if app != c.app:
                        with open(os.path.join(outdir, key), "ab") as f:
                            f.write(b"PARAMETER application_name " + (app or b"") + b"\n")
                        conns.reset(name)
                        continue
                    if c.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        if c.autocommit:
                            c.execute("rollback")
                        else:
                            c.rollback()
                except Exception:
                    conns.reset(name)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
