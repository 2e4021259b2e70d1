/* A fleet node's name (docs/fleet.md): what hoopd ships its records under and what the central
 * database's row-level security compares with the node's login role. hoopd (--node) and hoopctl
 * central ship check it alike. */
#ifndef HOOP_NODENAME_H
#define HOOP_NODENAME_H

#include <string.h>

#define NODE_NAME_MAX 63

/* 1..NODE_NAME_MAX of [A-Za-z0-9._-]: 1 when s is one, else 0. */
static inline int node_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > NODE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

#endif
