#!/bin/sh
# valgrind.sh — the exe_wrapper of `meson test --setup=valgrind`.
#
# Runs a test under memcheck and fails it (exit 99) when any of its
# processes reported an error or a definite leak. valgrind's own
# --error-exitcode is not enough for Criterion tests: Criterion runs each test
# body in a forked worker and ignores the worker's exit status once the test
# has reported its result, so errors found there (and leaks, found at the
# worker's exit) would only be printed. Each process writes its own log here
# (%p), and every log is read at the end.
set -u
# Python-driven tests: check the interpreter (and the library it loads through
# ctypes), not the tools it runs (nm under memcheck reports glibc's ld.so).
case "$(basename "$1")" in
python*) trace=no ;;
*) trace=yes ;;
esac
logs=$(mktemp -d "${TMPDIR:-/tmp}/kvt-valgrind.XXXXXX") || exit 98
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --trace-children=$trace --log-file="$logs/vg.%p.log" "$@"
rc=$?
bad=0
for f in "$logs"/vg.*.log; do
    [ -e "$f" ] || continue
    if grep -q "ERROR SUMMARY: [1-9]" "$f"; then
        bad=1
        cat "$f" >&2
    fi
done
n=$(ls "$logs" | wc -l)
rm -rf "$logs"
echo "valgrind.sh: $n processes checked, $([ $bad -eq 1 ] && echo errors found || echo no errors)" >&2
[ $bad -eq 1 ] && exit 99
exit $rc
