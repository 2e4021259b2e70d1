/*
 * What a fingerprint grant (hoopctl approve --scope fingerprint) is keyed on, and which held
 * statements no such grant may cover. The key is the SHA-256 of PostgreSQL's parse tree with
 * the values of constants (A_Const) and the source positions taken out: everything else (names,
 * operators, a DO block's body, a function's body, COPY's file) is part of it, so "same shape,
 * other constants" is exactly what a grant covers. pg_query_fingerprint is not used: it also
 * ignores the body of DO and CREATE FUNCTION and the names of prepared statements.
 *
 * A grant is refused outright where a statement's meaning lives in a string or in a name defined
 * elsewhere, since other constants would then be other code: DO, CREATE FUNCTION, CALL, EXECUTE,
 * FETCH and the other kinds hoop classes as "other", opaque_sql, COPY to or from a file or
 * program, a function called by OID, text hoop cannot parse, and a statement that calls any
 * function while it carries a string constant or a parameter ($1): the string may be SQL that
 * the function runs (query_to_xml('select ...')). Pure function of the text: no daemon state.
 */
#ifndef HOOP_GRANTKEY_H
#define HOOP_GRANTKEY_H

#include <stddef.h>

#define GRANTKEY_LEN 64 /* hex digits of the key */

/* 0 with key (GRANTKEY_LEN + 1 bytes) filled; -1 with why (a sentence for the approver) set when
 * no fingerprint grant may cover this text. -ENOMEM-like failures also refuse (-1). */
int grantkey_for(const char *text, size_t len, char *key, char *why, size_t whyn);

#endif
