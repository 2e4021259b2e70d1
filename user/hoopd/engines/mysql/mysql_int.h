/*
 * The MySQL engine's private state and what its pieces share (mysql.c: login, commands,
 * judging; mysql_answer.c: the server's answers and their records; mysql_mask.c: masking of
 * result rows). Other modules see only engine.h's mysql_engine.
 */
#ifndef HOOP_MYSQL_INT_H
#define HOOP_MYSQL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "gate.h"
#include "mysqlclass.h"
#include "mywire.h"

#define MY_MAX_PREPARED 4096 /* prepared statements one session may hold */
#define MY_MAX_COLS 4096     /* columns of one result hoopd follows */
/* prepared statements' texts one session may keep: beyond, a PREPARE is refused (an ERR the
 * client reads; the session goes on), so that one agent cannot grow a worker shared by others */
#define MY_PREPARED_BYTES (16u << 20)

enum my_phase {
	MP_GREET, /* waiting for the server's greeting */
	MP_LOGIN, /* waiting for the agent's handshake response */
	MP_AUTH,  /* authentication packets relayed */
	MP_READY, /* commands */
	MP_QUIT,  /* COM_QUIT sent */
};

/* What the command in flight gets back. */
enum my_resp {
	MR_NONE = 0,
	MR_OK,	     /* one OK or ERR (COM_PING, COM_INIT_DB, COM_STMT_RESET, KILL...) */
	MR_ONE,	     /* one packet of any kind (COM_STATISTICS, COM_SET_OPTION's EOF) */
	MR_RESULT,   /* OK, ERR or result sets, with more results (COM_QUERY, COM_STMT_EXECUTE) */
	MR_PREPARE,  /* COM_STMT_PREPARE's OK and its parameter and column definitions, or ERR */
	MR_FIELDS,   /* COM_FIELD_LIST: column definitions until EOF, or ERR */
	MR_SETTINGS, /* hoopd's own settings query: not forwarded */
	MR_FETCH,    /* COM_STMT_FETCH: binary rows of the statement's open cursor, then EOF; or ERR */
};

/* Where in a result set the answer is. */
enum my_rs { RS_FIRST = 0, RS_COLS, RS_COLEOF, RS_ROWS };

struct my_stmt {
	uint32_t id;
	char *text;
	struct sqlfacts *facts; /* what it does, read when it was prepared */
	uint16_t ncols, nparams;
	uint8_t *types; /* the parameters' types, as the last execution that sent them said */
	uint8_t *long_data; /* [nparams]: the parameter's value came by COM_STMT_SEND_LONG_DATA */
	struct myl_settings lex; /* how the server read its text (the settings at PREPARE) */
	/* a cursor the server opened on its last execution (COM_STMT_FETCH reads it): the
	 * masking plan of that result (NULL when masking was off), the statement record it
	 * continues, the rows and bytes fetched so far */
	int cursor;
	int cursor_withheld; /* a fetch's row could not be masked: the rest is not sent */
	struct my_mask *cursor_mk;
	uint64_t cursor_seq;
	uint64_t cursor_pol_gen; /* the policy its execution was judged and planned under */
	uint64_t cursor_rows, cursor_bytes;
	struct my_stmt *next;
};

struct my_mask; /* mysql_mask.c */

struct my {
	struct session *s;
	enum my_phase phase;
	uint32_t srv_caps; /* the greeting's, as the agent saw it (cut) */
	uint32_t caps;	   /* agreed: what the server was sent */
	int deprecate_eof;
	uint32_t conn_id;
	char server_version[96];
	char user[128], db[128], plugin[64], app[128];
	char *params_json;
	int agent_turn; /* authentication: the server asked the agent for a packet */
	/* COM_CHANGE_USER in flight (phase MP_AUTH): the login it asks for, taken on the
	 * server's OK */
	int changing;
	char cu_user[128], cu_db[128];
	int agent_tls, server_tls; /* each leg is TLS (hoopd terminates the agent's) */
	int agent_in_left;	   /* more agent bytes behind its login packet */
	int8_t seq_shift;	   /* login: server's sequence ids minus the agent's */
	uint8_t charset;	   /* the greeting's collation */
	uint8_t *login;		   /* the agent's login, held while the server's TLS starts */
	size_t login_len;
	/* the server's OK to the login, held while hoopd reads the settings */
	uint8_t *held_ok;
	size_t held_ok_len;
	uint8_t held_ok_seq;
	struct gate g;
	struct myl_settings lex;
	int settings_known;
	int settings_cols; /* the settings query's columns: 4 with the base tables (masking) */
	char curdb[257];   /* DATABASE(), lower case ("" none), as the server last said */
	char sql_mode[1024]; /* @@session.sql_mode as the server last said it (approvers see it) */
	/* masking: "schema\x1ftable" of the base tables the login could see, sorted */
	char **cat;
	char *cat_buf;
	size_t ncat;
	/* tables this session created, altered or renamed (names, lower case): never taken for
	 * the base tables of the list (a temporary table shadows one of the same name) */
	char (*made)[65];
	int nmade, made_overflow;
	int resettle;	   /* read the settings again once this answer is done */
	int reset_pending; /* COM_RESET_CONNECTION in flight: prepared statements go with it */
	/* the answer in flight */
	enum my_resp resp;
	enum my_rs rs;
	int internal;
	int binary;	 /* rows in the binary protocol (COM_STMT_EXECUTE) */
	int setopt;	 /* MR_ONE is COM_SET_OPTION's answer: an EOF or an ERR */
	int cursor_req;	 /* the COM_STMT_EXECUTE in flight asked for a cursor */
	uint64_t exec_pol_gen; /* ...judged under this policy (hoopd.pol_gen) */
	uint32_t exec_stmt; /* the statement the COM_STMT_EXECUTE or FETCH in flight is for */
	uint8_t out_seq; /* the sequence id of hoopd's next packet to the agent */
	uint64_t first_seq; /* records: the first statement this answer is for */
	int nseq, cur;	    /* statements in the command, the result being read */
	uint64_t ncols, coli;
	uint64_t rows, bytes;
	int64_t start_us;
	uint32_t prep_skip; /* definitions after a PREPARE's OK still to pass */
	int prep_ok;
	/* prepared statements */
	char *prep_text; /* the PREPARE in flight */
	struct myl_settings prep_lex;
	size_t prep_bytes; /* prepared texts kept, for MY_PREPARED_BYTES */
	struct sqlfacts *prep_facts;
	struct my_stmt *stmts;
	int nstmts;
	uint32_t last_stmt;
	/* a COM_QUERY parked for an approver */
	uint8_t *held;
	size_t held_len;
	const char *end_reason;
	struct my_mask *mk;
};

