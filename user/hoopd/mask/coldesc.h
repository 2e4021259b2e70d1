/*
 * A result column as every engine describes it: what the audit record says of a result's columns
 * (record.h ev_columns) and what masking plans a result from (mask_live.h masking_plan_rows).
 * Engines fill it from their own wire: PostgreSQL from RowDescription (pgwire.h
 * pgw_row_columns), MySQL from ColumnDefinition41 (catalog, schema, table, org_table, name,
 * org_name, charset, length, type, flags, decimals). Data only: the strings point into the
 * message the engine read, valid while it is.
 */
#ifndef HOOP_COLDESC_H
#define HOOP_COLDESC_H

#include <stdint.h>

/* Which engine's vocabulary col_desc.type and .type_mod are in. */
enum col_engine {
	COL_ENGINE_PG = 0, /* type: a PostgreSQL type OID, type_mod: atttypmod */
	COL_ENGINE_MYSQL,  /* type: MYSQL_TYPE_*, type_mod: decimals */
};

/* What kind of value a column holds, whatever the engine calls its type. Masking reads the
 * engine's own type where it knows the engine's encodings (PostgreSQL's); the class is what a
 * reader that does not know them can go by. */
enum col_class {
	COL_OTHER = 0, /* a type the engine has and hoop does not classify */
	COL_TEXT,      /* character strings (text, varchar, char, enum, set) */
	COL_JSON,
	COL_XML,
	COL_BYTES, /* bytea, BLOB, BINARY, VARBINARY */
	COL_BOOL,
	COL_INT,     /* any width, signed or not (col_desc.flags says, for MySQL) */
	COL_NUMERIC, /* exact decimal */
	COL_FLOAT,
	COL_DATE,
	COL_TIMESTAMP, /* with or without time zone, DATETIME */
	COL_TIME,
	COL_INTERVAL,
	COL_INET, /* inet, cidr */
	COL_UUID,
	COL_ARRAY, /* PostgreSQL arrays */
};

/* Each engine's own format codes, as the wire says them. */
enum col_format {
	COL_FORMAT_TEXT = 0,   /* PostgreSQL format 0; MySQL text protocol rows */
	COL_FORMAT_BINARY = 1, /* PostgreSQL format 1; MySQL binary rows (COM_STMT_EXECUTE) */
};

struct col_desc {
	const char *name; /* the result column's name (MySQL: name, the alias) */
	/* where the value comes from when it is a table's column itself; 0 / "" when not */
	uint32_t table_id;  /* PostgreSQL: the table OID; MySQL: 0 (it names tables) */
	int16_t column_no;  /* PostgreSQL: attnum; MySQL: 0 */
	const char *schema; /* MySQL: schema; PostgreSQL: NULL (the OID says) */
	const char *table;  /* MySQL: org_table, the physical table; PostgreSQL: NULL */
	const char *column; /* MySQL: org_name, the physical column; PostgreSQL: NULL */
	enum col_engine engine;
	uint32_t type; /* the engine's own type id (see enum col_engine) */
	int32_t type_mod;
	int32_t length;	  /* PostgreSQL: typlen; MySQL: column_length */
	uint16_t charset; /* MySQL: the collation id (63 binary); PostgreSQL: 0 */
	uint16_t flags;	  /* MySQL: NOT_NULL, UNSIGNED, BINARY...; PostgreSQL: 0 */
	enum col_class cls;
	int16_t format; /* enum col_format */
};

#endif
