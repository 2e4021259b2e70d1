#!/usr/bin/python3
"""Hostile corpora for the MySQL/MariaDB engine (docs/mysql.md), run through hoopd from the agent
cgroup against the real MariaDB 10.11 of tests/e2e/test_mysql.py (its fixture, policy and
clients are imported from there).

1. Evasion: statements written for MySQL's lexer (comments in every position, executable and
   versioned comments, quoting under each sql_mode, case, whitespace, qualified names,
   multi-statement packets, PREPARE, SET STATEMENT, multi-table DELETE, views, REPLACE, LOAD
   DATA, the binary protocol, introducers, hex, NUL and stray bytes...) that a deny rule of the
   test policy covers. Each must be refused by hoopd (1227 with a `hoop:` message, or 1064 when
   hoopd cannot read it), must never appear in MariaDB's general log (a marker per statement),
   and clinical.labs must be as it was (compared directly over the socket, then restored).

2. Masking exfiltration: queries over the text protocol (pymysql) and the binary protocol
   (COM_STMT_PREPARE/EXECUTE) that try to get a stored SSN, name, email or date of birth of
   clinical.patients out (aliases, views, derived tables named like real tables, CTEs, UNION,
   functions, casts, JSON, aggregates, user variables, warnings, error messages, laundering
   through tables, temporary tables, JSON_TABLE, windows, executable comments, multi-statement
   packets, prepared statements, session state). Whatever the agent receives (rows, column
   names, error messages, SHOW WARNINGS) must hold no stored value of a masked column, nor its
   reverse, hex, base64, digits, lower case or a prefix of five characters or more. A statement
   the policy refuses or holds leaks nothing; each outcome is logged.

Each failing case is kept in the corpus: the tests fail with the statement and what got through.

Usage (as root): tests/e2e/test_mysql_hostile.py [NAME-SUBSTRING ...]
(HOOP_HOSTILE_VERBOSE=1 logs what the agent received for every masking case.)
"""
import base64
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_mysql import (setup as mysql_setup, teardown, as_agent, connect, err_of, policy,  # noqa: E402
                        server_saw, trail, check, check_clean_stop, log, run_tests, MyClient, MARK,
                        AGENT_PW, COM_QUERY, CLIENT_MULTI_STATEMENTS)

import pymysql  # noqa: E402

MULTI = pymysql.constants.CLIENT.MULTI_STATEMENTS
HELD = "no approver decided in time"

# Views and tables made directly by root before the corpora run (never through hoopd).
ROOT_SETUP = [
    # a view over labs: a DELETE through it deletes lab results
    "create view clinical.labs_v as select * from clinical.labs",
    # views over patients: plain, TEMPTABLE, and with aliases that are other real columns' names
    "create view clinical.v_pat as select id, ssn, first_name, last_name, dob, email from clinical.patients",
    "create algorithm=temptable view clinical.v_tmp as select id, ssn, first_name, dob, email "
    "from clinical.patients",
    "create view clinical.v_swap as select id, ssn as visits, email as result, first_name as patient_id, "
    "last_name as id2, dob as notes_date from clinical.patients",
    "create algorithm=temptable view clinical.v_swap_tt as select id, ssn as visits, email as result, "
    "first_name as patient_id, dob as notes_date from clinical.patients",
    # targets for laundering: a plain table and one with a unique key (its error quotes the value)
    "create table clinical.scratch (id int primary key, x varchar(200), d date)",
    "create table clinical.uniq (u varchar(200) primary key)",
]

# What the agent may leave behind: dropped directly after each case.
AGENT_LEFTOVERS = ["lv2", "lv3", "vv", "vv2", "lx1", "lx2", "lx3", "par", "lbx", "labs2", "labs_old", "t_own"]


def setup():
    ctx = mysql_setup()
    # An approver never answers here: a held statement fails after a second (1317) instead of
    # five minutes, and is logged as held.
    text = policy(ctx)
    check("timeout: 5m" in text, "the policy's approvals timeout moved")
    ctx.hd.write_policy(text.replace("timeout: 5m", "timeout: 1s", 1))
    ctx.hd.ctl("reload")
    for q in ROOT_SETUP:
        ctx.db.sql(q)
    ctx.labs_ddl = ctx.db.sql("show create table clinical.labs")[0][1]
    ctx.labs_rows = labs_rows(ctx)
    ctx.patients_ddl = ctx.db.sql("show create table clinical.patients")[0][1]
    return ctx


# --- direct state over the socket ---------------------------------------------------------------

def labs_rows(ctx):
    return ctx.db.sql("select id, patient_id, result from clinical.labs order by id, patient_id, result")


def labs_state(ctx):
    try:
        return (ctx.db.sql("show create table clinical.labs")[0][1], labs_rows(ctx))
    except pymysql.MySQLError as e:
        return ("gone", str(e))


def restore(ctx):
    """Put clinical back as setup left it: labs (rows and definition), patients' definition,
    the agent's password, and whatever a case made."""
    c = ctx.db.connect(db="clinical")
    cur = c.cursor()
    try:
        cur.execute("set foreign_key_checks = 0")
        # one look at what is there (most cases leave nothing), then drop only that
        cur.execute("select table_name, table_type from information_schema.tables where table_schema = "
                    "'clinical' and table_name in (%s)" % ", ".join(["%s"] * len(AGENT_LEFTOVERS)),
                    AGENT_LEFTOVERS)
        for t, typ in cur.fetchall():
            if t in AGENT_LEFTOVERS:
                cur.execute("drop %s if exists `%s`" % ("view" if typ == "VIEW" else "table", t))
        if labs_state(ctx) != (ctx.labs_ddl, ctx.labs_rows):
            cur.execute("drop table if exists labs")
            cur.execute(ctx.labs_ddl)
            cur.executemany("insert into labs values (%s, %s, %s)", ctx.labs_rows)
        if ctx.db.sql("show create table clinical.patients")[0][1] != ctx.patients_ddl:
            for col in [r[0] for r in ctx.db.sql("show columns from clinical.patients")]:
                if col not in ("id", "first_name", "last_name", "ssn", "dob", "email", "notes", "visits"):
                    cur.execute("alter table patients drop column `%s`" % col)
        cur.execute("create or replace view labs_v as select * from labs")
        cur.execute("delete from scratch")
        cur.execute("delete from uniq")
        cur.execute("set password for 'agent'@'127.0.0.1' = password(%s)", (AGENT_PW,))
    finally:
        c.close()


# --- running a case as the agent -------------------------------------------------------------------

def norm(r):
    """('ok', what) | ('err', code, message) | ('lost', why) from err_of() or text_run()."""
    if r[0] == "err" and len(r) == 4:
        return ("err", r[1], r[3])
    return r


def text_results(cur):
    """Every result of the last statement on a pymysql cursor: [(column names, rows) or affected]."""
    out = []
    while True:
        if cur.description:
            out.append(([d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]))
        else:
            out.append(cur.rowcount)
        if not cur.nextset():
            return out


def text_run(cur, sql):
    try:
        cur.execute(sql)
        return ("ok", text_results(cur))
    except pymysql.MySQLError as e:
        return ("err", e.args[0], str(e.args[1]) if len(e.args) > 1 else "")
    except (OSError, pymysql.err.InterfaceError) as e:
        return ("lost", str(e))


def compact(r):
    """A MyClient outcome with each column definition cut to name (org_table.org_name)."""
    if r[0] != "ok" or not isinstance(r[1], list):
        return r
    out = []
    for res in r[1]:
        if res[0] == "ok":
            out.append(("affected", res[1]))
        else:
            out.append((["%s (%s.%s)" % (c["name"], c["org_table"], c["org_name"]) for c in res[0]], res[1]))
    return ("ok", out)