extern const struct engine_ops mysql_engine;

/* mysql.c */
int64_t my_now_us(void);
int my_violation(struct my *m, const char *dir, const char *why);
int my_refuse(struct my *m, uint64_t seq, const char *sqlstate, const char *message);
int my_query(struct my *m, const uint8_t *pkt, size_t plen, int judge);
int my_prepare(struct my *m, const uint8_t *p, size_t len);
int my_prepared(struct my *m, uint32_t id, uint16_t ncols, uint16_t nparams);
int my_execute(struct my *m, const uint8_t *p, size_t len);
int my_fetch(struct my *m, const uint8_t *p, size_t len);
/* The statement's cursor is closed (hoopd's view): its kept plan goes. */
void my_cursor_close(struct my_stmt *t);
struct my_stmt *my_stmt_find(struct my *m, uint32_t id);
int my_settings_row(struct my *m, const uint8_t *p, size_t len);
int my_settings_done(struct my *m, int ok);
int my_resp_done(struct my *m);
int my_fail_held(void *st, const char *sqlstate, const char *message);
int my_cancel_held(void *st);

/* mysql_answer.c */
/* my_ok_parse, and with session tracking agreed the OK's tail read whole too (my_ok_track_valid):
 * 0, or -1 for a packet hoopd does not pass on. */
int my_ok_read(const struct my *m, const uint8_t *p, size_t len, int eof_form, uint16_t *status,
	       uint64_t *rows);
void my_resp_begin(struct my *m, int resp, uint64_t seq);
int my_server_answer(struct my *m, const uint8_t *p, size_t len);
int my_forward(struct my *m, const uint8_t *p, size_t len);

/* mysql_mask.c: masking of one command's result rows. begin: before the command is sent,
 * with its text and facts (of its first statement; n statements); coldef: each column
 * definition as it passes; plan: once the result's columns are all there; row: one row, which
 * it forwards (masked) or withholds; end: the answer is done. */
void my_mask_begin(struct my *m, const char *sql, size_t len, const struct sqlfacts *f, int n);
int my_mask_coldef(struct my *m, const uint8_t *p, size_t len, uint64_t i);
int my_mask_plan(struct my *m);
int my_mask_row(struct my *m, const uint8_t *p, size_t len);
int my_mask_err(struct my *m, const uint8_t *p, size_t len);
char *my_mask_json(struct my *m);
void my_mask_result_end(struct my *m);
void my_mask_end(struct my *m);
int my_mask_withheld(const struct my *m);
/* Cursors: the plan of the result in flight leaves m (the statement keeps it for its
 * fetches); attach gives a kept plan back to m for a fetch (my_mask_end frees it unless it is
 * detached again); counts_clear starts the next record's counts; usable: rows may be fetched
 * under the kept plan k with masking as it is now (not when masking is on and k masks
 * nothing). */
struct my_mask *my_mask_detach(struct my *m);
void my_mask_attach(struct my *m, struct my_mask *k);
void my_mask_counts_clear(struct my *m);
int my_mask_usable(const struct my_mask *k);
void my_mask_free(struct my_mask *k);
/* The facts on masked columns of a statement (probes_masked, writes_masked) into f. */
void my_mask_probes(const struct my *m, const char *sql, size_t len, struct sqlfacts *f);
/* mysql.c: did this session make or change a table of that name (any schema)? */
int my_made(const struct my *m, const char *table);
/* mysql.c: is "schema\x1ftable" (lower case) a base table of the list read at login? */
int my_catalog_has(const struct my *m, const char *key);

#endif
