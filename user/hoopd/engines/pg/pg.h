/* The PostgreSQL engine: pg_engine (engine.h) is all of it that other modules see. */
#ifndef HOOP_PG_H
#define HOOP_PG_H

#include "engine.h"

#endif
