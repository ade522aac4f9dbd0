/* stats.c — sample lists and nearest-rank percentiles. */
#include <math.h>
#include <stdlib.h>

#include "../bench.h"

int bench_samples_add(bench_samples *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    s->sorted = 0;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void sort(bench_samples *s)
{
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof *s->v, cmp_double);
        s->sorted = 1;
    }
}

double bench_percentile(bench_samples *s, double p)
{
    if (!s->n)
        return NAN;
    sort(s);
    if (p <= 0)
        return s->v[0];
    /* Nearest rank: ceil(p/100 * n), 1-based. With few samples, p99 is the
     * maximum, which is the honest answer. */
    double rank = ceil(p / 100.0 * (double)s->n);
    size_t r = rank < 1 ? 1 : (size_t)rank;
    if (r > s->n)
        r = s->n;
    return s->v[r - 1];
}

double bench_median(bench_samples *s)
{
    if (!s->n)
        return NAN;
    sort(s);
    /* The middle one, or the mean of the middle two: with 5 runs, the 3rd. */
    if (s->n % 2)
        return s->v[s->n / 2];
    return (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
}

double bench_min(bench_samples *s)
{
    return bench_percentile(s, 0);
}

double bench_max(bench_samples *s)
{
    return bench_percentile(s, 100);
}

double bench_sum(const bench_samples *s)
{
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += s->v[i];
    return sum;
}

void bench_samples_free(bench_samples *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
    s->sorted = 0;
}