def raw_query(c, data):
    """COM_QUERY with arbitrary bytes on a MyClient."""
    c.command(COM_QUERY, data)
    return c.results(binary=False)


def binary_run(c, sql):
    """COM_STMT_PREPARE, then (when prepared) COM_STMT_EXECUTE with NULL for every parameter:
    ('ok', [prepared column names, then each result as (names, rows) or ('affected', n)])."""
    r = norm(err_of(c.prepare, sql))
    if r[0] != "ok":
        return r
    sid, nparams, cols = r[1]
    e = norm(err_of(c.execute, sid, [None] * nparams))
    if e[0] != "ok":
        return e
    return ("ok", [["%s (%s.%s)" % (x["name"], x["org_table"], x["org_name"]) for x in cols]] + compact(e)[1])


def agent_session(ctx, steps):
    """Run steps in the agent cgroup, each (how, sql):
      text      COM_QUERY by pymysql (multi-statements on), every result read
      warnings  SHOW WARNINGS on that pymysql connection
      mtext     COM_QUERY by the protocol client (multi-statements on)
      raw       COM_QUERY of bytes by the protocol client
      binary    COM_STMT_PREPARE and COM_STMT_EXECUTE by the protocol client
      mwarnings SHOW WARNINGS on the protocol client
      new       fresh connections from here on (no outcome)
    Returns the outcome of each step but 'new'."""
    def run():
        out = []
        conn = mc = None
        for how, sql in steps:
            if how == "new":
                if conn is not None:
                    conn.close()
                if mc is not None:
                    mc.close()
                conn = mc = None
                continue
            if how in ("text", "warnings") and conn is None:
                conn = connect(ctx, client_flag=MULTI)
            if how in ("mtext", "raw", "binary", "mwarnings") and mc is None:
                mc = MyClient(ctx.db.port, flags=CLIENT_MULTI_STATEMENTS)
            if how == "text":
                out.append(text_run(conn.cursor(), sql))
            elif how == "warnings":
                out.append(text_run(conn.cursor(), "show warnings"))
            elif how == "mtext":
                out.append(compact(norm(err_of(mc.query, sql))))
            elif how == "raw":
                out.append(compact(norm(err_of(raw_query, mc, sql))))
            elif how == "binary":
                out.append(binary_run(mc, sql))
            elif how == "mwarnings":
                out.append(compact(norm(err_of(mc.query, "show warnings"))))
            else:
                raise ValueError(how)
        return out
    return as_agent(ctx, run, timeout=120)


def outcome(r):
    """A short word for what a statement got."""
    if r[0] == "ok":
        return "ran"
    if r[0] == "lost":
        return "connection lost"
    code, msg = r[1], r[2]
    if code == 1317 and HELD in msg:
        return "held"
    if msg.startswith("hoop:"):
        return {1227: "denied", 1064: "unparsed", 1153: "too long"}.get(code, "hoop %d" % code)
    return "server error %d" % code


def verdicts(ctx, since, texts):
    """What the trail says of each of texts (sent after trail record since): the verdicts and rules
    of its statement records (a multi-statement text: of its pieces) and the rule of an approval
    request for it."""
    recs = trail(ctx)[since:]
    out = []
    for t in texts:
        vs = []
        for e in recs:
            if e.get("kind") == "statement" and e.get("text") and (
                    e["text"] == t or (";" in t and e["text"] in t)):
                vs.append(e.get("verdict", "?") + (" by " + e["reason"] if e.get("reason") else ""))
            elif e.get("kind") == "approval_request" and t in (e.get("statement"), e.get("text")):
                vs.append("approval asked by " + e.get("rule", "?"))
        out.append(", ".join(dict.fromkeys(vs)) or "-")
    return out


def refused_by_hoopd(r):
    return r[0] == "err" and r[1] in (1227, 1064, 1153) and r[2].startswith("hoop:")


# --- 1. the evasion corpus ---------------------------------------------------------------------------

Ev = collections.namedtuple("Ev", "label sql pre via root")


def ev(label, sql, pre=(), via="text", root=()):
    """sql after pre on the same connection; root: statements root runs directly first (a schema
    an administrator could have made)."""
    return Ev(label, sql, tuple(pre), via, tuple(root))


D = "delete from labs where id = 5 and result <> '{m}'"
NBE = "set sql_mode = 'NO_BACKSLASH_ESCAPES'"
ANSI = "set sql_mode = 'ANSI_QUOTES'"


def hexstr(s):
    return s.encode().hex()


