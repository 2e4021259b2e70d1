#!/usr/bin/python3
"""Record what a real PostgreSQL 15 answers for statements its grammar rejects, into
tests/unit/sqlerror.cases (the expectations of tests/unit/test_dialect.c: the dialect's
grammar errors must be the server's message, SQLSTATE, position, detail and hint).

Each case is sent as a simple Query on its own connection to a throwaway cluster (UTF-8
database, client_encoding UTF8), after `SET standard_conforming_strings = off` for the cases
marked so, and the ErrorResponse's fields are written as one JSON object a line.

Usage (as root; needs Debian's postgresql-15): tests/unit/sqlerror_record.py
"""
import json
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from hooptest import Cleanup, Postgres  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sqlerror.cases")

# (text, standard_conforming_strings off?)
CASES = [
    ("selec 1", False),
    ("SELECT * FROM t WHERE", False),
    ("SELECT COLLATE", False),
    ("SELECT 'abc", False),
    ('SELECT "abc', False),
    ("SELECT $$abc", False),
    ("SELECT $x$abc$y$", False),
    ("SELECT /* abc", False),
    ("SELECT /* a /* b */", False),
    ('SELECT ""', False),
    ("SELECT B'01", False),
    ("SELECT X'0F", False),
    ("SELECT 1 LIMIT 1,2", False),
    ("SELECT 123abc", False),
    ("SELECT 0x1F", False),
    ("SELECT 1.5e", False),
    ("SELECT $1abc", False),
    ("SELECT E'\\u00'", False),
    ("SELECT E'\\uD800'", False),
    ("SELECT E'\\uD800\\u0041'", False),
    ("SELECT U&'\\00'", False),
    ("SELECT U&'\\D800'", False),
    ("SELECT U&'abc' UESCAPE 'xx'", False),
    ("SELECT U&'abc' UESCAPE '+'", False),
    ("SELECT U&\"\\00\"", False),
    ("SELECT 'é', 'ü' FROM t WHERE x = 'ü' COLLATE", False),
    ("SELECT 'ü' ü ü", False),
    ("SELECT '日本語' FROM 日本 WHERE", False),
    ("SELECT 1; SELEC 2", False),
    ("SELECT 1;\nSELECT 2 FROM\nWHERE", False),
    ("CREATE TABLE t (a int,)", False),
    ("SELECT * FROM t ORDER BY 1 ORDER BY 2", False),
    ("SELECT * FROM t LIMIT 1 OFFSET 1 OFFSET 2", False),
    ("SELECT 1 LIMIT 1 FETCH FIRST 1 ROWS ONLY", False),
    ("SELECT a FROM t FETCH FIRST 1 ROW WITH TIES", False),
    ("CREATE ASSERTION a CHECK (true)", False),
    ("CREATE TABLE t (a int) WITH OIDS", False),
    ("SELECT 'a' 'b'", False),
    ("SELECT (1", False),
    ("GRANT SELECT ON t TO", False),
    ("SET TIME ZONE INTERVAL '1' MONTH", False),
    ("CREATE OR REPLACE TABLE t (a int)", False),
    ("SELECT ARRAY[1,2", False),
    ("SELECT * FROM t WHERE a = ANY()", False),
    ("SELECT 1 UNION SELECT 2 ORDER BY 1 LIMIT 1 LIMIT 2", False),
    ("CREATE TABLE t (a int CONSTRAINT c CHECK (a > 0) NO INHERIT NOT VALID)", False),
    ("SELECT 'a\\'b'", False),
    ("SELECT E'\\U00110000'", False),
    ("SELECT U&'\\+110000'", False),
    ("SELECT E'\\uDC00'", False),
    ("SELECT U&'\\DC00'", False),
    ("SELECT U&'\\D800\\0041'", False),
    ("SELECT UNIQUE (SELECT 1)", False),
    ("CREATE RECURSIVE VIEW v (a) AS SELECT 1 WITH CHECK OPTION", False),
    ("SELECT sum(1) OVER (ROWS UNBOUNDED FOLLOWING)", False),
    ("SELECT sum(1) OVER (ROWS BETWEEN 1 FOLLOWING AND CURRENT ROW)", False),
    ("SELECT sum(1) OVER (ROWS BETWEEN CURRENT ROW AND UNBOUNDED PRECEDING)", False),
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) DEFERRABLE", False),
    ("SELECT (1,2,3) OVERLAPS (4,5)", False),
    ("SELECT INTERVAL(1) '1' SECOND(2)", False),
    ("CREATE EXTENSION e FROM v1", False),
    ("SELECT 1 INTO t INTO u", False),
    ("CREATE FUNCTION f(OUT a int) RETURNS TABLE (b int) AS 'select 1' LANGUAGE sql", False),
    ("CREATE AGGREGATE a (OUT int) (sfunc = f, stype = int)", False),
    ("CREATE TABLE t (a int) PARTITION BY RANGE (a) WITH OIDS", False),
    ("SELECT 1 FROM t FOR UPDATE OF", False),
    ("SELECT * FROM t WHERE 'ü' = 'é' AND (", False),
    # every ereport and yyerror of PostgreSQL 15's gram.y, scan.l and parser.c that a raw parse
    # can raise, as 15.18 words and codes them
    ("CREATE ROLE r UNENCRYPTED PASSWORD 'x'", False),
    ("CREATE ROLE r WITH FOOBAR", False),
    ("CREATE SCHEMA IF NOT EXISTS s CREATE TABLE t (a int)", False),
    ("CREATE SCHEMA IF NOT EXISTS AUTHORIZATION r CREATE TABLE t (a int)", False),
    ("SET CATALOG 'x'", False),
    ("ALTER INDEX i ALTER COLUMN 0 SET STATISTICS 1000", False),
    ("ALTER INDEX i ALTER COLUMN 32768 SET STATISTICS 1000", False),
    ("ALTER TABLE t ALTER COLUMN a SET OWNED BY NONE", False),
    ("ALTER TABLE t ALTER COLUMN a SET RESTART 1 SET AS int", False),
    ("CREATE TABLE p PARTITION OF t FOR VALUES WITH (modulus 2, modulus 3, remainder 0)", False),
    ("CREATE TABLE p PARTITION OF t FOR VALUES WITH (modulus 2, remainder 0, remainder 1)", False),
    ("CREATE TABLE p PARTITION OF t FOR VALUES WITH (modulus 2, foo 1)", False),
    ("CREATE TABLE p PARTITION OF t FOR VALUES WITH (remainder 0)", False),
    ("CREATE TABLE p PARTITION OF t FOR VALUES WITH (modulus 2)", False),
    ("COPY t FROM PROGRAM STDIN", False),
    ("COPY (SELECT 1) TO PROGRAM STDOUT", False),
    ("COPY t TO 'f' WHERE a > 0", False),
    ("CREATE TABLE t (a int GENERATED BY DEFAULT AS (1) STORED)", False),
    ("CREATE TABLE t (a int REFERENCES u MATCH PARTIAL)", False),
    ("CREATE TABLE t (a int, b int, FOREIGN KEY (a, b) REFERENCES u ON UPDATE SET NULL (a))",
     False),
    ("CREATE TABLE t (a int REFERENCES u ON UPDATE SET DEFAULT (a))", False),
    ("CREATE POLICY p1 ON document AS UGLY", False),
    ("CREATE OR REPLACE CONSTRAINT TRIGGER tr AFTER INSERT ON t "
     "FOR EACH ROW EXECUTE FUNCTION f()", False),
    ("CREATE TABLE t (a int, UNIQUE (a) INITIALLY DEFERRED NOT DEFERRABLE)", False),
    ("CREATE TABLE t (a int, UNIQUE (a) DEFERRABLE NOT DEFERRABLE)", False),
    ("CREATE TABLE t (a int, UNIQUE (a) INITIALLY DEFERRED INITIALLY IMMEDIATE)", False),
    ("drop operator === (int4)", False),
    ("drop operator = (nonesuch)", False),
    ("CREATE OR REPLACE RECURSIVE VIEW v (a) AS SELECT 1 WITH LOCAL CHECK OPTION", False),
    ("SELECT * FROM (VALUES (1))", False),
    ("SELECT * FROM (SELECT 1)", False),
    ("SELECT * FROM LATERAL (VALUES (1))", False),
    ("SELECT * FROM LATERAL (SELECT 1)", False),
    ("SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int DEFAULT 1 DEFAULT 2)", False),
    ("SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int PATH 'a' PATH 'b')", False),
    ("SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int NULL NOT NULL)", False),
    ("SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int foo 1)", False),
    ("SELECT * FROM XMLTABLE (ROW () PASSING null COLUMNS v1 timestamp __pg__is_not_null 1) "
     "AS f (v1)", False),
    ("SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int \"__pg__is_not_null\" 1)", False),
    ("SELECT 1::float(0)", False),
    ("SELECT 1::float(54)", False),
    ("SELECT (1,2) OVERLAPS (3,4,5)", False),
    ("SELECT f(a ORDER BY a) WITHIN GROUP (ORDER BY a) FROM t", False),
    ("SELECT f(DISTINCT a) WITHIN GROUP (ORDER BY a) FROM t", False),
    ("SELECT f(VARIADIC a) WITHIN GROUP (ORDER BY a) FROM t", False),
    ("SELECT sum(1) OVER (RANGE BETWEEN UNBOUNDED FOLLOWING AND CURRENT ROW)", False),
    ("SELECT sum(1) OVER (ROWS BETWEEN CURRENT ROW AND 1 PRECEDING)", False),
    ("SELECT sum(1) OVER (ROWS BETWEEN 1 FOLLOWING AND 1 PRECEDING)", False),
    ("SELECT sum(1) OVER (ROWS CURRENT ROW EXCLUDE TIES) FROM t ORDER BY", False),
    ("SELECT foo(a => 1) 'x'", False),
    ("SELECT foo(1 ORDER BY 1) 'x'", False),
    ("SELECT s.foo(a := 1) 'x'", False),
    ("CREATE ROLE public", False),
    ("CREATE ROLE none", False),
    ("CREATE ROLE current_user", False),
    ("CREATE ROLE session_user", False),
    ("CREATE ROLE current_role", False),
    ("SELECT 1 FETCH FIRST 1 ROW WITH TIES", False),
    ("(SELECT 1) FETCH FIRST 1 ROW WITH TIES", False),
    ("CREATE AGGREGATE a (VARIADIC \"any\" ORDER BY int) (sfunc = f, stype = int)", False),
    ("(SELECT 1 ORDER BY 1) ORDER BY 1", False),
    ("(SELECT 1 OFFSET 1) OFFSET 2", False),
    ("(SELECT 1 LIMIT 1) LIMIT 2", False),
    ("SELECT a FROM t ORDER BY a FETCH FIRST 1 ROW WITH TIES FOR UPDATE SKIP LOCKED", False),
    ("WITH a AS (SELECT 1) (WITH b AS (SELECT 2) SELECT 3)", False),
    ("CREATE FUNCTION f(INOUT a int) RETURNS TABLE (b int) AS 'select 1' LANGUAGE sql", False),
    ("CREATE TABLE a.b.c.d (x int)", False),
    ("SELECT * FROM a.b.c.d", False),
    ("CREATE DOMAIN d AS text COLLATE \"C\" COLLATE \"C\"", False),
    ("CREATE TABLE t (a text COLLATE \"C\" NOT NULL COLLATE \"C\")", False),
    ("CREATE TABLE t (a int, CHECK (a > 0) INITIALLY DEFERRED)", False),
    ("CREATE TABLE t (a int, UNIQUE (a) NOT VALID)", False),
    ("CREATE TABLE t (a int, UNIQUE (a) NO INHERIT)", False),
    ("CREATE TABLE t (a int, FOREIGN KEY (a) REFERENCES u NO INHERIT)", False),
    ("CREATE TABLE t (a int, EXCLUDE USING gist (a WITH =) NOT VALID)", False),
    ("CREATE CONSTRAINT TRIGGER tr AFTER INSERT ON t NOT VALID FOR EACH ROW EXECUTE FUNCTION f()",
     False),
    ("ALTER TABLE fktable ALTER CONSTRAINT fktable_fk_fkey NO INHERIT", False),
    ("ALTER TABLE fktable ALTER CONSTRAINT fktable_fk_fkey NOT VALID", False),
    ("CREATE PUBLICATION p FOR t", False),
    ("CREATE PUBLICATION testpub_parsertst FOR TABLE pub_test.testpub_nopk, CURRENT_SCHEMA",
     False),
    ("CREATE PUBLICATION testpub_parsertst FOR TABLES IN SCHEMA foo, test.foo", False),
    ("CREATE PUBLICATION p FOR TABLES IN SCHEMA s, t WHERE (a > 0)", False),
    ("CREATE PUBLICATION p FOR TABLES IN SCHEMA s, t (a)", False),
    ("CREATE PUBLICATION p FOR TABLES IN SCHEMA CURRENT_SCHEMA, s.t", False),
    ("CREATE TRIGGER tr AFTER INSERT OR INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", False),
    ("SELECT t.*.a FROM t", False),
    ("SELECT (t).*.a FROM t", False),
    ("SELECT 1 " + "<" * 70 + " 2", False),
    ("SELECT U&'a' UESCAPE 1", False),
    ("SELECT U&\"a\" UESCAPE", False),
    ("SELECT U&'\\0000'", False),
    ("SELECT E'\\u0000'", False),
    ("CREATE TABLE t (a int) WITH OIDS, b", False),
    ("ALTER TABLE t SET WITH OIDS", False),
    ("CREATE TEMP TABLE t (a int) ON COMMIT DROP INHERITS", False),
    ("SELECT a::interval second(2) to minute", False),
    ("SELECT 1 FOR UPDATE NOWAIT SKIP LOCKED", False),
    ("CREATE INDEX ON t (a) INCLUDE (b) INCLUDE (c)", False),
    ("CREATE VIEW v AS SELECT 1 WITH CASCADED CHECK", False),
    ("SELECT 1 OVERLAPS 2", False),
    ("CREATE STATISTICS ON a FROM t NOT VALID", False),
    ("SELECT 1 AS x AS y", False),
    ("GRANT ALL ON ALL TABLES TO r", False),
    ("SELECT '1'::int[1", False),
    ("DO $$ $$ LANGUAGE", False),
    ("SELECT E'\\xff'", False),
    ("SELECT 'ok', E'\\303'", False),
    ("SELECT 'a\\'b", True),
    ("SELECT U&'a'", True),
    ("SELECT 'a\\' || ' ,, 1 --'", True),
    ("SELECT E'x' , 'y\\'", True),
]


