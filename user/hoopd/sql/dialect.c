/* Which dialect reads a target's SQL (dialect.h). */
#include "dialect.h"

#include <string.h>

const struct dialect *dialect_for(const char *protocol)
{
	if (!protocol)
		return NULL;
	if (!strcmp(protocol, "postgres") || !strcmp(protocol, "postgresql"))
		return &dialect_pg;
	if (!strcmp(protocol, "mysql") || !strcmp(protocol, "mariadb"))
		return &dialect_mysql;
	return NULL;
}
