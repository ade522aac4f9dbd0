#!/usr/bin/env python3
"""Prints the names of the tests in a meson testlog.json that failed only because
ASan's runtime could not start (its shadow memory reservation failed before any kvtier
code ran: "ReserveShadowMemoryRange failed"), one per line. .ci/test reruns those once;
any other failure is left to fail CI. Exit 0 when every failed test is such a start-up
failure (the list may be empty), 1 when some failure is of another kind."""
import json
import sys

SIGNATURE = "ReserveShadowMemoryRange failed"
BAD = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"}


def main(path):
    startup, other = [], []
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            if t.get("result") not in BAD:
                continue
            name = t["name"].split(" / ")[-1]  # "kvtier:suite / name" -> name
            (startup if SIGNATURE in (t.get("stdout") or "") else other).append(name)
    for name in startup:
        print(name)
    for name in other:
        print(f"not an ASan start-up failure: {name}", file=sys.stderr)
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
