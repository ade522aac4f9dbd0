/* knee.c — the ramp's knee search: geometric growth until the SLO is missed, then bisection. */
#include <math.h>
#include <string.h>

#include "knee.h"

static int run(knee_measure measure, void *user, knee_result *r, uint32_t agents, int *met)
{
    knee_step *st = &r->step[r->nsteps++];
    memset(st, 0, sizeof *st);
    st->agents = agents;
    int rc = measure(agents, user, st);
    if (rc == KNEE_STOP) {
        r->nsteps--;
        r->capped = 1;
    }
    if (rc)
        return rc;
    *met = st->met;
    if (st->met && agents > r->knee)
        r->knee = agents;
    if (!st->met && (!r->first_bad || agents < r->first_bad))
        r->first_bad = agents;
    return 0;
}

int knee_find(const knee_opts *o, knee_measure measure, void *user, knee_result *r)
{
    memset(r, 0, sizeof *r);
    int max_steps = o->max_steps < KNEE_MAX_STEPS ? o->max_steps : KNEE_MAX_STEPS;
    if (!o->start || o->max < o->start || !(o->growth > 1) || !(o->resolution >= 0) ||
        max_steps < 1)
        return -1;
    uint32_t a = o->start;
    int met = 0, rc;
    for (;;) {
        if (r->nsteps == max_steps) {
            r->capped = 1;
            return 0;
        }
        if ((rc = run(measure, user, r, a, &met)))
            return rc == KNEE_STOP ? 0 : rc;
        if (!met)
            break;
        if (a == o->max) {
            r->exhausted = 1;
            return 0;
        }
        double next = ceil((double)a * o->growth);
        a = next >= (double)o->max ? o->max : (uint32_t)next;
    }
    /* knee met, first_bad missed (knee 0: nothing met yet). */
    for (;;) {
        uint32_t good = r->knee, bad = r->first_bad;
        double tol = (double)good * o->resolution;
        if (bad - good <= 1 || (double)(bad - good) <= tol)
            return 0;
        if (r->nsteps == max_steps) {
            r->capped = 1;
            return 0;
        }
        if ((rc = run(measure, user, r, good + (bad - good) / 2, &met)))
            return rc == KNEE_STOP ? 0 : rc;
    }
}
