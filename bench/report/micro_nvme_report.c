/* micro_nvme_report.c — the reports of `micro --tier nvme`: text and JSON of the rows, the anchors, demotion, overhead, recovery. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>


#include "../cmd/micro_nvme.h"

/* --------------------------------------------------------------- reports */

static void json_common_config(bench_json *j, const nv_opts *o, const char *mode)
{
    char fs[32], dev[64];
    nv_describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_json_str(j, "tier", "nvme");
    bench_json_str(j, "mode", mode);
    bench_json_str(j, "dir", o->dir);
    bench_json_str(j, "filesystem", fs);
    bench_json_str(j, "device", dev);
    bench_json_i64(j, "runs", o->runs);
}

static void json_overhead(bench_json *j, const bench_list *blocks)
{
    bench_json_array(j, "overhead");
    for (int i = 0; i < blocks->n; i++) {
        uint64_t slot = 0;
        bench_slot_bytes(blocks->v[i], &slot);
        bench_json_object(j, NULL);
        bench_json_u64(j, "block_bytes", blocks->v[i]);
        bench_json_u64(j, "slot_bytes", slot);
        bench_json_num(j, "overhead", (double)(slot - blocks->v[i]) / (double)blocks->v[i]);
        bench_json_end_object(j);
    }
    bench_json_end_array(j);
}

static void text_overhead(const bench_list *blocks)
{
    char a[32], b[32];
    static const char *const head[] = {"block", "slot on media", "overhead"};
    bench_table t;
    bench_table_init(&t, 3, head, "lrr");
    for (int i = 0; i < blocks->n; i++) {
        uint64_t slot = 0;
        bench_slot_bytes(blocks->v[i], &slot);
        bench_table_cell(&t, "%s", bench_fmt_bytes(blocks->v[i], a, sizeof a));
        bench_table_cell(&t, "%s", bench_fmt_bytes(slot, b, sizeof b));
        bench_table_cell(&t, "%.2f%%", 100.0 * (double)(slot - blocks->v[i]) / (double)blocks->v[i]);
    }
    printf("\n  on-media overhead (4 KiB header unit + payload rounded to 4 KiB; plus one 4 KiB "
           "superblock per file):\n");
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
}

