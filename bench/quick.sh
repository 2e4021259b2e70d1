#!/bin/sh
# A quick look while working on hoopd's cost per statement: direct against hoopd with the HIPAA
# policy (accel off), pgbench -S -M simple -c 8 -j 2, QUICK_SECONDS (10) per run, QUICK_ROUNDS (2)
# rounds, through bench/run.py (its numbers, its set-up; RESULTS.md is not written).
# QUICK_WORKLOADS overrides the workloads (run.py's names, comma-separated); QUICK_PERF=1 adds
# run.py's perf profiles of hoopd (BENCH_KEEP_PERF=DIR keeps perf's data files). As root, from the tree: bench/quick.sh
set -e
cd "$(dirname "$0")/.."
export BENCH_ONLY="${QUICK_CONFIGS:-hoopd hipaa/off}"
export BENCH_WORKLOADS="${QUICK_WORKLOADS:--S simple c8}"
export BENCH_SECONDS="${QUICK_SECONDS:-10}"
export BENCH_ROUNDS="${QUICK_ROUNDS:-2}"
export BENCH_NO_IDLE=1
export BENCH_NO_MASK=1
export BENCH_NO_MARIADB=1
[ "${QUICK_PERF:-0}" = 1 ] || export BENCH_NO_PERF=1
exec /usr/bin/python3 bench/run.py
