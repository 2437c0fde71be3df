/*
 * test_pretrained_parity.c DIR SOURCE_DIR: torchvision's ResNet-50 weights in the runner.
 * tests/parity/pretrained_export.py wrote DIR/resnet50.safetensors (resnet50(num_classes=1000)
 * with random weights and batchnorm statistics: the layout of ImageNet-pretrained weights),
 * and DIR/input.safetensors (a batch x and torchvision's evaluation logits). This builds
 * experiments/models/resnet50_imagenet_stem.yaml with 1000 classes for x's size, loads the file
 * with weights_load (strict), runs the evaluation forward with direct and with automatic
 * (Winograd) convolutions and compares the logits (relative L2 error <= 1e-4); it writes the
 * plan's weights to DIR/runner.safetensors, which the script strict-loads into torchvision and
 * compares tensor by tensor. Then the shipped experiment, experiments/resnet50_pretrained_adam.yaml,
 * with its model.pretrained pointed at the export: pretrained_load takes all but fc (reinit:
 * [fc]), and without the reinit fails naming fc.weight and fc.bias (the messages are printed).
 * Run by tests/parity/pretrained_run.sh.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph.h"
#include "model.h"
#include "onednn.h"
#include "plan.h"
#include "pretrained.h"
#include "safetensors.h"
#include "spec.h"
#include "test_util.h"
#include "weights.h"
#include "yaml_load.h"

#define TOLERANCE 1e-4

static const char *dir, *source_dir;

static const char *in_dir(const char *name)
{
    static char path[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static struct st_file *open_ok(const char *path)
{
    struct diag d = {.out = stderr};
    struct st_file *f;
    assert_int_equal(st_open(path, &d, &f), STATUS_OK);
    return f;
}

/* The shipped ImageNet-stem graph with 1000 classes, for images of `image`'s shape. */
static struct graph *imagenet_resnet50(struct arena *a, const struct shape *image)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/experiments/models/resnet50_imagenet_stem.yaml", source_dir);
    char *yaml = slurp(path);
    assert_non_null(yaml);
    /* The file's classifier has $classes outputs: ImageNet's 1000 here. */
    size_t len = strlen(yaml);
    char *text = arena_alloc(a, len + 1);
    memcpy(text, yaml, len + 1);
    free(yaml);
    struct source *src = arena_alloc(a, sizeof *src);
    *src = (struct source){"resnet50_imagenet_stem.yaml", ".", text, strlen(text)};
    struct diag d = {.out = stderr};
    struct node *root;
    struct graph *g;
    assert_int_equal(yaml_load_text(a, &d, src, text, strlen(text), 1, 1, &root), STATUS_OK);
    assert_int_equal(graph_build_for(root, image, 1000, &d, &g), STATUS_OK);
    return g;
}