void nv_report_json(const nv_opts *o, const bench_list *blocks, const nv_row *rows,
                    size_t nrows, const anchor_row *arows, size_t narows,
                    const demote_row *drows, size_t ndrows)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "micro");
    bench_json_object(&j, "config");
    json_common_config(&j, o, "throughput");
    bench_json_u64(&j, "total_bytes", o->total);
    bench_json_str(&j, "store", "nvme-only (no DRAM tier); KVT_TOPT_QUEUE_DEPTH = queue_depth");
    bench_json_str(&j, "caller_buffers",
                   "anonymous memory, 4096-aligned, MADV_HUGEPAGE, not registered with io_uring");
    bench_json_str(&j, "raw", "one ring, one thread, queue_depth transfers in flight, ring set "
                              "up like the tier's; raw_*: plain READ/WRITE on the caller's "
                              "buffers (what the tier gets); raw_fixed_*: the same buffers "
                              "registered (READ_FIXED/WRITE_FIXED)");
    bench_json_bool(&j, "raw_fixed", o->fixed_ok);
    bench_json_str(&j, "raw_sum", "the raw loop plus XXH3-64 of every block, as the tier "
                                  "checksums: hashed ahead of each write and verified after "
                                  "each read by raw_sum_helpers threads; raw_sum_*, *_ratio_sum");
    bench_json_bool(&j, "raw_sum_run", o->raw_sum);
    bench_json_u64(&j, "raw_sum_helpers", o->sum_helpers);
    bench_json_u64(&j, "anchor_threads", o->anchor_threads);
    bench_json_num(&j, "page_touch_gb_per_s", o->touch_gbps);
    bench_json_u64(&j, "big_queue_depth", o->big_qd);
    bench_json_u64(&j, "demote_dram_bytes", o->dram_bytes);
    bench_json_str(&j, "statistic", "GB/s: median over passes; ratio: median over runs of "
                                    "the other side's time / kvtier's time");
    bench_json_end_object(&j);
    bench_json_array(&j, "results");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_json_object(&j, NULL);
        bench_json_u64(&j, "block_bytes", r->block_bytes);
        bench_json_u64(&j, "queue_depth", r->qd);
        bench_json_u64(&j, "slot_bytes", r->slot_bytes);
        bench_json_u64(&j, "blocks_per_run", r->blocks);
        bench_json_u64(&j, "run_bytes", (uint64_t)r->blocks * r->block_bytes);
        bench_json_num(&j, "put_gb_per_s", r->put);
        bench_json_num(&j, "put_raw_gb_per_s", r->put_raw);
        bench_json_num(&j, "put_raw_fixed_gb_per_s", r->put_fixed);
        bench_json_num(&j, "put_ratio", r->put_ratio);
        bench_json_num(&j, "put_ratio_p10", r->put_p10);
        bench_json_num(&j, "put_ratio_p90", r->put_p90);
        bench_json_num(&j, "put_ratio_fixed", r->put_ratio_fixed);
        bench_json_num(&j, "get_gb_per_s", r->get);
        bench_json_num(&j, "get_raw_gb_per_s", r->get_raw);
        bench_json_num(&j, "get_raw_fixed_gb_per_s", r->get_fixed);
        bench_json_num(&j, "get_ratio", r->get_ratio);
        bench_json_num(&j, "get_ratio_p10", r->get_p10);
        bench_json_num(&j, "get_ratio_p90", r->get_p90);
        bench_json_num(&j, "get_ratio_fixed", r->get_ratio_fixed);
        bench_json_num(&j, "put_cpu_s_per_gb", r->put_cpu);
        bench_json_num(&j, "put_raw_cpu_s_per_gb", r->put_raw_cpu);
        bench_json_num(&j, "put_raw_fixed_cpu_s_per_gb", r->put_fixed_cpu);
        bench_json_num(&j, "get_cpu_s_per_gb", r->get_cpu);
        bench_json_num(&j, "get_raw_cpu_s_per_gb", r->get_raw_cpu);
        bench_json_num(&j, "get_raw_fixed_cpu_s_per_gb", r->get_fixed_cpu);
        bench_json_num(&j, "put_raw_sum_gb_per_s", r->put_sum);
        bench_json_num(&j, "put_ratio_sum", r->put_ratio_sum);
        bench_json_num(&j, "put_ratio_sum_p10", r->put_sum_p10);
        bench_json_num(&j, "put_ratio_sum_p90", r->put_sum_p90);
        bench_json_num(&j, "put_raw_sum_cpu_s_per_gb", r->put_sum_cpu);
        bench_json_num(&j, "get_raw_sum_gb_per_s", r->get_sum);
        bench_json_num(&j, "get_ratio_sum", r->get_ratio_sum);
        bench_json_num(&j, "get_ratio_sum_p10", r->get_sum_p10);
        bench_json_num(&j, "get_ratio_sum_p90", r->get_sum_p90);
        bench_json_num(&j, "get_raw_sum_cpu_s_per_gb", r->get_sum_cpu);
        bench_json_num(&j, "put_run_delay_ms", r->put_delay);
        bench_json_num(&j, "put_raw_run_delay_ms", r->put_raw_delay);
        bench_json_num(&j, "put_raw_sum_run_delay_ms", r->put_sum_delay);
        bench_json_num(&j, "get_run_delay_ms", r->get_delay);
        bench_json_num(&j, "get_raw_run_delay_ms", r->get_raw_delay);
        bench_json_num(&j, "get_raw_sum_run_delay_ms", r->get_sum_delay);
        bench_json_u64(&j, "pairs", r->pairs);
        bench_json_u64(&j, "staged_blocks", r->staged);
        bench_json_u64(&j, "fixed_host", r->fixed_host);
        bench_json_u64(&j, "resubmits", r->resubmits);
        bench_json_u64(&j, "raw_fixed_transfers", r->raw_fixed_ios);
        bench_json_u64(&j, "raw_resubmits", r->raw_resubmits);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    bench_json_array(&j, "anchor");
    for (size_t i = 0; i < narows; i++) {
        const anchor_row *r = &arows[i];
        bench_json_object(&j, NULL);
        bench_json_u64(&j, "block_bytes", r->block_bytes);
        bench_json_u64(&j, "threads", r->threads);
        bench_json_u64(&j, "queue_depth", r->qd);
        bench_json_u64(&j, "blocks_per_run", r->blocks);
        bench_json_num(&j, "put_page_cache_gb_per_s", r->put_cache);
        bench_json_num(&j, "put_writeback_gb_per_s", r->put_wb);
        bench_json_num(&j, "get_cold_gb_per_s", r->get_cold);
        bench_json_num(&j, "get_warm_gb_per_s", r->get_warm);
        bench_json_i64(&j, "cold_resident_pages", r->cold_resident_pages);
        bench_json_num(&j, "kvtier_put_gb_per_s", r->kvt_put);
        bench_json_num(&j, "kvtier_get_gb_per_s", r->kvt_get);
        bench_json_num(&j, "get_vs_cold", r->get_vs_cold);
        bench_json_num(&j, "get_vs_cold_p10", r->get_vs_cold_p10);
        bench_json_num(&j, "get_vs_cold_p90", r->get_vs_cold_p90);
        bench_json_num(&j, "get_vs_warm", r->get_vs_warm);
        bench_json_num(&j, "put_vs_writeback", r->put_vs_wb);
        bench_json_u64(&j, "pairs", r->pairs);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    bench_json_array(&j, "demote");
    for (size_t i = 0; i < ndrows; i++) {
        const demote_row *r = &drows[i];
        bench_json_object(&j, NULL);
        bench_json_u64(&j, "block_bytes", r->block_bytes);
        bench_json_u64(&j, "dram_bytes", r->dram_bytes);
        bench_json_u64(&j, "queue_depth", r->qd);
        bench_json_u64(&j, "blocks_per_run", r->blocks);
        bench_json_num(&j, "demotions_per_run", r->demotions_per_run);
        bench_json_u64(&j, "raw_writes", r->raw_writes);
        bench_json_num(&j, "put_gb_per_s", r->put);
        bench_json_num(&j, "raw_qd1_gb_per_s", r->raw1);
        bench_json_num(&j, "raw_gb_per_s", r->rawq);
        bench_json_num(&j, "ratio_qd1", r->ratio1);
        bench_json_num(&j, "ratio", r->ratioq);
        bench_json_bool(&j, "raw_registered", r->fixed);
        bench_json_u64(&j, "pairs", r->pairs);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    json_overhead(&j, blocks);
    bench_json_end_object(&j);
}

void nv_report_text(const nv_opts *o, const bench_list *blocks, const nv_row *rows,
                    size_t nrows, const anchor_row *arows, size_t narows,
                    const demote_row *drows, size_t ndrows)
{
    char a[32], b[32], fs[32], dev[64];
    nv_describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_print_header(stdout, "NVMe tier put/get vs raw io_uring O_DIRECT");
    printf("  file in %s (%s on %s); %d runs of %s each way per configuration;\n"
           "  NVMe-only store, caller buffers 4 KiB-aligned and not registered. raw: the same\n"
           "  bytes, offsets and depth from the same buffers (plain READ/WRITE, as the tier\n"
           "  gets them); reg: the same, buffers registered. GB/s: median over passes\n"
           "  (GB = 1e9 B). kvtier/raw: median over runs of the time ratio (10th-90th nv_pct).\n\n",
           o->dir, fs, dev, o->runs, bench_fmt_bytes(o->total, a, sizeof a));
    static const char *const head[] = {"block", "QD", "put GB/s", "raw", "reg", "put/raw",
                                       "get GB/s", "raw", "reg", "get/raw"};
    bench_table t;
    bench_table_init(&t, 10, head, "lrrrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%u", r->qd);
        bench_table_cell(&t, "%.2f", r->put);
        bench_table_cell(&t, "%.2f", r->put_raw);
        bench_table_cell(&t, "%.2f", r->put_fixed);
        bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->put_ratio, 100 * r->put_p10,
                         100 * r->put_p90);
        bench_table_cell(&t, "%.2f", r->get);
        bench_table_cell(&t, "%.2f", r->get_raw);
        bench_table_cell(&t, "%.2f", r->get_fixed);
        bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->get_ratio, 100 * r->get_p10,
                         100 * r->get_p90);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);

    if (o->raw_sum) {
        printf("\n  kvtier next to the raw loop plus a checksum of every block (sum), XXH3-64 as the\n"
               "  tier computes it: hashed ahead of each write and verified after each read by %u\n"
               "  hashing thread%s, like the tier's. What kvtier/sum leaves out is what checksums\n"
               "  cost on this machine; the rest is the tier's own work.\n",
               o->sum_helpers, o->sum_helpers == 1 ? "" : "s");
        static const char *const sh[] = {"block", "QD", "put GB/s", "sum", "put/sum",
                                         "get GB/s", "sum", "get/sum"};
        bench_table_init(&t, 8, sh, "lrrrrrrr");
        for (size_t i = 0; i < nrows; i++) {
            const nv_row *r = &rows[i];
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
            bench_table_cell(&t, "%u", r->qd);
            bench_table_cell(&t, "%.2f", r->put);
            bench_table_cell(&t, "%.2f", r->put_sum);
            bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->put_ratio_sum,
                             100 * r->put_sum_p10, 100 * r->put_sum_p90);
            bench_table_cell(&t, "%.2f", r->get);
            bench_table_cell(&t, "%.2f", r->get_sum);
            bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->get_ratio_sum,
                             100 * r->get_sum_p10, 100 * r->get_sum_p90);
        }
        bench_table_print(&t, stdout, 2);
        bench_table_free(&t);
    }

    printf("\n  CPU time of the process (all its threads), ms per GB moved (median over passes): what\n"
           "  each side costs whatever else runs on the machine.\n");
    static const char *const ch[] = {"block", "QD", "put kvtier", "raw", "reg", "sum",
                                     "get kvtier", "raw", "reg", "sum"};
    bench_table_init(&t, 10, ch, "lrrrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%u", r->qd);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_raw_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_fixed_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_sum_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_raw_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_fixed_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_sum_cpu);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);

    printf("\n  run delay: ms per pass (median) that the thread driving the ring was ready to\n"
           "  reap and submit but waited for a CPU, which the device spends idle.\n");
    static const char *const dh[] = {"block", "QD", "put kvtier", "raw", "sum",
                                     "get kvtier", "raw", "sum"};
    bench_table_init(&t, 8, dh, "lrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%u", r->qd);
        bench_table_cell(&t, "%.2f", r->put_delay);
        bench_table_cell(&t, "%.2f", r->put_raw_delay);
        bench_table_cell(&t, "%.2f", r->put_sum_delay);
        bench_table_cell(&t, "%.2f", r->get_delay);
        bench_table_cell(&t, "%.2f", r->get_raw_delay);
        bench_table_cell(&t, "%.2f", r->get_sum_delay);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);

    if (narows) {
        printf("\n  one file per block (the anchors' disk tier), %u threads, buffered, no fsync;\n"
               "  same blocks, same runs as kvtier at QD %u. put: returns with the bytes in the\n"
               "  page cache; +wb: plus writing them back (sync_file_range) and dropping them.\n"
               "  cold: read after the drop (resident pages found before: %" PRId64 ");\n"
               "  warm: read again at once, from the page cache. First touches of fresh 4 KiB\n"
               "  pages (what new page-cache pages cost) ran at %.2f GB/s on this machine.\n",
               arows[0].threads, arows[0].qd, arows[0].cold_resident_pages, o->touch_gbps);
        static const char *const ah[] = {"block", "put", "put+wb", "get cold", "get warm",
                                         "kvtier put", "kvtier get", "get vs cold",
                                         "get vs warm"};
        bench_table_init(&t, 9, ah, "lrrrrrrrr");
        for (size_t i = 0; i < narows; i++) {
            const anchor_row *r = &arows[i];
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
            bench_table_cell(&t, "%.2f", r->put_cache);
            bench_table_cell(&t, "%.2f", r->put_wb);
            bench_table_cell(&t, "%.2f", r->get_cold);
            bench_table_cell(&t, "%.2f", r->get_warm);
            bench_table_cell(&t, "%.2f", r->kvt_put);
            bench_table_cell(&t, "%.2f", r->kvt_get);
            bench_table_cell(&t, "%.2fx (%.2f-%.2f)", r->get_vs_cold, r->get_vs_cold_p10,
                             r->get_vs_cold_p90);
            bench_table_cell(&t, "%.2fx", r->get_vs_warm);
        }
        bench_table_print(&t, stdout, 2);
        bench_table_free(&t);
    }
    if (ndrows) {
        printf("\n  puts into a DRAM tier of up to %s (a quarter of a run at most) demoting to\n"
               "  NVMe (writes from the registered arena), vs the same work by hand: memcpy of\n"
               "  the run's blocks (one thread), then the raw loop writing as many blocks as\n"
               "  kvtier demoted (\"raw writes\"), O_DIRECT from registered memory; GB/s of\n"
               "  bytes put on both sides:\n",
               bench_fmt_bytes(o->dram_bytes, b, sizeof b));
        static const char *const dh[] = {"block", "DRAM", "demoted/run", "raw writes",
                                         "put GB/s", "raw QD1", "raw QD", "QD", "vs QD1",
                                         "vs QD"};
        bench_table_init(&t, 10, dh, "lrrrrrrrrr");
        for (size_t i = 0; i < ndrows; i++) {
            const demote_row *r = &drows[i];
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->dram_bytes, b, sizeof b));
            bench_table_cell(&t, "%.0f of %zu", r->demotions_per_run, r->blocks);
            bench_table_cell(&t, "%zu", r->raw_writes);
            bench_table_cell(&t, "%.2f", r->put);
            bench_table_cell(&t, "%.2f", r->raw1);
            bench_table_cell(&t, "%.2f", r->rawq);
            bench_table_cell(&t, "%u", r->qd);
            bench_table_cell(&t, "%.1f%%", 100 * r->ratio1);
            bench_table_cell(&t, "%.1f%%", 100 * r->ratioq);
        }
        bench_table_print(&t, stdout, 2);
        bench_table_free(&t);
    }
    text_overhead(blocks);
}