EVASIONS = [
    # the statement as it is, and the deny rule's other forms
    ev("plain", D),
    ev("upper case", "DELETE FROM LABS WHERE ID = 5 AND RESULT <> '{m}'"),
    ev("mixed case", "DeLeTe FrOm LaBs WhErE id = 5 AnD result <> '{m}'"),
    ev("backticks", "delete from `labs` where id = 5 and result <> '{m}'"),
    ev("backticks, upper case", "delete from `LABS` where id = 5 and result <> '{m}'"),
    ev("schema-qualified", "delete from clinical.labs where id = 5 and result <> '{m}'"),
    ev("schema-qualified, backticks", "delete from `clinical`.`labs` where id = 5 and result <> '{m}'"),
    ev("schema-qualified, blanks around the dot", "delete from clinical . labs where id = 5 and result <> '{m}'"),
    ev("schema-qualified, comment around the dot",
       "delete from clinical/**/./**/labs where id = 5 and result <> '{m}'"),
    ev("quoted schema, plain table", "delete from `clinical`.labs where id = 5 and result <> '{m}'"),
    ev("LOW_PRIORITY QUICK IGNORE", "delete low_priority quick ignore from labs where id = 5 and result <> '{m}'"),
    ev("alias", "delete from labs as l where l.id = 5 and l.result <> '{m}'"),
    ev("ORDER BY ... LIMIT", "delete from labs where id >= 5 and result <> '{m}' order by id limit 1"),
    ev("LIMIT only", "delete from labs where id = 5 and result <> '{m}' limit 1"),
    ev("RETURNING", "delete from labs where id = 5 and result <> '{m}' returning id"),
    ev("subquery in WHERE", "delete from labs where id in (select 5) and result <> '{m}'"),
    ev("PARTITION clause", "delete from labs partition (p0) where id = 5 and result <> '{m}'"),
    # comments in every position
    ev("block comments between every word", "delete/**/from/**/labs/**/where/**/id=5/**/and/**/result<>'{m}'"),
    ev("block comment first", "/* lead */ delete from labs where id = 5 and result <> '{m}'"),
    ev("block comment last", D + " /* trail */"),
    ev("block comment with a quote in it", "delete /* ' */ from labs where id = 5 and result <> '{m}' /* ' */"),
    ev("block comment with stars", "/***/delete/****/from/* * / */labs where id = 5 and result <> '{m}'"),
    ev("hash comment last", D + " # trail"),
    ev("hash comment first, newline", "# lead\ndelete from labs where id = 5 and result <> '{m}'"),
    ev("hash comment hiding nothing", "delete from labs #\nwhere id = 5 and result <> '{m}'"),
    ev("dash comment first", "-- lead\ndelete from labs where id = 5 and result <> '{m}'"),
    ev("dash comment last", D + " -- trail"),
    ev("dash comment with a tab", "--\tlead\ndelete from labs where id = 5 and result <> '{m}'"),
    ev("dash comment with a control byte", "--\x01lead\ndelete from labs where id = 5 and result <> '{m}'"),
    ev("dash comment with DEL", "--\x7flead\ndelete from labs where id = 5 and result <> '{m}'"),
    ev("dash comment at the very end", D + " --"),
    ev("two dashes and a letter (no comment)", "delete from labs where id = 5 --1\n and result <> '{m}'"),
    ev("dash comment ended by \\r\\n", "delete from labs where id = 5 -- x\r\n and result <> '{m}'"),
    ev("hash in a string", "delete from labs where id = 5 and result <> '#{m}'"),
    ev("comment opener in a string", "delete from labs where id = 5 and result <> '/*{m}'"),
    # executable and versioned comments
    ev("executable comment, whole", "/*! delete from labs where id = 5 and result <> '{m}' */"),
    ev("executable comment, no blank", "/*!delete from labs where id = 5 and result <> '{m}'*/"),
    ev("executable comment, one word", "delete /*!from*/ labs where id = 5 and result <> '{m}'"),
    ev("executable comment, table name", "delete from /*!labs*/ where id = 5 and result <> '{m}'"),
    ev("executable comment, verb", "/*!delete*/ from labs where id = 5 and result <> '{m}'"),
    ev("versioned 50000", "/*!50000 delete from labs where id = 5 and result <> '{m}' */"),
    ev("versioned 32302 table", "delete from /*!32302 labs */ where id = 5 and result <> '{m}'"),
    ev("versioned 50699 (MariaDB runs below 50700)", "/*!50699 delete from labs where id = 5 and result <> '{m}' */"),
    ev("versioned 100000 (six digits)", "/*!100000 delete from labs where id = 5 and result <> '{m}' */"),
    ev("versioned = server version", "/*!{ver} delete from labs where id = 5 and result <> '{m}' */"),
    ev("MariaDB-only M! 100000", "/*M!100000 delete from labs where id = 5 and result <> '{m}' */"),
    ev("MariaDB-only M! 50700 (runs on MariaDB)", "/*M!50700 delete from labs where id = 5 and result <> '{m}' */"),
    ev("MariaDB-only M! without version", "/*M! delete from labs where id = 5 and result <> '{m}' */"),
    ev("versioned comment ends mid-statement", "/*!50000 delete from */ labs where id = 5 and result <> '{m}'"),
    ev("skipped versioned comment before the table",
       "delete from /*!99999 scratch */ labs where id = 5 and result <> '{m}'"),
    ev("nested comment in an executable one", "/*! delete /* x */ from labs where id = 5 and result <> '{m}' */"),
    # quoting under the session's sql_mode
    ev("ANSI_QUOTES: table in double quotes", "delete from \"labs\" where id = 5 and result <> '{m}'", pre=[ANSI]),
    ev("ANSI_QUOTES: schema and table in double quotes",
       "delete from \"clinical\".\"labs\" where id = 5 and result <> '{m}'", pre=[ANSI]),
    ev("ANSI_QUOTES: double-quoted string is a name",
       "delete from labs where id = 5 and \"result\" <> '{m}'", pre=[ANSI]),
    ev("no ANSI_QUOTES: double-quoted string", "delete from labs where id = 5 and result <> \"{m}\""),
    ev("NO_BACKSLASH_ESCAPES: a backslash ends nothing",
       "delete from labs where id = 5 and result <> '\\' and result <> '{m}'", pre=[NBE]),
    ev("backslash escapes: quote inside a string", "delete from labs where id = 5 and result <> 'x\\'{m}'"),
    ev("doubled quote inside a string", "delete from labs where id = 5 and result <> 'x''{m}'"),
    ev("ANSI and NO_BACKSLASH_ESCAPES together",
       "delete from \"labs\" where id = 5 and result <> '\\' and result <> '{m}'",
       pre=["set sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'"]),
    ev("SET STATEMENT NO_BACKSLASH_ESCAPES FOR PREPARE hiding SET GLOBAL",
       "set statement sql_mode = 'NO_BACKSLASH_ESCAPES' for prepare s from "
       "'SET @a = ''\\\\'', GLOBAL max_connections = 77 #{m}'''"),
    ev("SET STATEMENT ANSI_QUOTES FOR PREPARE (double quotes read as a name)",
       "set statement sql_mode = 'ANSI_QUOTES' for prepare s from "
       "'delete from \"labs\" where id = 5 and result <> ''{m}'''"),
    # whitespace
    ev("tabs", "delete\tfrom\tlabs\twhere\tid = 5 and result <> '{m}'"),
    ev("newlines", "delete\nfrom\nlabs\nwhere\nid = 5 and result <> '{m}'"),
    ev("carriage returns", "delete\rfrom\rlabs\rwhere id = 5 and result <> '{m}'"),
    ev("form feeds", "delete\x0cfrom\x0clabs\x0cwhere id = 5 and result <> '{m}'"),
    ev("vertical tabs", "delete\x0bfrom\x0blabs\x0bwhere id = 5 and result <> '{m}'"),
    ev("leading and trailing blanks", " \t\r\n " + D + " \n\t "),
    ev("a long run of blanks", "delete" + " " * 200000 + "from labs where id = 5 and result <> '{m}'"),
    ev("a long comment", "delete /*" + "x" * 100000 + "*/ from labs where id = 5 and result <> '{m}'"),
    ev("no-break space (UTF-8) between words", "delete\u00a0from labs where id = 5 and result <> '{m}'"),
    # multi-statement packets
    ev("second of two", "select 1; " + D),
    ev("last of three", "select 1; select 2; " + D),
    ev("first of two", D + "; select 1"),
    ev("after a string holding ;", "select ';'; " + D),
    ev("after a comment holding ;", "select 1 /* ; */; " + D),
    ev("after a hash comment holding ;", "select 1 # ;\n; " + D),
    ev("empty statements around", ";;" + D + ";;"),
    ev("after a harmless SET", "set @x = 1; " + D),
    ev("after SET sql_mode in the same packet", ANSI + "; delete from \"labs\" where id = 5 and result <> '{m}'"),
    ev("after SET NAMES in the same packet", "set names utf8mb4; " + D),
    ev("inside a transaction", "start transaction; " + D + "; commit"),
    ev("after USE", "use clinical; " + D),
    ev("after EXECUTE of a prepared SET sql_mode = NO_BACKSLASH_ESCAPES",
       "execute s; select '\\'; delete from labs where id = 5 /* {m} */; -- '",
       pre=["prepare s from 'set sql_mode = ''NO_BACKSLASH_ESCAPES'''"]),
    ev("after EXECUTE of a prepared SET sql_mode = ANSI_QUOTES",
       "execute s; select 1 as \"a\\\"; delete from labs where id = 5 /* {m} */; -- \"",
       pre=["prepare s from 'set sql_mode = ''ANSI_QUOTES'''"]),
    # PREPARE and EXECUTE
    ev("PREPARE FROM a string", "prepare s from 'delete from labs where id = 5 and result <> ''{m}'''"),
    ev("PREPARE FROM a double-quoted string", "prepare s from \"delete from labs where id = 5 and result <> '{m}'\""),
    ev("PREPARE FROM a utf8mb4 string", "prepare s from _utf8mb4'delete from labs where id = 5 and result <> ''{m}'''"),
    ev("PREPARE FROM an N string", "prepare s from N'delete from labs where id = 5 and result <> ''{m}'''"),
    ev("PREPARE FROM a latin1 string", "prepare s from _latin1'delete from labs where id = 5 and result <> ''{m}'''"),
    ev("PREPARE FROM two adjacent strings", "prepare s from 'delete from la' 'bs where id = 5 and result <> ''{m}'''"),
    ev("PREPARE FROM hex", "prepare s from 0x%s /*{m}*/" % hexstr("delete from labs where id = 5")),
    ev("PREPARE FROM X''", "prepare s from x'%s' /*{m}*/" % hexstr("delete from labs where id = 5")),
    ev("PREPARE FROM a variable", "prepare s from @q /*{m}*/",
       pre=["set @q = 'delete from labs where id = 5'"]),
    ev("PREPARE FROM concat()", "prepare s from concat('delete from la', 'bs where id = 5') /*{m}*/"),
    ev("PREPARE with escapes in the text",
       "prepare s from 'delete\\tfrom\\nlabs where id = 5 and result <> \\'{m}\\''"),
    ev("PREPARE of a versioned comment",
       "prepare s from '/*!50000 delete from labs where id = 5 and result <> ''{m}'' */'"),
    ev("EXECUTE IMMEDIATE", "execute immediate 'delete from labs where id = 5 and result <> ''{m}'''"),
    ev("EXECUTE IMMEDIATE concat()",
       "execute immediate concat('delete from la', 'bs where id = 5 and result <> ''{m}''')"),
    ev("SET STATEMENT ... FOR", "set statement max_statement_time = 10 for " + D),
    ev("SET STATEMENT sql_mode ... FOR", "set statement sql_mode = '' for " + D),
    ev("WITH ... DELETE", "with x as (select 5 as i) delete from labs where id = 5 and result <> '{m}'"),
    ev("WITH named labs ... DELETE", "with labs as (select 5 as id) delete from labs where id = 5 and result <> '{m}'"),
    # multi-table DELETE
    ev("DELETE t FROM t JOIN", "delete labs from labs join patients on labs.patient_id = patients.id "
       "where labs.id = 5 and result <> '{m}'"),
    ev("DELETE alias FROM t alias JOIN", "delete l from labs l join patients p on l.patient_id = p.id "
       "where l.id = 5 and l.result <> '{m}'"),
    ev("DELETE FROM t USING", "delete from labs using labs join patients on labs.patient_id = patients.id "
       "where labs.id = 5 and result <> '{m}'"),
    ev("DELETE FROM alias USING t AS alias", "delete from l using labs as l where l.id = 5 and l.result <> '{m}'"),
    ev("DELETE t.* FROM t", "delete labs.* from labs where id = 5 and result <> '{m}'"),
    ev("DELETE two tables", "delete scratch, labs from scratch, labs where labs.id = 5 and labs.result <> '{m}'"),
    ev("DELETE qualified in the list", "delete clinical.labs from clinical.labs where id = 5 and result <> '{m}'"),
    ev("DELETE scratch FROM scratch, but JOIN labs", "delete labs from scratch right join labs on 1 = 1 "
       "where labs.id = 5 and labs.result <> '{m}'"),
    # through a view, a constraint or DDL (the rows of labs go all the same)
    ev("DELETE through a view made by root", "delete from labs_v where id = 5 and result <> '{m}'"),
    ev("DELETE through a view the agent makes", "delete from lv2 where id = 5 and result <> '{m}'",
       pre=["create view lv2 as select * from labs"]),
    ev("DELETE through a view of a view", "delete from lv3 where id = 5 and result <> '{m}'",
       pre=["create view lv3 as select * from labs_v"]),
    ev("DELETE that cascades through a foreign key ON DELETE CASCADE",
       "delete from par where id = 5 and '{m}' <> ''",
       root=["create table par (id int primary key)", "insert into par select distinct id from labs",
             "alter table labs add constraint fk_par foreign key (id) references par (id) on delete cascade"]),
    ev("DELETE that cascades through a foreign key the agent adds to labs",
       "delete from par where id = 5 and '{m}' <> ''",
       root=["create table par (id int primary key)", "insert into par select distinct id from labs"],
       pre=["alter table labs add constraint fk_par foreign key (id) references par (id) on delete cascade"]),
    ev("CREATE OR REPLACE TABLE labs", "create or replace table labs (id int) comment '{m}'"),
    ev("ALTER TABLE labs DISCARD TABLESPACE (the data file goes)", "alter table labs discard tablespace /* {m} */"),
    ev("ALTER TABLE labs DROP INDEX (DROP INDEX ... ON labs is denied)", "alter table labs drop index ix_res /* {m} */",
       root=["alter table labs add index ix_res (result)"]),
    ev("CREATE OR REPLACE DATABASE (drops it first)", "create or replace database hoop_scratch /* {m} */",
       root=["create database if not exists hoop_scratch", "create table if not exists hoop_scratch.keep (id int)",
             "grant all on hoop_scratch.* to 'agent'@'127.0.0.1'"]),
    ev("LOAD_FILE (the file rule names PostgreSQL's functions only)", "select load_file('/etc/hostname') /* {m} */"),
    ev("ALTER TABLE labs TRUNCATE PARTITION", "alter table labs truncate partition all /* {m} */",
       pre=["alter table labs partition by hash (id) partitions 2"]),
    ev("ALTER TABLE labs DROP PARTITION", "alter table labs drop partition p0 /* {m} */",
       root=["alter table labs partition by range (id) (partition p0 values less than (10), "
             "partition p1 values less than maxvalue)"]),
    ev("ALTER TABLE labs EXCHANGE PARTITION (rows moved out)",
       "alter table labs exchange partition p0 with table lbx /* {m} */",
       root=["alter table labs partition by range (id) (partition p0 values less than (10), "
             "partition p1 values less than maxvalue)", "create table lbx like labs",
             "alter table lbx remove partitioning"]),
    ev("ALTER IGNORE TABLE labs ADD UNIQUE (drops duplicate rows)",
       "alter ignore table labs add unique key (result) /* {m} */"),
    ev("ALTER TABLE labs MODIFY (a type change that destroys values)", "alter table labs modify result int /* {m} */",
       pre=["set sql_mode = ''"]),
    ev("ANALYZE of a DELETE (runs it)", "analyze format=json delete from labs where id = 5 and result <> '{m}'"),
    ev("EXPLAIN of a DELETE", "explain delete from labs where id = 5 and result <> '{m}'"),
    ev("ALTER TABLE labs CHANGE (a rename of a column)", "alter table labs change result r varchar(32) /* {m} */"),
    ev("ALTER TABLE labs DROP quoted column", "alter table labs drop `result` /* {m} */"),
    ev("ALTER TABLE labs DROP COLUMN IF EXISTS", "alter table labs drop column if exists result /* {m} */"),
    ev("ALTER TABLE labs RENAME", "alter table labs rename to labs_old /* {m} */"),
    ev("RENAME TABLE", "rename table labs to labs_old /* {m} */"),
    # REPLACE (insert and delete), LOAD DATA, files
    ev("REPLACE INTO labs VALUES", "replace into labs values (5, 1, '{m}')"),
    ev("REPLACE INTO labs SET", "replace labs set id = 5, patient_id = 1, result = '{m}'"),
    ev("REPLACE INTO labs SELECT", "replace into labs select 5, 1, '{m}'"),
    ev("REPLACE in an executable comment", "/*!replace*/ into labs values (5, 1, '{m}')"),
    ev("LOAD DATA INFILE into labs", "load data infile '/etc/hostname' replace into table labs /* {m} */"),
    ev("LOAD DATA LOCAL INFILE", "load data local infile '/etc/hostname' into table labs /* {m} */"),
    ev("LOAD XML", "load xml infile '/etc/hostname' into table labs /* {m} */"),
    ev("SELECT INTO OUTFILE in an executable comment",
       "select id from labs where result <> '{m}' /*!50000 into outfile '/tmp/hoop-hostile-out' */"),
    ev("SELECT INTO DUMPFILE",
       "select result from labs where result <> '{m}' limit 1 into dumpfile '/tmp/hoop-hostile-d'"),
    # the other deny rules
    ev("DROP TABLE", "drop table labs /* {m} */"),
    ev("DROP TABLE IF EXISTS, qualified", "drop table if exists clinical.labs /* {m} */"),
    ev("DROP in an executable comment", "/*!drop*/ table labs /* {m} */"),
    ev("DROP TABLE second in a packet", "select 1; drop table labs /* {m} */"),
    ev("TRUNCATE", "truncate labs /* {m} */"),
    ev("TRUNCATE TABLE versioned", "/*!50000 truncate table */ labs /* {m} */"),
    ev("DROP VIEW", "drop view labs_v /* {m} */"),
    ev("DROP DATABASE", "drop database clinical /* {m} */"),
    ev("UPDATE without WHERE", "update labs set result = '{m}'"),
    ev("UPDATE with WHERE in a comment", "update labs set result = '{m}' /* where id = 5 */"),
    ev("DELETE without WHERE", "delete from scratch /* {m} */"),
    ev("GRANT", "grant select on clinical.* to 'analyst'@'127.0.0.1' /* {m} */"),
    ev("GRANT in an executable comment", "/*!grant*/ select on clinical.* to 'analyst'@'127.0.0.1' /* {m} */"),
    ev("CREATE USER", "create user 'evil{m}'@'%'"),
    ev("SET PASSWORD", "set password = password('{m}')"),
    ev("SET PASSWORD after a variable", "set @a = 1, password = password('{m}')"),
    ev("SET PASSWORD FOR another user after a variable",
       "set @a = 1, password for 'analyst'@'127.0.0.1' = password('{m}')"),
    ev("SET ROLE", "set role none /* {m} */"),
    ev("SET GLOBAL", "set global max_connections = 77 /* {m} */"),
    ev("SET @@global.", "set @@global.max_connections = 77 /* {m} */"),
    ev("SET GLOBAL after a variable", "set @a = 1, global max_connections = 77 /* {m} */"),
    ev("SET @@global with blanks around the dot", "set @@global . max_connections = 77 /* {m} */"),
    ev("SET @@global with a comment before the dot", "set @@global/**/.max_connections = 77 /* {m} */"),
    ev("FLUSH", "flush privileges /* {m} */"),
    ev("SHUTDOWN", "shutdown /* {m} */"),
    ev("INSTALL SONAME", "install soname 'ha_blackhole' /* {m} */"),
    ev("BINLOG", "binlog '{m}'"),
    ev("CREATE TRIGGER", "create trigger tr{m} after insert on scratch for each row delete from labs where id = 5"),
    ev("CREATE PROCEDURE", "create procedure pr{m}() delete from labs where id = 5"),
    ev("CREATE EVENT", "create event ev{m} on schedule every 1 hour do delete from labs where id = 5"),
    # bytes hoopd must not read past
    ev("charset introducer in the WHERE", "delete from labs where id = 5 and result <> _utf8mb4'{m}'"),
    ev("binary introducer", "delete from labs where id = 5 and result <> _binary'{m}'"),
    ev("hex and bit literals", "delete from labs where id = 0x05 and result <> x'00' and b'1' /* {m} */"),
    ev("\\N", "delete from labs where id = 5 and result <> \\N /* {m} */"),
    ev("NUL byte after the statement", b"delete from labs where id = 5 and result <> '{m}'\x00", via="raw"),
    ev("NUL byte before the statement", b"\x00delete from labs where id = 5 and result <> '{m}'", via="raw"),
    ev("NUL byte in a comment", b"delete /*\x00*/ from labs where id = 5 and result <> '{m}'", via="raw"),
    ev("NUL byte in a string", b"delete from labs where id = 5 and result <> '\x00{m}'", via="raw"),
    ev("stray byte 0x01", b"delete\x01from labs where id = 5 and result <> '{m}'", via="raw"),
    ev("stray byte 0xff in a name", b"delete from labs\xff where id = 5 and result <> '{m}'", via="raw"),
    ev("invalid UTF-8 in a comment", b"delete /* \xc3\x28 */ from labs where id = 5 and result <> '{m}'", via="raw"),
    ev("invalid UTF-8 in a string", b"delete from labs where id = 5 and result <> '\xc3{m}'", via="raw"),
    ev("latin1 session", "delete from labs where id = 5 and result <> '{m}'", pre=["set names latin1"]),
    ev("sjis session", "delete from labs where id = 5 and result <> '{m}'", pre=["set names sjis"]),
    ev("gbk character_set_client", "delete from labs where id = 5 and result <> '{m}'",
       pre=["set character_set_client = gbk"]),
    ev("MSSQL sql_mode", "delete from [labs] where id = 5 and result <> '{m}'", pre=["set sql_mode = 'MSSQL'"]),
    ev("ORACLE sql_mode", "delete from labs where id = 5 and result <> '{m}'", pre=["set sql_mode = 'ORACLE'"]),
    # the binary protocol
    ev("COM_STMT_PREPARE", D, via="binary"),
    ev("COM_STMT_PREPARE with a placeholder", "delete from labs where id = ? and result <> '{m}'", via="binary"),
    ev("COM_STMT_PREPARE, executable comment", "/*!50000 delete from labs where id = 5 and result <> '{m}' */",
       via="binary"),
    ev("COM_STMT_PREPARE, backticks and case", "DELETE FROM `clinical`.`LABS` WHERE id = 5 AND result <> '{m}'",
       via="binary"),
    ev("COM_STMT_PREPARE of two statements", "select 1; " + D, via="binary"),
    ev("COM_STMT_PREPARE of REPLACE", "replace into labs values (5, 1, '{m}')", via="binary"),
    ev("COM_STMT_PREPARE of TRUNCATE", "truncate labs /* {m} */", via="binary"),
    ev("COM_STMT_PREPARE of a multi-table DELETE", "delete l from labs l where l.id = 5 and l.result <> '{m}'",
       via="binary"),
    ev("COM_STMT_PREPARE of PREPARE", "prepare s from 'delete from labs where id = 5 and result <> ''{m}'''",
       via="binary"),
]


