/* main.c — kvtier-bench: picks the subcommand from a table and runs it. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* One row per subcommand, one file per row (cmd_<name>.c). To add one
 * (swarm, replay, sweep, micro --tier nvme/hbm...): write cmd_<name>.c with
 * `int bench_<name>(int argc, char **argv)`, declare it in bench.h, list it
 * here and in meson.build, and document it in docs/bench.md. */
static const struct {
    const char *name;
    bench_cmd_fn run;
    const char *summary;
} commands[] = {
    {"default", bench_default,
     "the default run: the agent swarm through DRAM + NVMe, tiers vs ceilings, TTL curve"},
    {"swarm", bench_swarm,
     "agent-swarm workload through a store (static N agents, or ramp to the TTFT SLO)"},
    {"compare", bench_compare,
     "HBM+DRAM vs +NVMe vs +plain files: static, ramp to the knee, TTL curve; table and charts"},
    {"mixed", bench_mixed, "agentic put/lookup/get mix on the DRAM tier, next to memcpy"},
    {"micro", bench_micro,
     "DRAM tier put/get GB/s per block size and copy threads, vs memcpy (--gpu: GPU memory)"},
    {"close", bench_close, "kvt_close writing a full DRAM tier down to NVMe, next to raw writes"},
    {"index", bench_index, "single-thread lookup rate on resident keys, bytes per block"},
    {"layers", bench_layers, "DRAM tier: first layer of a batch of blocks in place vs whole blocks"},
    {"replay", bench_replay, "request traces through a store on its manual clock: hit ratios per tier"},
    {"sweep", bench_sweep, "replay over policy x capacity x NVMe size x TTL, as CSV (bench/plot.py)"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kvtier-bench [COMMAND] [flags]\n"
            "\n"
            "Measures the kvtier library (%s) as an application links it.\n"
            "With no command, runs 'default' (about 6 s on a 2-vCPU VM, at most 2 GiB of memory\n"
            "and a 2 GiB file in $TMPDIR or /tmp, removed at exit).\n"
            "\ncommands:\n",
            kvt_version_string());
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nEvery command takes --json (one JSON object on stdout, fields in\n"
               "docs/bench.md) and --help. Exit status: 0 done, 1 failed, 2 bad flags.\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                     strcmp(argv[1], "help") == 0)) {
        usage(stdout);
        return BENCH_OK;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("kvtier-bench %s\n", kvt_version_string());
        return BENCH_OK;
    }
    if (kvt_version() != KVT_VERSION_NUMBER) {
        fprintf(stderr, "kvtier-bench: built against kvtier %d, running with %d (%s)\n",
                KVT_VERSION_NUMBER, kvt_version(), kvt_version_string());
        return BENCH_FAILED;
    }
    /* Flags without a command belong to the default run: `kvtier-bench --json`. */
    if (argc < 2 || argv[1][0] == '-')
        return bench_default(argc, argv); /* subcommands parse from argv[1] */
    /* `micro --gpu` is its own program (gpu.c): GPU memory, raw CUDA copies. */
    if (strcmp(argv[1], "micro") == 0)
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--gpu") == 0)
                return bench_micro_gpu(argc - 1, argv + 1);
            if (strcmp(argv[i], "--shared") == 0) /* cmd/cmd_micro_shared.c */
                return bench_micro_shared(argc - 1, argv + 1);
        }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kvtier-bench: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return BENCH_USAGE;
}
