#!/bin/sh
# cut.sh [FULL] — rebuilds this folder's trace subset from the full traces
# (FULL, default: ../shared/traces next to the repository), byte for byte.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../../../../shared/traces}
head -n 1000 "$src/conversation_trace.jsonl" > "$here/conversation_head1000.jsonl"
mkdir -p "$here/weka"
for n in 0022 0026 0057 0058; do
    cp "$src/weka/trace_$n.json" "$here/weka/trace_$n.json"
done
cd "$here" && sha256sum conversation_head1000.jsonl weka/*.json