def expand(sql, m, ver):
    if isinstance(sql, bytes):
        return sql.replace(b"{m}", m.encode())
    return sql.replace("{m}", m).replace("{ver}", ver)


def server_version_id(ctx):
    v = ctx.db.sql("select version()")[0][0]
    a, b, c = re.match(r"(\d+)\.(\d+)\.(\d+)", v).groups()
    return "%d%02d%02d" % (int(a), int(b), int(c))


# Cases whose outcome is a documented limit of both engines (docs/mysql.md, "Known limits of
# the rules"), logged and not counted:
#  - a DELETE through a view names the view, not labs: no-lab-deletes does not match it; the
#    shipped policy holds it (a filter over a table that is not a known base table), so it runs
#    only if an approver approves the text, which names the view;
#  - ON DELETE CASCADE deletes rows of a table the statement does not name;
#  - a column type change (MODIFY) is alter_table, which the shipped policy allows, as
#    PostgreSQL's ALTER COLUMN TYPE;
#  - ALTER TABLE ... PARTITION BY changes labs' definition (allowed alter_table) before the
#    refused TRUNCATE PARTITION: only the rows are compared there.
HELD_OK = {"DELETE through a view made by root", "DELETE through a view the agent makes",
           "DELETE through a view of a view"}
KNOWN = {"DELETE that cascades through a foreign key ON DELETE CASCADE",
         "DELETE that cascades through a foreign key the agent adds to labs",
         "ALTER TABLE labs MODIFY (a type change that destroys values)"}
