/*
 * How much work a SQL text would be for libpg_query, counted before it is asked to parse it:
 * tokens, and an upper estimate of how deep its expression tree goes. Parsing costs about
 * 7 microseconds and 600 bytes per token on the single event loop, and a long chain of binary
 * operators (a+b+c+...) builds a tree as deep as the chain, which libpg_query walks
 * recursively (quadratic time in the protobuf output, and a stack overflow at some 40,000
 * levels). A cheap linear scan bounds both before any parse.
 */
#ifndef HOOP_SQLSIZE_H
#define HOOP_SQLSIZE_H

#include <stddef.h>

struct sqlsize {
	size_t tokens;
	size_t depth; /* estimate, never below the real nesting of parentheses and CASE */
};

/* Scan s[0..n) (PostgreSQL lexical rules, standard_conforming_strings on, as libpg_query).
 * Stops early once a limit is passed. 0 within both limits, 1 over one (out says which). */
int sqlsize(const char *s, size_t n, size_t max_tokens, size_t max_depth, struct sqlsize *out);
/* The same with standard_conforming_strings off when escape is set: '...' strings then take
 * backslash escapes as E'...' strings do (dialect.h, dialect_pg.c's size). */
int sqlsize_ex(const char *s, size_t n, int escape, size_t max_tokens, size_t max_depth,
	       struct sqlsize *out);

#endif
