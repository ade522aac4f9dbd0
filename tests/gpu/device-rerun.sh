#!/bin/bash
# device-rerun.sh — the second, shorter GPU-machine run of a session: what
# run-device.sh did not fit (sanitizers by test group, the NVMe tier's own
# rate next to GPU -> NVMe -> GPU, the transformers example), after a fix.
#   tests/gpu/device-rerun.sh LOGDIR      (KVT_DEVICE_BUDGET=S, default 300)
set -uo pipefail
out=${1:?usage: tests/gpu/device-rerun.sh LOGDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
[ -f .devdeps/env.sh ] && source .devdeps/env.sh
export PATH=/usr/local/cuda/bin:$PATH
b=${KVT_GPU_BUILD:-build-gpu}
end=$((SECONDS + ${KVT_DEVICE_BUDGET:-300}))
s=$out/summary.txt
step() { # step NAME LOG LIMIT CMD...
    local n=$1 log=$2 lim=$3 t0=$SECONDS left=$((end - SECONDS)); shift 3
    [ $left -lt 5 ] && { echo "$n: not run (budget spent)" >>"$s"; return 1; }
    [ $lim -gt $left ] && lim=$left
    echo "=== $n: $*" >>"$log"
    timeout "$lim" "$@" >>"$log" 2>&1; local rc=$?
    echo "$n: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($((SECONDS - t0))s)" >>"$s"
}
echo "$(nvidia-smi --query-gpu=name,pci.bus_id --format=csv,noheader) $(git rev-parse --short HEAD)" >"$s"
step setup "$out/build.log" 60 meson setup "$b" -Dcuda=enabled -Dbuildtype=debugoptimized
step build "$out/build.log" 120 ninja -C "$b" || exit 1
export KVT_BUILD_ROOT=$PWD/$b
step gpu-suite "$out/suite.log" 90 meson test -C "$b" --suite gpu --print-errorlogs -v
bench=$b/bench/kvtier-bench
step bench "$out/bench.txt" 60 "$bench" micro --gpu --total-bytes 1G --open-bytes 8G --nvme "$PWD/$b/g.kvt"
step nvme-own "$out/bench.txt" 60 "$bench" micro --tier nvme --block-bytes 2M --qd 64 \
    --total-bytes 1G --runs 3 --no-anchor --no-demote --dir "$PWD/$b"
for m in kernel batch; do
    step "sweep-$m" "$out/sweep.json" 30 env KVTIER_CUDA_COPY=$m "$bench" micro --gpu \
        --sizes 8K,16K,32K,64K,256K,1M --total-bytes 512M --no-nvme --open-bytes 0 --json
done
cs=compute-sanitizer
groups=('gpu/+(dram_round_trips_*|kernel_path_*|clear_codes_*|dram_arena_*)'
        'gpu/+(hbm_*|nvme_*|demotion_*)'
        'gpu/+(stream_*|concurrent_*)')
for t in memcheck racecheck; do
    for i in 0 1 2; do
        step "$t-$i" "$out/sanitizer.log" 90 env KVT_GPU_TEST_SMALL=1 $cs --tool $t \
            --target-processes all --error-exitcode 99 $b/tests/gpu/test-gpu --jobs 1 --filter "${groups[$i]}"
    done
done
step transformers "$out/suite.log" 60 env KVTIER_LIBRARY=$PWD/$b/lib/libkvtier.so PYTHONPATH=python \
    python3 examples/python/transformers_offload.py
step unit-suite "$out/suite.log" 120 meson test -C "$b" --suite unit --suite gpu-mock --num-processes 16
cat "$s"