def message(kind, body):
    return kind + struct.pack("!i", len(body) + 4) + body


def read_msg(s, buf):
    while len(buf) < 5 or len(buf) < 1 + struct.unpack("!i", buf[1:5])[0]:
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d
    n = 1 + struct.unpack("!i", buf[1:5])[0]
    return buf[0:1], buf[5:n], buf[n:]


def until_ready(s, buf):
    err = None
    while True:
        k, body, buf = read_msg(s, buf)
        if k == b"E":
            err = {}
            for f in body.split(b"\0"):
                if f:
                    err[f[:1].decode()] = f[1:].decode()
        if k == b"Z":
            return err, buf


def ask(port, sql, off):
    s = socket.create_connection(("127.0.0.1", port))
    body = struct.pack("!i", 196608) + b"user\0postgres\0database\0u8\0client_encoding\0UTF8\0\0"
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    err, buf = until_ready(s, b"")
    assert err is None, err
    if off:
        s.sendall(message(b"Q", b"SET standard_conforming_strings = off; "
                                b"SET escape_string_warning = off\0"))
        err, buf = until_ready(s, buf)
        assert err is None, err
    s.sendall(message(b"Q", sql.encode() + b"\0"))
    err, buf = until_ready(s, buf)
    s.close()
    return err


def main():
    cleanup = Cleanup()
    try:
        pg = Postgres(cleanup)
        pg.psql_direct("create database u8 encoding 'UTF8' template template0 "
                       "lc_collate 'C' lc_ctype 'C'")
        ver = None
        lines = []
        for sql, off in CASES:
            e = ask(pg.port, sql, off)
            if e is None:
                print("no error from the server: %r" % sql, file=sys.stderr)
                continue
            lines.append(json.dumps({
                "sql": sql, "standard_conforming_strings": "off" if off else "on",
                "sqlstate": e.get("C", ""), "message": e.get("M", ""),
                "position": int(e.get("P", "0")), "detail": e.get("D", ""),
                "hint": e.get("H", "")}, ensure_ascii=False))
        ver = pg.psql_direct("show server_version")
        with open(OUT, "w") as f:
            f.write("# What PostgreSQL %s answered for statements its grammar rejects, one JSON\n"
                    "# object a line: recorded by tests/unit/sqlerror_record.py (a simple Query on a\n"
                    "# throwaway cluster, UTF-8 database and client). Read by test_dialect.c.\n"
                    % ver)
            for l in lines:
                f.write(l + "\n")
        print("%d case(s) recorded into %s" % (len(lines), OUT))
    finally:
        cleanup.run()


if __name__ == "__main__":
    main()
