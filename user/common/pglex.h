/*
 * libpg_query's lexer settings. The scanner reads standard_conforming_strings (and warns by
 * escape_string_warning) from globals that libpg_query 15-4.0.0 exports as thread-local
 * variables (readelf --dyn-syms: TLS), so setting them affects only the calling thread's parses.
 * Each parse that must follow a session's setting saves them, sets them, parses and restores
 * what was there (pglex_set / pglex_restore), so no setting outlives its call. The defaults are
 * the server's: standard strings on.
 */
#ifndef HOOP_PGLEX_H
#define HOOP_PGLEX_H

#include <stdbool.h>

extern __thread bool standard_conforming_strings;
extern __thread bool escape_string_warning;

struct pglex_saved {
	bool scs, esw;
};

/* escape: standard_conforming_strings off ('...' takes backslash escapes). */
static inline void pglex_set(int escape, struct pglex_saved *sv)
{
	sv->scs = standard_conforming_strings;
	sv->esw = escape_string_warning;
	standard_conforming_strings = !escape;
	escape_string_warning = false; /* a WARNING is no answer: never printed by a parse */
}

static inline void pglex_restore(const struct pglex_saved *sv)
{
	standard_conforming_strings = sv->scs;
	escape_string_warning = sv->esw;
}

#endif
