#!/usr/bin/python3
"""check_exports.py — the shared library exports exactly the functions include/kvtier.h declares with KVT_API.

A function missing from the library breaks the Python binding at load time; an
extra export is an internal symbol leaking into the ABI, which then can never
change. Run by `meson test` (suite unit); by hand:
    KVTIER_LIBRARY=build/lib/libkvtier.so /usr/bin/python3 tests/python/check_exports.py
Exits 0 when the sets are equal, 1 with the differences otherwise.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

SOURCE_ROOT = Path(os.environ.get("KVT_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
HEADER = SOURCE_ROOT / "include" / "kvtier.h"
MAP = SOURCE_ROOT / "lib" / "kvtier.map"

DECL = re.compile(r"^(?P<ret>[\w\s\*]*?)\b(?P<name>[A-Za-z_]\w*)\s*\((?P<args>[^()]*)\)$")


def strip_preprocessor(text):
    """Drops comments, C++-only blocks and directives, keeping declarations."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"\\\n", " ", text)  # join continued lines (macros)
    text = re.sub(r"^\s*#\s*ifdef\s+__cplusplus\b.*?^\s*#\s*endif[^\n]*", " ", text,
                  flags=re.S | re.M)
    return re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)


def header_functions(path):
    """(names declared with KVT_API, names declared without it, problems)."""
    text = strip_preprocessor(path.read_text(encoding="utf-8"))
    problems = []
    if re.search(r"\binline\b", text):
        problems.append("the header has inline code (every function must be a real symbol)")
    # Brace bodies (structs, enums) hold no function declarations here.
    while True:
        new = re.sub(r"\{[^{}]*\}", " ", text)
        if new == text:
            break
        text = new
    api, plain = set(), set()
    for stmt in text.split(";"):
        stmt = " ".join(stmt.split())
        if not stmt or stmt.startswith("typedef ") or "(" not in stmt:
            continue
        marked = re.match(r"KVT_API\b", stmt) is not None
        body = re.sub(r"^KVT_API\s*", "", stmt)
        m = DECL.match(body)
        if not m:
            problems.append(f"cannot parse declaration: {stmt}")
            continue
        (api if marked else plain).add(m.group("name"))
        if "..." in m.group("args"):
            problems.append(f"{m.group('name')} is variadic (not allowed in the ABI)")
    for name in sorted(plain):
        problems.append(f"{name} is declared without KVT_API")
    return api, plain, problems


def exported_symbols(lib):
    """{name: (nm type letter, version or None)} of defined dynamic symbols."""
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"nm -D {lib} failed: {out.stderr.strip()}")
    syms = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, full = parts[-2], parts[-1]
        name, _, version = full.partition("@")
        syms[name] = (kind, version.lstrip("@") or None)
    return syms


def map_globals(path):
    if not path.exists():
        return None
    text = re.sub(r"/\*.*?\*/|#[^\n]*", " ", path.read_text(encoding="utf-8"), flags=re.S)
    names = set()
    for block in re.findall(r"global\s*:(.*?)(?:local\s*:|\})", text, re.S):
        names |= {n.strip() for n in block.split(";") if n.strip()}
    return names


def main():
    lib = os.environ.get("KVTIER_LIBRARY")
    if not lib:
        print("FAIL: KVTIER_LIBRARY is not set (meson test sets it to the built libkvtier.so)")
        return 1
    lib = Path(lib)
    if not lib.exists():
        print(f"FAIL: {lib} does not exist (did the shared library build?)")
        return 1

    api, _, problems = header_functions(HEADER)
    if not api:
        problems.append(f"no KVT_API functions found in {HEADER}")
    syms = exported_symbols(lib)
    # Version nodes (KVTIER_0 …) show up as absolute symbols; they are not API.
    version_nodes = {n for n, (k, _) in syms.items() if k == "A"}
    exported = {n: v for n, v in syms.items() if n not in version_nodes}
    functions = {n for n, (k, _) in exported.items() if k in "TWi"}

    missing = sorted(api - functions)
    extra = sorted(set(exported) - api)
    not_functions = sorted(n for n in set(exported) & api if n not in functions)
    unversioned = sorted(n for n in functions & api if not exported[n][1])

    for name in missing:
        problems.append(f"declared with KVT_API but not exported: {name}")
    for name in extra:
        kind = exported[name][0]
        problems.append(f"exported but not declared with KVT_API: {name} (nm type {kind})")
    for name in not_functions:
        problems.append(f"exported as a non-function (nm type {exported[name][0]}): {name}")
    for name in unversioned:
        problems.append(f"exported without a symbol version (lib/kvtier.map): {name}")

    print(f"header {HEADER}: {len(api)} KVT_API functions")
    print(f"library {lib}: {len(functions)} exported functions, version nodes "
          f"{sorted(version_nodes) or 'none'}")
    if problems:
        mapped = map_globals(MAP)
        if mapped is not None:
            if api - mapped:
                print(f"hint: not listed in {MAP}: {', '.join(sorted(api - mapped))}")
            if mapped - api:
                print(f"hint: listed in {MAP} but not KVT_API in the header: "
                      f"{', '.join(sorted(mapped - api))}")
        for p in problems:
            print("FAIL:", p)
        print(f"{len(problems)} problem(s): {len(missing)} missing, {len(extra)} extra")
        return 1
    print("ok: the exported functions are exactly the header's KVT_API functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
