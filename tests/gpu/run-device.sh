#!/bin/bash
# run-device.sh — on the GPU machine: build, run the gpu suite, again under compute-sanitizer (memcheck, racecheck), then the GPU benchmark; logs into LOGDIR.
#
#   tests/gpu/run-device.sh LOGDIR
#
# From the project root of a checkout carried to the GPU machine (with
# .devdeps/ made by ../shared/device/prepare.sh; sourced when present).
# Writes at most 8 files into LOGDIR (what the device tool brings back):
#   summary.txt   GPU, versions, each step's status and time
#   build.log     meson setup + ninja
#   suite.log     meson test: the gpu and unit suites (full sizes); the transformers example
#   sanitizer.log the gpu suite under compute-sanitizer memcheck, then racecheck,
#                 in three groups of tests each (KVT_GPU_TEST_SMALL=1)
#   bench.txt     kvtier-bench micro --gpu (table), then the NVMe tier's own rate
#   bench.json    the same run as JSON, then one sweep per copy method (JSON lines)
# Environment: KVT_GPU_BUILD (build dir, default build-gpu), KVT_DEVICE_QUICK=1
# (smaller bench and sweeps, when device time is short), KVT_DEVICE_BUDGET=S
# (seconds for the whole script: each step's limit is cut to what is left, so
# the steps run in order of what they prove: build, gpu suite, benchmark,
# sanitizers, sweeps, then the CPU suites).
# Exit status: 0 when every step passed, else 1 (the logs say which).
set -uo pipefail
out=${1:?usage: tests/gpu/run-device.sh LOGDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
[ -f .devdeps/env.sh ] && source .devdeps/env.sh
export PATH=/usr/local/cuda/bin:$PATH
build=${KVT_GPU_BUILD:-build-gpu}
quick=${KVT_DEVICE_QUICK:-0}
deadline=$((SECONDS + ${KVT_DEVICE_BUDGET:-3600}))
summary=$out/summary.txt
failed=0

{
    echo "kvtier GPU run, $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total --format=csv,noheader 2>&1
    nvcc --version 2>&1 | tail -1
    echo "cpus $(nproc), $(grep MemTotal /proc/meminfo), kernel $(uname -r)"
    echo
} >"$summary"

# step NAME LOG TIMEOUT CMD...: runs CMD with its output appended to LOG.
step() {
    local name=$1 log=$2 limit=$3
    shift 3
    local t0=$SECONDS rc left=$((deadline - SECONDS))
    if [ $left -lt 10 ]; then
        printf '%-28s %s\n' "$name" "not run (budget spent)" >>"$summary"
        failed=1
        return 1
    fi
    [ $limit -gt $left ] && limit=$left
    echo "=== $name: $*" >>"$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    rc=$?
    printf '%-28s %s (%ds)\n' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc")" \
        $((SECONDS - t0)) >>"$summary"
    [ $rc = 0 ] || failed=1
    return $rc
}

reconf=()
[ -d "$build/meson-private" ] && reconf=(--reconfigure)
step setup "$out/build.log" 300 meson setup "${reconf[@]}" "$build" -Dcuda=enabled \
    -Dbuildtype=debugoptimized || { cat "$summary"; exit 1; }
step build "$out/build.log" 600 ninja -C "$build" || { cat "$summary"; exit 1; }

export KVT_BUILD_ROOT=$root/$build
step gpu-suite "$out/suite.log" 900 meson test -C "$build" --suite gpu --print-errorlogs -v
bench=$build/bench/kvtier-bench
if [ "$quick" = 1 ]; then
    args=(--total-bytes 1G --open-bytes 8G)
    sweep=(--sizes 8K,16K,64K,256K,1M,4M,16M --total-bytes 512M)
else
    args=(--total-bytes 4G --open-bytes 8G)
    sweep=(--sizes 4K,8K,16K,32K,64K,128K,256K,512K,1M,2M,4M,8M,16M --total-bytes 1G)
fi
nvme=(--nvme "$root/$build/bench-gpu.kvt")
step bench "$out/bench.txt" 600 "$bench" micro --gpu "${args[@]}" "${nvme[@]}"
# The NVMe tier's own rate on this machine's disk, next to GPU -> NVMe -> GPU.
step nvme-own "$out/bench.txt" 300 "$bench" micro --tier nvme --block-bytes 2M --qd 64 \
    --total-bytes 1G --runs 3 --no-anchor --no-demote --dir "$root/$build"
[ "$quick" = 1 ] ||
    step bench-json "$out/bench.json" 600 "$bench" micro --gpu "${args[@]}" "${nvme[@]}" --json
# Criterion forks a process per test: the sanitizer follows them all.
gpu_exe=$build/tests/gpu/test-gpu
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null |
    head -1)
# In three groups: the whole suite under memcheck outran 6 minutes on an
# H200 (docs/gpu.md), and a group that runs out of time costs only itself.
groups=('gpu/+(dram_round_trips_*|kernel_*|clear_codes_*|dram_arena_*)'
        'gpu/+(hbm_*|nvme_*|demotion_*)'
        'gpu/+(stream_*|concurrent_*)')
for tool in memcheck racecheck; do
    for i in 0 1 2; do
        step "$tool-$i" "$out/sanitizer.log" 300 env KVT_GPU_TEST_SMALL=1 \
            "${sanitizer:-compute-sanitizer}" --tool "$tool" --target-processes all \
            --error-exitcode 99 "$gpu_exe" --jobs 1 --filter "${groups[$i]}"
    done
done

# Crossover sweeps: the same sizes with each small-fragment method forced
# (KVT_CUDA_CE_MIN_BYTES in lib/cuda.h is set from these; docs/gpu.md).
for m in auto ce batch kernel; do
    step "sweep-$m" "$out/bench.json" 600 env KVTIER_CUDA_COPY=$m "$bench" micro --gpu \
        "${sweep[@]}" --no-nvme --open-bytes 0 --json
done
rm -f "$root/$build/bench-gpu.kvt"
step transformers "$out/suite.log" 300 env KVTIER_LIBRARY="$root/$build/lib/libkvtier.so" \
    PYTHONPATH="$root/python" python3 examples/python/transformers_offload.py
step unit-suite "$out/suite.log" 600 meson test -C "$build" --suite unit --suite gpu-mock \
    --print-errorlogs

echo >>"$summary"
[ $failed = 0 ] && echo "all steps passed" >>"$summary" || echo "SOME STEPS FAILED" >>"$summary"
cat "$summary"
exit $failed
