/* The MySQL fuzz targets' settings, from their input's first byte: MariaDB (bit 0 clear) or
 * MySQL, ANSI_QUOTES (bit 1), NO_BACKSLASH_ESCAPES (bit 2), and a server version unless bit 3. */
#ifndef HOOP_MYSQL_FUZZ_H
#define HOOP_MYSQL_FUZZ_H

#include <stdint.h>

#include "mysqllex.h"

static inline void mysql_fuzz_settings(uint8_t b, struct myl_settings *st)
{
	st->mariadb = !(b & 1);
	st->ansi_quotes = !!(b & 2);
	st->no_backslash_escapes = !!(b & 4);
	st->version = b & 8 ? 0 : st->mariadb ? 101106 : 80036;
}

#endif