ROWS_ONLY = {"ALTER TABLE labs TRUNCATE PARTITION"}


def test_evasion_corpus(ctx):
    """Every statement refused by hoopd (1227 from a deny rule, 1064 unread), none in MariaDB's
    general log, clinical.labs unchanged (but the documented limits above)."""
    check(len(EVASIONS) >= 100, "the evasion corpus has %d statements" % len(EVASIONS))
    ver = server_version_id(ctx)
    bad, seen = [], collections.Counter()
    for i, e in enumerate(EVASIONS):
        m = "%s_ev%03d" % (MARK, i)
        sql = expand(e.sql, m, ver)
        steps = [("text" if e.via == "text" else "mtext", p) for p in e.pre] + [(e.via, sql)]
        for q in e.root:
            ctx.db.sql(q, db="clinical")
        before = labs_state(ctx)
        since = len(trail(ctx))
        res = agent_session(ctx, steps)
        rules = verdicts(ctx, since, list(e.pre) + ([sql] if isinstance(sql, str) else []))
        main = res[len(e.pre)]
        word = outcome(main)
        seen[word] += 1
        problems = []
        if e.label in HELD_OK and word == "held":
            pass  # held for an approver (see HELD_OK), never run without one
        elif not refused_by_hoopd(main):
            problems.append("not refused by hoopd: %s (verdict %s) %r" % (
                word, rules[-1] if isinstance(sql, str) else "-", main[:3] if main[0] != "ok" else main[0]))
        saw = server_saw(ctx, m)
        if saw:
            problems.append("MariaDB's general log has it: %r" % [s[:160] for s in saw])
        after = labs_state(ctx)
        if e.label in ROWS_ONLY:
            before, after = before[1], after[1]
        if after != before:
            problems.append("clinical.labs changed: %s" % describe_labs_change(before, after))
        log("evasion %03d %-9s %s%s" % (i, word if not problems else "EVADED", e.label,
                                        "" if not problems else " <- " + "; ".join(problems)))
        if problems and e.label in KNOWN:
            log("evasion %03d known limit (docs/mysql.md): %s" % (i, e.label))
            problems = []
        if problems:
            pre = ["%s (%s)" % (outcome(r), v) for r, v in zip(res[:len(e.pre)], rules)]
            bad.append("[%03d] %s\n      statement: %r%s\n      %s" % (
                i, e.label, sql[:300] if isinstance(sql, str) else sql[:300],
                ("\n      made by root first: %r" % (list(e.root),) if e.root else "") +
                ("\n      before it, on the same connection: %r -> %r" % (list(e.pre), pre) if e.pre else ""),
                "\n      ".join(problems)))
        restore(ctx)
    log("evasion outcomes: %r" % dict(seen))
    check(not bad, "%d of %d statements got past hoopd:\n%s" % (len(bad), len(EVASIONS), "\n".join(bad)))


