/* libFuzzer target for the SQL facts (sqlfacts.c): any bytes as a SQL text are parsed by
 * libpg_query and read into struct sqlfacts, which keeps its promises whatever the text: counts
 * within their arrays, every name and message NUL-terminated, parse_error where the return says
 * so; nothing crashes, leaks or trips a sanitizer. Seeds: fuzz/corpus/sqlfacts/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"
#include "sqlfacts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Broken promises are bugs like crashes: stop so libFuzzer saves the input. */
static void check_names(char (*list)[SQLFACTS_NAME], int n)
{
	REQUIRE(n >= 0 && n <= SQLFACTS_MAX_NAMES);
	for (int i = 0; i < n; i++) {
		REQUIRE(memchr(list[i], '\0', SQLFACTS_NAME) != NULL);
		for (int k = 0; k < i; k++)
			REQUIRE(strcmp(list[i], list[k])); /* each name once */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqlfacts *f = calloc(1, sizeof(*f));
	int r;

	if (!f)
		return 0;
	/* Not NUL-terminated, and the statement may hold NULs: sqlfacts takes (text, length). */
	r = sqlfacts_analyze((const char *)data, size, f);
	REQUIRE(r == 0 || r == -1);
	REQUIRE((r == -1) == (f->parse_error != 0));
	REQUIRE(memchr(f->error, '\0', sizeof(f->error)) != NULL);
	REQUIRE(memchr(f->execute_name, '\0', sizeof(f->execute_name)) != NULL);
	REQUIRE(!f->parse_error || f->error[0]);
	REQUIRE((f->kinds >> SK_COUNT) == 0);
	REQUIRE((f->copy & ~(SQL_COPY_STDIN | SQL_COPY_STDOUT | SQL_COPY_FILE | SQL_COPY_PROGRAM)) ==
		0);
	check_names(f->read, f->nread);
	check_names(f->written, f->nwritten);
	check_names(f->functions, f->nfunctions);
	REQUIRE(!f->too_many || f->parse_error);
	free(f);
	return 0;
}