/* torchvision's export loaded strictly; evaluation logits against torchvision's. */
static void test_logits(void **state)
{
    (void)state;
    struct st_file *weights = open_ok(in_dir("resnet50.safetensors"));
    struct st_file *input = open_ok(in_dir("input.safetensors"));
    const struct st_tensor *x = st_find(input, "x"), *y = st_find(input, "logits");
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->rank, 4);
    int64_t n = x->shape[0];
    struct shape image = {3, {x->shape[1], x->shape[2], x->shape[3]}};
    struct arena a = {0};
    struct graph *g = imagenet_resnet50(&a, &image);
    assert_int_equal(g->ntensors, st_count(weights));

    struct diag d = {.out = stderr};
    float *xs = malloc((size_t)x->numel * sizeof *xs), *want = malloc((size_t)y->numel * 4);
    float *got = malloc((size_t)y->numel * sizeof *got);
    assert_int_equal(st_read_f32(input, "x", x->rank, x->shape, xs, &d), STATUS_OK);
    assert_int_equal(st_read_f32(input, "logits", 2, (int64_t[]){n, 1000}, want, &d), STATUS_OK);
    for (int direct = 1; direct >= 0; direct--) {
        if (!direct && !onednn_winograd()) { /* auto is direct: done */
            printf("auto convolutions: skipped: oneDNN %d.x has no Winograd convolution\n",
                   DNNL_VERSION_MAJOR);
            break;
        }
        struct plan_options o = {.batch = n, .eval_only = true, .conv_direct = direct};
        struct plan *p;
        assert_int_equal(plan_create(g, &backend_cpu, &o, &d, &p), STATUS_OK);
        assert_int_equal(weights_load(p, weights, in_dir("resnet50.safetensors"), &d), STATUS_OK);
        plan_set_input(p, xs, NULL);
        plan_forward(p, false);
        plan_get_output(p, got);
        double num = 0, den = 0, largest = 0;
        for (int64_t i = 0; i < y->numel; i++) {
            double e = (double)got[i] - (double)want[i];
            num += e * e;
            den += (double)want[i] * want[i];
            if (!(fabs(e) <= largest)) largest = fabs(e);
        }
        double rel = sqrt(num) / sqrt(den);
        bool ok = rel <= TOLERANCE; /* false for NaN */
        printf("%-4s logits (%lld x 1000, %lldx%lld, %s convolutions): relative error %.2e "
               "(limit %.0e), largest difference %.2e (logits' RMS %.2f)\n", ok ? "ok" : "FAIL",
               (long long)n, (long long)image.d[1], (long long)image.d[2],
               direct ? "direct" : "auto", rel, TOLERANCE, largest, sqrt(den / (double)y->numel));
        if (!ok) fail_msg("logits differ from torchvision's by %.3g (relative)", rel);
        /* The other direction: the runner's copy, for the script's strict load. */
        if (direct)
            assert_int_equal(weights_save(p, in_dir("runner.safetensors"), ST_F32, &d), STATUS_OK);
        plan_free(p);
    }
    free(xs);
    free(want);
    free(got);
    graph_free(g);
    arena_free(&a);
    st_close(weights);
    st_close(input);
}

/* pretrained_load through experiments/resnet50_pretrained_adam.yaml (its graph at 224x224,
 * 10 classes), the export as model.pretrained: fc re-initialized, or an error naming it. */
static void test_experiment(void **state)
{
    (void)state;
    char path[4200], pretrained[4300];
    snprintf(path, sizeof path, "%s/experiments/resnet50_pretrained_adam.yaml", source_dir);
    snprintf(pretrained, sizeof pretrained, "model.pretrained=%s",
             in_dir("resnet50.safetensors"));
    for (int reinit = 1; reinit >= 0; reinit--) {
        const char *ov[] = {pretrained, "model.reinit=[]"};
        struct diag d = {.out = stderr};
        struct spec *s;
        struct graph *g;
        struct plan *p;
        assert_int_equal(spec_load(path, ov, reinit ? 1 : 2, &d, &s), STATUS_OK);
        assert_int_equal(model_build(s, &d, &g), STATUS_OK);
        assert_int_equal(g->input.d[1], 224);
        struct plan_options o = {.batch = 1, .eval_only = true};
        assert_int_equal(plan_create(g, &backend_cpu, &o, &d, &p), STATUS_OK);
        plan_init_params(p, (uint64_t)s->seed);
        struct pretrained_result r;
        char *msgs;
        size_t len;
        FILE *mem = open_memstream(&msgs, &len);
        struct diag md = {.out = mem};
        enum status st = pretrained_load(p, s, NULL, &r, &md);
        fclose(mem);
        if (reinit) {
            printf("%s\n", r.line);
            assert_int_equal(st, STATUS_OK);
            assert_int_equal(r.loaded, g->ntensors - 2);
            assert_int_equal(r.reinit, 2);
        } else {
            printf("without model.reinit:\n%s", msgs);
            assert_int_equal(st, STATUS_CONFIG);
            assert_int_equal(md.errors, 2);
            assert_non_null(strstr(msgs, "tensor 'fc.weight': shape [1000, 2048] in the file, "
                                         "[10, 2048] in the network"));
            assert_non_null(strstr(msgs, "model.reinit: [fc]"));
        }
        free(msgs);
        plan_free(p);
        graph_free(g);
        spec_free(s);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_pretrained_parity DIR SOURCE_DIR\n");
        return 2;
    }
    dir = argv[1];
    source_dir = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_experiment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