def describe_labs_change(before, after):
    if after[0] == "gone":
        return "the table is gone (%s)" % after[1]
    if after[0] != before[0]:
        return "its definition is now %r" % after[0][:300]
    rows_b, rows_a = set(before[1]), set(after[1])
    return "%d rows -> %d (lost %r)" % (len(before[1]), len(after[1]), sorted(rows_b - rows_a)[:5])


# --- harmless statements hoopd refuses (reported, not failed) -----------------------------------------

HARMLESS = [
    "select 'delete from labs where id = 5'",
    "select 1 from dual where 'drop table labs' <> ''",
    "select id from labs where result = 'truncate' limit 1",
    "select id from labs_v limit 1",
    "/*!99999 delete from labs */ select 1",
    "with labs as (select 1 as x) select x from labs",
    "select 1; select 2",
    "prepare s from 'select id from labs limit 1'",
    "set names utf8mb4",
    "set sql_mode = 'ANSI_QUOTES'",
    "do 1",
    "execute immediate 'select 1'",
    "select 1e5x",
    "drop temporary table if exists t_own",
    "create temporary table t_own (id int)",
    "select 0x41, x'41', b'1', N'x', _binary'x', _utf8mb4'x'",
    "select cast('a' as binary), cast('a' as char)",
    "select convert(result using latin1), id from labs where id = 1 limit 1",
    "select 'it''s', \"it\\\"s\", 'a\\'b'",
    "analyze table labs",
    "checksum table labs",
    "help 'select'",
    "show create table labs",
    "show warnings",
    "select @@version, @@session.sql_mode",
    "explain select * from labs",
    "handler labs open",
    "start transaction read only",
    "set transaction isolation level read committed",
    "select * from labs where id = 5 limit 1 lock in share mode",
    "select json_extract('{\"a\": 1}', '$.a')",
    "select 1 /*M!100000 + 1 */",
    "lock tables scratch write",
    "kill query 999999999",
    "get diagnostics @n = number",
    "select * from information_schema.tables where table_schema = 'clinical' limit 1",
]


def test_harmless_statements_refused(ctx):
    """Statements that harm nothing, each on its own connection: the ones hoopd refuses or holds
    are false positives, logged for the report (this test fails only when a statement is lost)."""
    fp = []
    for q in HARMLESS:
        since = len(trail(ctx))
        r = agent_session(ctx, [("text", q)])[0]
        w = outcome(r)
        if w in ("denied", "unparsed", "held", "too long") or w.startswith("hoop"):
            fp.append("%-9s %s  (%s: %s)" % (w, q, verdicts(ctx, since, [q])[0], r[2][:150]))
        check(w != "connection lost", "%s: the connection was lost: %r" % (q, r))
        restore(ctx)
    log("harmless statements hoopd refuses or holds (false positives), %d of %d:\n  %s" % (
        len(fp), len(HARMLESS), "\n  ".join(fp)))


# --- 2. the masking exfiltration corpus ----------------------------------------------------------------

Mq = collections.namedtuple("Mq", "label steps")


def mq(label, query, pre=(), via="text", fresh=False):
    """pre on one text connection; then query on the same one (or a fresh one: fresh) by via."""
    pre_how, warn = ("text", "warnings") if via == "text" else ("mtext", "mwarnings")
    steps = [(pre_how, p) for p in pre]
    if fresh:
        steps.append(("new", None))
    steps += [(via, query), (warn, None)]
    return Mq(label, steps)


INTO_VARS = "select * from patients where id = 1 limit 1 into @i, @fn, @ln, @ssn, @dob, @email, @notes, @visits"

