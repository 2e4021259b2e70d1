/*
 * The MySQL/MariaDB lexer (issue 17): a statement text cut into tokens the way the server's own
 * lexer (MariaDB sql/sql_lex.cc, MySQL sql/sql_lex.cc) cuts it, so that what hoop judges is what
 * the server runs. It is the first half of the MySQL dialect (dialect.h); the classifier reads
 * its tokens.
 *
 * What "the way the server cuts it" covers, and where it refuses instead of guessing:
 * - Comments: `#` to the end of the line; `-- ` (two dashes and a blank or control character,
 *   or the end of the text); `/ * ... * /`, not nested; an unterminated one is an error, as on
 *   the server.
 * - Executable comments: `/ *! ... * /` runs its content; `/ *!NNNNN ... * /` (5 or 6 digits)
 *   runs it when the server's version is at least NNNNN (on MariaDB also `/ *M!NNNNNN`; MariaDB
 *   skips MySQL-only versions 50700..99999 unless marked M); otherwise the whole comment is
 *   skipped. The server's version comes from its greeting (settings). A comment inside an
 *   executed one, or an executable comment inside one, is refused (the servers differ on it).
 *   MySQL reads `/ *+ ... * /` after a statement's first keyword as optimizer hints; MariaDB
 *   10.11 as a comment: either way no table or value hides in it that a server reads as
 *   data, and it is skipped.
 * - Strings: '...' and, unless sql_mode has ANSI_QUOTES, "..." (a quote doubled is one quote;
 *   a backslash escapes the next byte unless sql_mode has NO_BACKSLASH_ESCAPES); introducers
 *   `_charset'...'`, `N'...'`; `X'...'`, `B'...'` literals; adjacent strings are separate
 *   tokens (the classifier joins them).
 * - Identifiers: unquoted runs of letters, digits, `_`, `$` and bytes >= 0x80 that are not a
 *   number; `...` quoted with backticks (and "..." under ANSI_QUOTES), a doubled quote being
 *   one. After an identifier and a dot, a run starting with a digit is an identifier (t.1a).
 * - Numbers: integers, decimals, exponents, 0x.. and 0b.. (a run that goes on with identifier
 *   characters is an identifier: 0xZZ, 1abc).
 * - Variables: @name, @'name', @"name", @`name`, @@name, @@global.name, @@session.name.
 * - Placeholders `?`, operators (<=>, <=, >=, <>, !=, <<, >>, &&, ||, :=, ->, ->>) and single
 *   characters.
 * Refused (MYL_ERR): a NUL byte, an unterminated string, quoted name or comment, a nested
 * (executable) comment, a client character set other than utf8mb4, utf8, ascii and binary
 * (settings: in others a byte can be a quote, a backslash or a blank to the server and not to
 * hoop), an sql_mode with MSSQL or ORACLE, a byte the server's lexer has no token for.
 */
#ifndef HOOP_MYSQLLEX_H
#define HOOP_MYSQLLEX_H

#include <stddef.h>
#include <stdint.h>

enum myl_kind {
	MYL_END = 0,
	MYL_IDENT,  /* unquoted: a keyword or a name (compare case-insensitively) */
	MYL_QIDENT, /* quoted name: `...` (or "..." with ANSI_QUOTES) */
	MYL_STRING, /* '...', "...", N'...', _cs'...' */
	MYL_HEX,    /* X'...', 0x... */
	MYL_BIT,    /* B'...', 0b... */
	MYL_NUMBER, /* 12, 1.5, .5, 1e3 */
	MYL_VAR,    /* @name (user variable) */
	MYL_SYSVAR, /* @@name, @@session.name */
	MYL_PARAM,  /* ? */
	MYL_OP,	    /* an operator or punctuation, ';' included */
};

/* What changes how a text is lexed (the session's; zero: the server's defaults). */
struct myl_settings {
	int ansi_quotes;	  /* sql_mode has ANSI_QUOTES: "..." is a name */
	int no_backslash_escapes; /* sql_mode has NO_BACKSLASH_ESCAPES */
	int mariadb;		  /* the server is MariaDB (its greeting says so) */
	uint32_t version;	  /* the server's version as NNNNNN (10.11.6: 101106); 0: unknown */
	int unsafe_charset; /* the client character set is not one myl_charset_unsafe accepts */
	int unread_mode;    /* sql_mode has MSSQL or ORACLE (other quoting, another grammar) */
};

struct myl_token {
	enum myl_kind kind;
	uint32_t off, len; /* the token's bytes in the text (quotes and introducer included) */
	/* MYL_OP: the operator ("<=>", ";"); otherwise empty */
	char op[4];
	/* inside an executed comment (its content is a statement's text like any other) */
	uint8_t in_exec_comment;
};

#define MYL_MAX_TOKENS 65536

struct myl_result {
	struct myl_token *tok; /* n tokens, then MYL_END (caller frees: myl_free) */
	size_t n;
	int error; /* 1: refused; why says why, at says where (byte offset) */
	char why[160];
	size_t at;
	int has_exec_comment; /* an executable comment ran (or was skipped by version) */
};

/* Lex text[0..len). 0, or -1 with r->error set (r->tok may hold the tokens before it).
 * Memory: r->tok is allocated; myl_free releases it. At most MYL_MAX_TOKENS tokens. */
int myl_lex(const struct myl_settings *st, const char *text, size_t len, struct myl_result *r);
void myl_free(struct myl_result *r);

/* Is the unquoted token t the keyword kw (ASCII, any case)? */
int myl_is(const char *text, const struct myl_token *t, const char *kw);
/* Is the character set name (as in SET NAMES, or the greeting's collation) one hoop does not
 * read exactly? Only utf8mb4, utf8mb3/utf8, ascii and binary are read exactly (see the .c). */
int myl_charset_unsafe(const char *name);

#endif
