/*
 * schedule.c: learning-rate schedules; see schedule.h.
 */
#include "schedule.h"

#include <math.h>

void schedule_init(struct schedule *sc, const struct spec_schedule *s, double lr, int64_t epochs,
                   int64_t steps_per_epoch)
{
    *sc = (struct schedule){.s = s, .lr = lr, .steps_per_epoch = steps_per_epoch,
                            .total = epochs * steps_per_epoch};
    if (s->type != SPEC_SCHEDULE_ONECYCLE)
        sc->warmup = (int64_t)llround(s->warmup_epochs * (double)steps_per_epoch);
    if (sc->warmup > sc->total) sc->warmup = sc->total;
}

/* OneCycleLR: up from lr / div to lr over pct_start of the run, then down to lr / div / final. */
static double onecycle(const struct schedule *sc, int64_t t)
{
    const struct spec_schedule *s = sc->s;
    double initial = sc->lr / s->div_factor, low = initial / s->final_div_factor;
    double end1 = s->pct_start * (double)sc->total - 1, end2 = (double)sc->total - 1;
    double from, to, pct;
    if ((double)t <= end1) {
        from = initial;
        to = sc->lr;
        pct = (double)t / end1;
    } else {
        from = sc->lr;
        to = low;
        pct = ((double)t - end1) / (end2 - end1);
    }
    if (s->anneal == SPEC_ANNEAL_LINEAR) return from + (to - from) * pct;
    return to + (from - to) / 2 * (cos(M_PI * pct) + 1);
}

double schedule_lr(const struct schedule *sc, int64_t t)
{
    const struct spec_schedule *s = sc->s;
    if (t < sc->warmup) {
        double f = s->warmup_start_factor;
        return sc->lr * (f + (1 - f) * (double)t / (double)sc->warmup);
    }
    int64_t epoch = t / sc->steps_per_epoch;
    switch (s->type) {
    case SPEC_SCHEDULE_CONSTANT:
        return sc->lr;
    case SPEC_SCHEDULE_STEP:
        return sc->lr * pow(s->gamma, (double)(epoch / s->step_epochs));
    case SPEC_SCHEDULE_MULTISTEP: {
        double lr = sc->lr;
        for (size_t i = 0; i < s->milestones.n; i++)
            if (epoch >= s->milestones.v[i]) lr *= s->gamma;
        return lr;
    }
    case SPEC_SCHEDULE_EXPONENTIAL:
        return sc->lr * pow(s->gamma, (double)t / (double)sc->steps_per_epoch);
    case SPEC_SCHEDULE_COSINE: {
        double span = (double)(sc->total - sc->warmup), x = (double)(t - sc->warmup);
        return s->min_lr + (sc->lr - s->min_lr) * (1 + cos(M_PI * x / span)) / 2;
    }
    case SPEC_SCHEDULE_ONECYCLE:
        return onecycle(sc, t);
    }
    return sc->lr;
}