MASKING = [
    # aliases
    mq("alias to an unmasked name", "select ssn as id, email as visits from patients order by id limit 5"),
    mq("alias through a table alias", "select p.ssn as result from patients p limit 5"),
    mq("SELECT *", "select * from patients limit 5"),
    mq("alias, binary", "select ssn as id, first_name as notes, dob as visits from patients limit 5", via="binary"),
    # views (made by root)
    mq("view", "select id, ssn, first_name, last_name, dob, email from v_pat limit 5"),
    mq("TEMPTABLE view", "select ssn, first_name, dob, email from v_tmp limit 5"),
    mq("view with other columns' names", "select visits, result, patient_id, id2, notes_date from v_swap limit 5"),
    mq("TEMPTABLE view with other columns' names",
       "select visits, result, patient_id, notes_date from v_swap_tt limit 5"),
    mq("view with other columns' names, binary",
       "select visits, result, patient_id, id2, notes_date from v_swap limit 5",
       via="binary"),
    mq("view joined to its base table",
       "select v.visits, p.visits from v_swap v join patients p on p.id = v.id limit 5"),
    mq("view, computed", "select reverse(visits), replace(visits, '-', ''), upper(patient_id) from v_swap limit 5"),
    # derived tables named like real tables, CTEs, UNION
    mq("derived table", "select id from (select ssn id from patients) patients2 limit 5"),
    mq("derived table aliased labs", "select id, result from (select id, ssn as result from patients) labs limit 5"),
    mq("derived table aliased patients", "select ssn from (select email as ssn from patients) patients limit 5"),
    mq("derived table, binary", "select x from (select first_name as x from patients) labs limit 5", via="binary"),
    mq("CTE", "with c as (select ssn, email from patients) select ssn, email from c limit 5"),
    mq("CTE named patients",
       "with patients as (select ssn as visits from clinical.patients) select visits from patients limit 5"),
    mq("UNION with a clean table", "select result from labs union all select ssn from patients limit 60"),
    mq("UNION, clean first", "select id, result from labs where id = 1 union select id, email from patients limit 5"),
    mq("subquery in the select list",
       "select (select ssn from patients p2 where p2.id = labs.patient_id) from labs limit 5"),
    # functions, casts, JSON, aggregates, arithmetic
    mq("string functions", "select concat(ssn, ''), substr(ssn, 1, 6), reverse(ssn), hex(ssn), to_base64(ssn) "
       "from patients limit 5"),
    mq("more string functions", "select lpad(ssn, 12, 'x'), replace(ssn, '-', ''), insert(ssn, 1, 0, 'x'), "
       "elt(1, ssn, 'a'), lower(first_name), upper(last_name) from patients limit 5"),
    mq("field and find_in_set",
       "select field(ssn, '000-00-0000', ssn), find_in_set('000-00-0000', ssn) from patients limit 5"),
    mq("string functions, binary", "select reverse(ssn), hex(email), to_base64(first_name) from patients limit 5",
       via="binary"),
    mq("casts", "select cast(ssn as char), cast(dob as char), cast(dob as unsigned), binary first_name, "
       "cast(email as char(200)) from patients limit 5"),
    mq("CONVERT ... USING",
       "select convert(email using latin1), convert(first_name using utf8mb4) from patients limit 5"),
    mq("JSON_OBJECT", "select json_object('s', ssn, 'e', email, 'n', first_name) from patients limit 5"),
    mq("JSON_ARRAYAGG", "select json_arrayagg(ssn) from patients limit 1"),
    mq("GROUP_CONCAT", "select group_concat(first_name, last_name) from patients limit 1"),
    mq("min and max", "select min(ssn), max(ssn), min(dob), max(email), min(last_name) from patients limit 1"),
    mq("arithmetic on dob", "select dob + 0, dob + interval 1 day, to_days(dob), year(dob) * 10000 + month(dob) * 100 "
       "+ day(dob) from patients limit 5"),
    mq("CASE on a prefix", "select case when ssn like '1%' then 'one' else 'other' end from patients limit 5"),
    mq("comparison in the select list",
       "select ssn = '107-11-1037' as c1, email like 'alma%' as c2 from patients limit 5"),
    mq("predicate on ssn (inference)", "select id from patients where ssn like '107%' limit 5"),
    mq("predicate through a view (inference)", "select id from v_swap where visits like '107%' limit 5"),
    mq("window functions", "select lag(ssn) over (order by id), first_value(email) over (order by id) from patients "
       "limit 5"),
    mq("ORDER BY position", "select ssn, id from patients order by 1 limit 5"),
    mq("LIMIT offset", "select ssn from patients limit 1 offset 3"),
    mq("JSON_TABLE", "select s from json_table((select json_arrayagg(ssn) from patients), '$[*]' "
       "columns (s varchar(20) path '$')) jt limit 5"),
    # executable comments and quoting
    mq("executable comment", "select /*!50000 reverse(ssn) */ from patients limit 5"),
    mq("MariaDB executable comment", "select id /*M!100000 , concat(ssn, '') */ from patients limit 5"),
    mq("skipped versioned comment", "select reverse(/*!99999 id, */ email) from patients limit 5"),
    mq("ANSI_QUOTES name", "select reverse(\"ssn\"), \"first_name\" from patients limit 5", pre=[ANSI]),
    mq("backticked name", "select reverse(`ssn`), concat(`first_name`) from patients limit 5"),
    mq("name with a trailing blank", "select reverse(`ssn `) from patients limit 5"),
    # multi-statement packets and prepared statements
    mq("multi-statement, masked second", "select 1; select ssn, reverse(ssn) from patients limit 5"),
    mq("multi-statement, view second", "select id from labs limit 1; select visits, patient_id from v_swap limit 5"),
    mq("PREPARE and EXECUTE", "execute s", pre=["prepare s from 'select ssn, first_name, reverse(ssn) from patients "
                                                 "limit 5'"]),
    mq("PREPARE of a view, EXECUTE",
       "execute s", pre=["prepare s from 'select visits, patient_id from v_swap limit 5'"]),
    # user variables
    mq("variable assigned in a select", "select @v", pre=["select @v := ssn from patients limit 1"]),
    mq("SELECT * INTO variables", "select @ssn, @fn, @dob, @email, reverse(@ssn)", pre=[INTO_VARS]),
    mq("SELECT * INTO variables, binary", "select @ssn, reverse(@email)", pre=[INTO_VARS], via="binary"),
    mq("SET from a view", "select @s, reverse(@s)", pre=["set @s = (select visits from v_swap where id = 3)"]),
    # session state read back by a statement that reads no table
    mq("LAST_INSERT_ID(expr)", "select last_insert_id()",
       pre=["select last_insert_id(replace(ssn, '-', '')) from patients where id = 1 limit 1"]),
    mq("LAST_INSERT_ID(expr), binary", "select last_insert_id()",
       pre=["select last_insert_id(replace(ssn, '-', '')) from patients where id = 2 limit 1"], via="binary"),
    mq("LAST_INSERT_ID from a variable", "select last_insert_id()",
       pre=[INTO_VARS, "select last_insert_id(to_days(@dob))"]),
    mq("timestamp from a variable", "select unix_timestamp(), @@timestamp",
       pre=[INTO_VARS, "set timestamp = to_days(@dob)"]),
    # warnings and error messages
    mq("cast error in a warning", "select cast(ssn as int), cast(email as double) from patients limit 1"),
    mq("cast error in a warning, view", "select cast(visits as int) from v_swap limit 1"),
    mq("strict cast error", "insert into scratch (id, x) select 1, cast(visits as int) from v_swap where id = 1",
       pre=["set sql_mode = 'STRICT_ALL_TABLES'"]),
    mq("XPATH error", "select extractvalue(1, concat(0x7e, (select visits from v_swap where id = 1)))"),
    mq("XPATH error with a quote", "select updatexml(1, concat(0x27, (select visits from v_swap where id = 1)), 1)"),
    mq("XPATH error with a quote, from a variable", "select updatexml(1, concat(0x27, @email), 1)", pre=[INTO_VARS]),
    mq("SET sql_mode error", "set sql_mode = @ssn", pre=[INTO_VARS]),
    mq("SET time_zone error", "set time_zone = @fn", pre=[INTO_VARS]),
    mq("SET autocommit error", "set autocommit = @fn", pre=[INTO_VARS]),
    mq("strict conversion error", "insert into scratch (id) values (@ssn)",
       pre=[INTO_VARS, "set sql_mode = 'STRICT_ALL_TABLES'"]),
    mq("duplicate key error in a temporary table", "insert into tu values (@ssn), (@ssn)",
       pre=[INTO_VARS, "create temporary table tu (u varchar(200) primary key)"]),
    mq("duplicate key error in a temporary table, copied column",
       "insert into tu select ssn from patients where id = 1 union all select ssn from patients where id = 1",
       pre=["create temporary table tu (u varchar(200) primary key)"]),
    mq("strict conversion error with a quote", "insert into scratch (id) values (concat('''', @fn))",
       pre=[INTO_VARS, "set sql_mode = 'STRICT_ALL_TABLES'"]),
    mq("duplicate key error with a quote, from a variable",
       "insert into uniq (u) values (concat('''', @email)), (concat('''', @email))", pre=[INTO_VARS]),
    mq("session variable read back", "select @@max_join_size, @@session.default_master_connection",
       pre=[INTO_VARS, "set max_join_size = cast(replace(@ssn, '-', '') as unsigned)",
            "set default_master_connection = @ln"]),
    mq("SHOW VARIABLES read back", "show session variables where variable_name in ('max_join_size', 'timestamp')",
       pre=[INTO_VARS, "set max_join_size = cast(replace(@ssn, '-', '') as unsigned)",
            "set timestamp = to_days(@dob)"]),
    mq("SHOW USER_VARIABLES", "show user_variables", pre=[INTO_VARS]),
    mq("information_schema.user_variables", "select variable_name, variable_value from "
       "information_schema.user_variables limit 20", pre=[INTO_VARS]),
    mq("duplicate key error", "insert into uniq (u) select visits from v_swap where id = 1 union all "
       "select visits from v_swap where id = 1"),
    mq("duplicate key error with a quote", "insert into uniq (u) select concat('''', visits) from v_swap where id = 1 "
       "union all select concat('''', visits) from v_swap where id = 1"),
    mq("duplicate key error, direct", "insert into uniq (u) select ssn from patients where id = 1 union all "
       "select ssn from patients where id = 1"),
    mq("GET DIAGNOSTICS", "select @msg", pre=["select cast(ssn as int) from patients limit 1",
                                              "get diagnostics condition 1 @msg = message_text"]),
    # laundering: copies read back
    mq("INSERT ... SELECT then read", "select id, x, replace(x, '-', '') from scratch limit 5",
       pre=["insert into scratch (id, x) select id, ssn from patients limit 5"], fresh=True),
    mq("INSERT ... SELECT from a view then read", "select id, x, replace(x, '-', ''), d from scratch limit 5",
       pre=["insert into scratch (id, x, d) select id, visits, notes_date from v_swap limit 5"], fresh=True),
    mq("CREATE TABLE AS SELECT * then read", "select replace(ssn, '-', ''), first_name, dob from lx1 limit 5",
       pre=["create table lx1 as select * from patients limit 5"], fresh=True),
    mq("CREATE TABLE AS SELECT * from a view then read",
       "select replace(visits, '-', ''), patient_id, id2, notes_date, replace(result, '@', ' at ') from lx2 limit 5",
       pre=["create table lx2 as select * from v_swap limit 5"], fresh=True),
    mq("CREATE TEMPORARY TABLE AS SELECT", "select replace(ssn, '-', ''), first_name from tt limit 5",
       pre=["create temporary table tt as select ssn, first_name from patients limit 5"]),
    mq("temporary table named labs from a view",
       "select replace(visits, '-', ''), patient_id, id2, notes_date from labs limit 5",
       pre=["create temporary table labs as select * from v_swap limit 5"]),
    mq("temporary table named labs from a view, binary",
       "select replace(visits, '-', ''), patient_id from labs limit 5",
       pre=["create temporary table labs as select * from v_swap limit 5"], via="binary"),
    mq("view the agent makes, then a temporary table named labs",
       "select replace(x, '-', ''), y, z from labs limit 5",
       pre=["create view vv as select id, ssn as x, dob as y, first_name as z from patients",
            "create temporary table labs as select * from vv limit 5"]),
    mq("generated column on patients", "select s2 from patients limit 5",
       pre=["alter table patients add column s2 varchar(20) as (replace(ssn, '-', '')) virtual"], fresh=True),
    mq("ALTER ... CHANGE renames a masked column of a copy", "select s from lx3 limit 5",
       pre=["create table lx3 as select * from patients limit 5", "alter table lx3 change ssn s char(11)"],
       fresh=True),
    mq("HANDLER", "handler patients read first", pre=["handler patients open"]),
    mq("HANDLER under an alias", "handler p read first", pre=["handler patients open as p"]),
    mq("PROCEDURE ANALYSE", "select * from patients limit 50 procedure analyse()"),
    mq("information_schema.processlist", "select info from information_schema.processlist limit 10"),
]


