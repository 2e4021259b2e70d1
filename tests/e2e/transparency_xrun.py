#!/usr/bin/python3
"""Run one SQL file of the transparency corpus statement by statement over the extended query
protocol (libpq's PQexecParams through psycopg 3: Parse, Bind, Describe, Execute, Sync for
each), printing each statement as
it is in the file, then its rows, notices and error with every field: test_transparency.py runs
it directly and through hoopd and compares the two outputs as it does psql's.

Usage: transparency_xrun.py CONNINFO FILE
"""
import re
import sys

import psycopg
from psycopg import pq

DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def statements(text, meta=None):
    """The statements of text, split at semicolons outside quotes, comments, dollar quotes and
    parentheses. Not PostgreSQL's lexer, but the same split on both sides of the comparison.
    meta, a list: gets the offset of each backslash outside those (a psql meta-command)."""
    out, start, i, n, depth = [], 0, 0, len(text), 0
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            d, i = 1, i + 2
            while i < n and d:
                if text.startswith("/*", i):
                    d, i = d + 1, i + 2
                elif text.startswith("*/", i):
                    d, i = d - 1, i + 2
                else:
                    i += 1
            continue
        if c in "'\"":
            esc = c == "'" and i > 0 and text[i - 1] in "eE" and (
                i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
            i += 1
            while i < n:
                if esc and text[i] == "\\":
                    i += 2
                elif text[i] == c:
                    if text.startswith(c * 2, i):
                        i += 2
                        continue
                    i += 1
                    break
                else:
                    i += 1
            continue
        if c == "$" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = DOLLAR.match(text, i)
            if m:
                j = text.find(m.group(0), m.end())
                i = n if j < 0 else j + len(m.group(0))
                continue
        if c == "\\" and meta is not None:
            meta.append(i)
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == ";" and depth <= 0:
            out.append(text[start:i + 1])
            start = i + 1
            depth = 0
        i += 1
    out.append(text[start:])
    return [s.strip("\n") for s in out if re.sub(r"--[^\n]*|\s", "", s)]


FIELDS = [("DETAIL", "MESSAGE_DETAIL"), ("HINT", "MESSAGE_HINT"),
          ("POSITION", "STATEMENT_POSITION"), ("CONTEXT", "CONTEXT"),
          ("SCHEMA", "SCHEMA_NAME"), ("TABLE", "TABLE_NAME"), ("COLUMN", "COLUMN_NAME"),
          ("TYPE", "DATATYPE_NAME"), ("CONSTRAINT", "CONSTRAINT_NAME")]


def field(res, name):
    v = res.error_field(getattr(pq.DiagnosticField, name))
    return v.decode("utf-8", "replace") if v is not None else None


def show_message(res):
    print("%s:  %s: %s" % (field(res, "SEVERITY_NONLOCALIZED"), field(res, "SQLSTATE"),
                           field(res, "MESSAGE_PRIMARY")))
    for label, name in FIELDS:
        v = field(res, name)
        if v:
            print("%s:  %s" % (label, v))


def main():
    conninfo, path = sys.argv[1], sys.argv[2]
    with open(path, errors="replace") as f:
        text = f.read()
    conn = psycopg.connect(conninfo, autocommit=True)
    pgconn = conn.pgconn
    pgconn.notice_handler = show_message
    for stmt in statements(text):
        print(stmt, flush=True)
        # PQexecParams: Parse, Bind, Describe, Execute, Sync, with no parameters.
        res = pgconn.exec_params(stmt.encode(), None)
        st = res.status
        if st == pq.ExecStatus.TUPLES_OK:
            print(" | ".join(res.fname(c).decode() for c in range(res.nfields)))
            for r in range(res.ntuples):
                print(" | ".join("NULL" if res.get_value(r, c) is None
                                 else res.get_value(r, c).decode("utf-8", "replace")
                                 for c in range(res.nfields)))
        elif st == pq.ExecStatus.FATAL_ERROR:
            show_message(res)
        print("(%s %s)" % (pq.ExecStatus(st).name,
                           (res.command_status or b"").decode("utf-8", "replace")), flush=True)
        if pgconn.status != pq.ConnStatus.OK:
            print("connection lost: %s" % pgconn.error_message.decode("utf-8", "replace"))
            return


if __name__ == "__main__":
    main()
