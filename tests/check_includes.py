#!/usr/bin/python3
"""The include graph between modules has no cycle.

A module is a folder: user/common, user/hoopctl, include, bpf (with bpf/lib), and each folder
under user/hoopd (user/hoopd itself holds only main.c, the top). Every `#include "x.h"` of a
file under user/, bpf/ and include/ is an edge from the file's module to the module of the x.h
it names (looked up the way the compiler does: beside the file first, then by name anywhere in
those trees, since the Makefile passes one -I per folder). Headers not in the tree (the
generated skeleton, system headers) are ignored. Prints each cycle with the includes that make
it, then "includes: N passed, M failed" (N modules outside any cycle, M in one).

--map FILE takes a module for files that are not in their folder yet: lines "OLD NEW" (paths
from the repository root; blank lines and # comments ignored), as relayout.sh's table has them.
A file listed there counts in NEW's folder, so the flat tree can be checked against the cut
before it is moved. --graph prints the module graph, edge by edge, with one include per edge. --self-test checks the
checker on two small trees of its own: one without a cycle (must pass), one with (must fail).
"""
import argparse
import contextlib
import io
import os
import re
import sys
import tempfile

ROOTS = ("user", "bpf", "include")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(path):
	"""A path's module: its folder, with bpf/lib folded into bpf."""
	d = os.path.dirname(path)
	if d == "bpf/lib":
		return "bpf"
	return d


def sources(repo):
	for root in ROOTS:
		for dirpath, dirnames, filenames in os.walk(os.path.join(repo, root)):
			dirnames.sort()
			for f in sorted(filenames):
				if f.endswith((".c", ".h")):
					yield os.path.relpath(os.path.join(dirpath, f), repo)


def read_map(path):
	moved = {}
	with open(path) as fh:
		for n, line in enumerate(fh, 1):
			line = line.split("#", 1)[0].strip()
			if not line:
				continue
			parts = line.split()
			if len(parts) != 2:
				sys.exit(f"{path}:{n}: want OLD NEW, got {line!r}")
			moved[parts[0]] = parts[1]
	return moved


def build(repo, moved):
	files = list(sources(repo))
	where = {f: moved.get(f, f) for f in files}  # the path each file has in the cut
	by_name = {}
	for f in files:
		by_name.setdefault(os.path.basename(f), []).append(f)
	edges = {}  # (from module, to module) -> "file includes header"
	modules = set()
	problems = []
	for f in files:
		src = module_of(where[f])
		modules.add(src)
		with open(os.path.join(repo, f), errors="replace") as fh:
			text = fh.read()
		for name in INCLUDE.findall(text):
			beside = os.path.normpath(os.path.join(os.path.dirname(f), name))
			if beside in where:
				target = beside
			else:
				cands = by_name.get(os.path.basename(name), [])
				if not cands:
					continue  # generated or system header
				if len(cands) > 1:
					problems.append(f"{f}: \"{name}\" is ambiguous: {' '.join(cands)}")
					continue
				target = cands[0]
			dst = module_of(where[target])
			if dst != src:
				edges.setdefault((src, dst), f"{where[f]} includes {where[target]}")
	return modules, edges, problems


def cycles(modules, edges):
	"""Strongly connected components of more than one module (Tarjan), and one cycle in each."""
	succ = {m: sorted(d for (s, d) in edges if s == m) for m in modules}
	index, low, on, stack, comps = {}, {}, set(), [], []

	def visit(v):
		index[v] = low[v] = len(index)
		stack.append(v)
		on.add(v)
		for w in succ[v]:
			if w not in index:
				visit(w)
				low[v] = min(low[v], low[w])
			elif w in on:
				low[v] = min(low[v], index[w])
		if low[v] == index[v]:
			comp = []
			while True:
				w = stack.pop()
				on.discard(w)
				comp.append(w)
				if w == v:
					break
			if len(comp) > 1:
				comps.append(sorted(comp))

	sys.setrecursionlimit(10000)
	for m in sorted(modules):
		if m not in index:
			visit(m)
	out = []
	for comp in comps:
		members = set(comp)
		# Shortest way back to the first module, breadth first, inside the component.
		start = comp[0]
		prev = {start: None}
		queue = [start]
		found = None
		while queue and found is None:
			v = queue.pop(0)
			for w in succ[v]:
				if w not in members:
					continue
				if w == start:
					found = v
					break
				if w not in prev:
					prev[w] = v
					queue.append(w)
		path = [start]
		v = found
		while v is not None and v != start:
			path.insert(1, v)
			v = prev[v]
		out.append((comp, path))
	return out


def self_test():
	"""The checker fails a tree with a cycle and passes one without: a check that cannot fail
	would prove nothing."""
	tree = {
		"user/common/buf.h": "",
		"user/hoopd/core/daemon.h": '#include "buf.h"\n',
		"user/hoopd/relay/relay.c": '#include "daemon.h"\n#include "netns.h"\n',
		"user/hoopd/kernel/netns.c": '#include "daemon.h"\n',
		"user/hoopd/kernel/netns.h": "",
		"user/hoopd/main.c": '#include "relay.h"\n',
		"user/hoopd/relay/relay.h": "",
	}
	ok = True
	for cyclic in (False, True):
		with tempfile.TemporaryDirectory() as d:
			for path, text in tree.items():
				os.makedirs(os.path.join(d, os.path.dirname(path)), exist_ok=True)
				with open(os.path.join(d, path), "w") as fh:
					fh.write(text)
			if cyclic:  # the listeners call the relay by name
				with open(os.path.join(d, "user/hoopd/kernel/netns.c"), "a") as fh:
					fh.write('#include "relay.h"\n')
			out = io.StringIO()
			with contextlib.redirect_stdout(out):
				rc = check(d, {}, False)
			want = 1 if cyclic else 0
			if rc != want or (cyclic and "user/hoopd/kernel -> user/hoopd/relay" not in
					   out.getvalue()):
				print(f"self-test: {'cyclic' if cyclic else 'acyclic'} tree gave {rc}:")
				print(out.getvalue(), end="")
				ok = False
	print(f"self-test: {2 if ok else 0} passed, {0 if ok else 2} failed")
	return 0 if ok else 1


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("--map", help="OLD NEW lines: the module of files not moved yet")
	ap.add_argument("--graph", action="store_true", help="print the module graph")
	ap.add_argument("--self-test", action="store_true", help="check the checker")
	ap.add_argument("repo", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."))
	a = ap.parse_args()
	if a.self_test:
		return self_test()
	return check(a.repo, read_map(a.map) if a.map else {}, a.graph)


def check(repo, moved, graph):
	modules, edges, problems = build(repo, moved)
	for p in problems:
		print(p)
	if graph:
		for (s, d), why in sorted(edges.items()):
			print(f"{s} -> {d}    ({why})")
	found = cycles(modules, edges)
	bad = set()
	for comp, path in found:
		bad.update(comp)
		ring = path + [path[0]]
		print("cycle: " + " -> ".join(ring))
		for s, d in zip(ring, ring[1:]):
			print(f"  {s} -> {d}: {edges[(s, d)]}")
		rest = sorted(set(comp) - set(path))
		if rest:
			print("  and, in the same knot: " + " ".join(rest))
			print("  every include between them (one per pair):")
			for (s, d), why in sorted(edges.items()):
				if s in comp and d in comp:
					print(f"    {s} -> {d}: {why}")
	failed = len(bad) + len(problems)
	print(f"includes: {len(modules) - len(bad)} passed, {failed} failed")
	return 1 if failed else 0


if __name__ == "__main__":
	sys.exit(main())