def needles(ctx):
    """(what, needle, how) for every stored value of a masked column and its forms."""
    out = []
    for p in ctx.patients:
        for kind, v in (("ssn", p["ssn"]), ("notes ssn", p["note_ssn"]), ("email", p["email"]),
                        ("dob", str(p["dob"]))):
            if not v:
                continue
            forms = {"": v, " reversed": v[::-1], " in hex": v.encode().hex(),
                     " in base64": base64.b64encode(v.encode()).decode(), " prefix": v[:5]}
            if kind.endswith("ssn"):
                forms[" digits"] = v.replace("-", "")
                forms[" digits reversed"] = v.replace("-", "")[::-1]
            if kind == "dob":
                forms[" digits"] = v.replace("-", "")
                del forms[" prefix"]  # a year and a dash: common in masked dates and timestamps
                # TO_DAYS(dob): a number of its own, not part of a longer one
                out.append(("dob as to_days of patient %d" % p["id"], None,
                            re.compile(r"(?<!\d)%d(?!\d)" % (p["dob"].toordinal() + 365))))
            for how, n in forms.items():
                out.append(("%s%s of patient %d" % (kind, how, p["id"]), n.lower(), None))
        for kind in ("first_name", "last_name"):
            v = p[kind]
            out.append(("%s of patient %d" % (kind, p["id"]), None, re.compile(r"\b(%s|%s|%s)\b" % (
                v, v.lower(), v.upper() if v.upper() != "GRANT" else v))))
            for how, n in ((" in hex", v.encode().hex()), (" in base64", base64.b64encode(v.encode()).decode())):
                out.append(("%s%s of patient %d" % (kind, how, p["id"]), n.lower(), None))
    return out


def flatten(x):
    """Every string the agent received in x (rows, column names, messages), as one text."""
    if isinstance(x, (list, tuple)):
        return "\n".join(flatten(v) for v in x)
    if isinstance(x, bytes):
        return x.decode(errors="replace")
    return str(x)


def leaks(ctx, text):
    low = text.lower()
    found = []
    for what, n, rx in needles(ctx):
        if (n is not None and n in low) or (rx is not None and rx.search(text)):
            found.append(what)
    return found


def test_masking_corpus(ctx):
    check(len(MASKING) >= 50, "the masking corpus has %d queries" % len(MASKING))
    bad, summary = [], collections.Counter()
    for i, q in enumerate(MASKING):
        since = len(trail(ctx))
        res = agent_session(ctx, q.steps)
        sent = [s for s in q.steps if s[0] != "new"]
        rules = dict(zip([sql for how, sql in sent if sql], verdicts(ctx, since, [sql for how, sql in sent if sql])))
        words = []
        for (how, sql), r in zip(sent, res):
            if sql:
                words.append("%s (%s)" % (outcome(r), rules[sql]))
        main = words[-1] if words else "?"
        summary[main.split(" (")[0]] += 1
        found = leaks(ctx, flatten(res))
        log("masking %03d %-30s %s%s" % (i, main if not found else "LEAKED", q.label,
                                        "" if not found else " <- " + ", ".join(found[:4])))
        if os.environ.get("HOOP_HOSTILE_VERBOSE"):
            for (how, sql), r in zip(sent, res):
                log("      %-8s %s\n               -> %s" % (how, sql or "show warnings",
                                                            flatten(r)[:400].replace("\n", " | ")))
        if found:
            shown = []
            for (how, sql), r in zip(sent, res):
                shown.append("%-8s %s\n               -> %s" % (how, sql or "show warnings", flatten(r)[:300].replace(
                    "\n", " | ")))
            bad.append("[%03d] %s: %s\n      outcomes: %s\n      %s" % (i, q.label, ", ".join(found[:8]), words,
                                                                       "\n      ".join(shown)))
        restore(ctx)
    log("masking outcomes (last statement of each case): %r" % dict(summary))
    check(not bad, "%d of %d queries got PHI out:\n%s" % (len(bad), len(MASKING), "\n".join(bad)))


def test_hoopd_stops_cleanly(ctx):
    check_clean_stop(ctx.hd, ctx.cg.path)


TESTS = [
    test_evasion_corpus,
    test_masking_corpus,
    test_harmless_statements_refused,
    test_hoopd_stops_cleanly,
]

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("e2e tests need root", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_tests(TESTS, setup, teardown, only=sys.argv[1:] or None))