void nv_report_recovery(const nv_opts *o, int json, const rec_row *rows, size_t nrows,
                        const bench_list *blocks)
{
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        bench_json_object(&j, "config");
        json_common_config(&j, o, "recovery");
        bench_json_u64(&j, "queue_depth", o->big_qd);
        bench_json_str(&j, "statistic", "median over reopens");
        bench_json_end_object(&j);
        bench_json_array(&j, "recovery");
        for (size_t i = 0; i < nrows; i++) {
            const rec_row *r = &rows[i];
            bench_json_object(&j, NULL);
            bench_json_u64(&j, "blocks", r->blocks);
            bench_json_u64(&j, "block_bytes", r->block_bytes);
            bench_json_u64(&j, "slot_bytes", r->slot_bytes);
            bench_json_u64(&j, "file_bytes", r->file_bytes);
            bench_json_u64(&j, "queue_depth", r->qd);
            bench_json_num(&j, "create_ms", r->create_ms);
            bench_json_num(&j, "fill_s", r->fill_s);
            bench_json_num(&j, "fill_blocks_per_s", (double)r->blocks / r->fill_s);
            bench_json_num(&j, "close_ms", r->close_ms);
            bench_json_num(&j, "open_ms", r->open_ms);
            bench_json_num(&j, "open_ms_min", r->open_ms_min);
            bench_json_num(&j, "open_ms_max", r->open_ms_max);
            bench_json_num(&j, "recovery_ms", r->recovery_ms);
            bench_json_num(&j, "headers_per_s",
                           r->recovery_ms > 0 ? (double)r->blocks / (r->recovery_ms / 1e3) : NAN);
            bench_json_u64(&j, "recovered", r->recovered);
            bench_json_i64(&j, "reopens", r->reopens);
            bench_json_end_object(&j);
        }
        bench_json_end_array(&j);
        json_overhead(&j, blocks);
        bench_json_end_object(&j);
        return;
    }
    char a[32], b[32], c[32], fs[32], dev[64];
    nv_describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_print_header(stdout, "NVMe tier recovery time");
    printf("  file in %s (%s on %s); NVMe-only store, queue depth %u. Fill, close, then\n"
           "  %d reopens: open = kvt_open wall time; recovery = the nvme.recovery_ms stat\n"
           "  (reading every slot header and rebuilding the index). Medians over reopens.\n\n",
           o->dir, fs, dev, o->big_qd, nrows ? rows[0].reopens : 0);
    static const char *const head[] = {"blocks", "block", "slot", "file", "fill s",
                                       "close ms", "open ms (min-max)", "recovery ms",
                                       "headers/s", "recovered"};
    bench_table t;
    bench_table_init(&t, 10, head, "rlrrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const rec_row *r = &rows[i];
        bench_table_cell(&t, "%" PRIu64, r->blocks);
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->slot_bytes, b, sizeof b));
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->file_bytes, c, sizeof c));
        bench_table_cell(&t, "%.2f", r->fill_s);
        bench_table_cell(&t, "%.1f", r->close_ms);
        bench_table_cell(&t, "%.1f (%.1f-%.1f)", r->open_ms, r->open_ms_min, r->open_ms_max);
        bench_table_cell(&t, "%.0f", r->recovery_ms);
        bench_table_cell(&t, "%.0f",
                         r->recovery_ms > 0 ? (double)r->blocks / (r->recovery_ms / 1e3) : NAN);
        bench_table_cell(&t, "%" PRIu64, r->recovered);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
    text_overhead(blocks);
}

