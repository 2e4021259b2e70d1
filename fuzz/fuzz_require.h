/* REQUIRE(cond) for the libFuzzer targets: a property that does not hold is a crash libFuzzer
 * keeps, with the target's name, the place and the condition on stderr. */
#ifndef HOOP_FUZZ_REQUIRE_H
#define HOOP_FUZZ_REQUIRE_H

#include <errno.h> /* program_invocation_short_name */
#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s: %s:%d: %s does not hold\n",                           \
				program_invocation_short_name, __FILE__, __LINE__, #cond);         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
