/* SQLSTATE codes by name, as PostgreSQL 15 lists them: what hoop says in place of a message. */
#ifndef HOOP_PGERRCODES_H
#define HOOP_PGERRCODES_H

/* "undefined_table" for "42P01"; NULL for a code PostgreSQL does not define. */
const char *pgerr_name(const char *sqlstate);
/* "syntax error or access rule violation" for any "42..."; NULL for an unknown class. */
const char *pgerr_class(const char *sqlstate);

#endif
