/*
 * export_logits.c: the runner's side of tests/test_export.sh.
 *
 *     export_logits init EXP.yaml W.safetensors SEED     fresh weights (plan_init_params,
 *                                                        batchnorm's drawn too, so its scale,
 *                                                        shift and statistics all matter)
 *     export_logits run EXP.yaml W.safetensors IN.f32 N OUT.f32
 *
 * run builds EXP's evaluation plan on the CPU with W, feeds it IN (N images, NCHW float32,
 * as the network sees them) and writes the logits (N, classes) as float32 to OUT.
 * Exit status: 0, 1 on a failure (reported), 2 for bad arguments.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "model.h"
#include "plan.h"
#include "safetensors.h"
#include "spec.h"
#include "weights.h"

/* Batchnorm's weight, bias, running_mean and running_var drawn from [0.5, 1.5), [-0.5, 0.5),
 * [-0.1, 0.1) and [0.5, 1.5) (their initial 1, 0, 0, 1 would hide a mixed-up input). */
static void draw_batchnorm(struct plan *p, const struct graph *g, uint64_t seed)
{
    uint64_t r = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    float *v = malloc(weights_largest(g) * sizeof *v);
    for (size_t i = 0; v && i < g->ntensors; i++) {
        const struct graph_tensor *t = &g->tensors[i];
        if (g->layers[t->layer].op != OP_KIND_BATCHNORM || t->t.dtype != TENSOR_F32) continue;
        bool mean = strstr(t->t.suffix, "mean"), bias = strcmp(t->t.suffix, "bias") == 0;
        for (int64_t j = 0; j < t->t.dim[0]; j++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            float u = (float)(r >> 40) / (float)(1 << 24);
            v[j] = mean ? (u - 0.5f) * 0.2f : bias ? u - 0.5f : 0.5f + u;
        }
        plan_set_tensor(p, t, v);
    }
    free(v);
}

static struct plan *build(const char *exp, int64_t batch, struct spec **s, struct graph **g)
{
    struct diag d = {.out = stderr};
    struct plan *p;
    if (spec_load(exp, NULL, 0, &d, s)) return NULL;
    if (model_build(*s, &d, g)) return NULL;
    struct plan_options o = {.batch = batch, .eval_only = true};
    if (plan_create(*g, &backend_cpu, &o, &d, &p)) return NULL;
    return p;
}

int main(int argc, char **argv)
{
    struct spec *s;
    struct graph *g;
    struct diag d = {.out = stderr};
    if (argc == 5 && strcmp(argv[1], "init") == 0) {
        struct plan *p = build(argv[2], 1, &s, &g);
        if (!p) return 1;
        plan_init_params(p, strtoull(argv[4], NULL, 10));
        draw_batchnorm(p, g, strtoull(argv[4], NULL, 10));
        int rc = weights_save(p, argv[3], ST_F32, &d) ? 1 : 0;
        plan_free(p);
        graph_free(g);
        spec_free(s);
        return rc;
    }
    if (argc != 7 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "usage: export_logits init EXP W SEED | run EXP W IN N OUT\n");
        return 2;
    }
    int64_t n = atoll(argv[5]);
    struct plan *p = build(argv[2], n, &s, &g);
    if (!p) return 1;
    struct st_file *f;
    if (st_open(argv[3], &d, &f)) return 1;
    if (weights_load(p, f, argv[3], &d)) return 1;
    st_close(f);
    size_t image = 1, classes = (size_t)g->layers[g->output].out.d[0];
    for (int i = 0; i < g->input.rank; i++) image *= (size_t)g->input.d[i];
    float *x = malloc((size_t)n * image * sizeof *x);
    float *y = malloc((size_t)n * classes * sizeof *y);
    FILE *in = fopen(argv[4], "rb");
    if (!x || !y || !in || fread(x, sizeof *x, (size_t)n * image, in) != (size_t)n * image) {
        fprintf(stderr, "export_logits: cannot read %s\n", argv[4]);
        return 1;
    }
    fclose(in);
    plan_set_input(p, x, NULL);
    plan_forward(p, false);
    plan_get_output(p, y);
    FILE *out = fopen(argv[6], "wb");
    if (!out || fwrite(y, sizeof *y, (size_t)n * classes, out) != (size_t)n * classes ||
        fclose(out)) {
        fprintf(stderr, "export_logits: cannot write %s\n", argv[6]);
        return 1;
    }
    int rc = plan_status(p) ? 1 : 0;
    free(x);
    free(y);
    plan_free(p);
    graph_free(g);
    spec_free(s);
    return rc;
}
