#!/usr/bin/env python3
"""Cycles between the library's top-level modules, from the `crate::` paths in src/.

A module is a file or folder directly under src/ (declared in lib.rs); module A depends on
B when any code line under A names `crate::B` (alone or inside `crate::{...}`). Comment lines
are ignored. Prints each cycle (strongly connected component of more than one module) and
exits 1 when there is one; `--graph` prints the dependency lists too. `make lint` runs it.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def top_modules():
    lib = open(os.path.join(SRC, "lib.rs")).read()
    return set(re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;", lib, re.M))


def module_of(rel, mods):
    top = rel.split(os.sep)[0]
    top = top[:-3] if top.endswith(".rs") else top
    return top if top in mods else None


def graph(mods):
    g = {m: set() for m in mods}
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            src_mod = module_of(os.path.relpath(path, SRC), mods)
            if src_mod is None:
                continue
            code = re.sub(r"//[^\n]*", "", open(path).read())
            names = re.findall(r"crate::([a-z_0-9]+)", code)
            for group in re.findall(r"crate::\{([^}]*)\}", code):
                names += re.findall(r"(?:^|[,{\s])([a-z_0-9]+)", group)
            g[src_mod].update(n for n in names if n in mods and n != src_mod)
    return g


def cycles(g):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
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
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main():
    g = graph(top_modules())
    if "--graph" in sys.argv:
        for m in sorted(g):
            print(f"{m} -> {' '.join(sorted(g[m]))}")
    found = cycles(g)
    for c in found:
        print("modules: cycle between " + ", ".join(c))
    if not found:
        print(f"modules: no cycle between the {len(g)} top-level modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
