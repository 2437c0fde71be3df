/*
 * fuzz_spec.c: libFuzzer target for the experiment loader and `runner plan`. The input is an
 * experiment file's text; after a NUL byte, newline-separated command-line overrides follow,
 * and a line "--gpu X" among them is plan's option. Every error path prints its message (echo
 * and caret included) to /dev/null, a valid experiment is written back as YAML, and its graph
 * (written inline, e.g. model: {graph: {input: ..., graph: [...]}}) is expanded, planned as
 * `runner plan` plans it (runner/cli.c's cmd_plan: a GPU experiment or --gpu, gpu_plan_sizes'
 * arenas at device_precision's precision for that compute capability; otherwise the CPU plan,
 * sized but not allocated) and summarized.
 * Built and run by scripts/fuzz.sh (ASan + UBSan) and CI's fuzz stage; not part of CTest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "gpu_plan.h"
#include "model.h"
#include "plan.h"
#include "spec.h"
#include "summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---------------------------------------------------------------------------------------- */

/* What `runner plan` prints for s and g, gpu_opt its --gpu (or NULL). As cmd_plan, but the
 * compute capability without --gpu is DEVICE_CC_DEFAULT's: the fuzzing build has no GPU. */
static void plan_print(FILE *out, const struct spec *s, const struct graph *g,
                       const char *gpu_opt, struct diag *d)
{
    int want_cc = 0;
    if (gpu_opt && (want_cc = device_cc_parse(gpu_opt)) < 0) return;
    bool cuda = s->device.kind == SPEC_DEVICE_CUDA;
    struct spec_device dev;
    char msg[256];
    if (s->device.kind == SPEC_DEVICE_AUTO && device_resolve(&s->device, &dev, msg, sizeof msg) == 0)
        cuda = dev.kind == SPEC_DEVICE_CUDA;
    if (want_cc && s->device.kind == SPEC_DEVICE_CPU) {
        diag_error(d, spec_mark(s, "device"), "--gpu %s plans for a GPU, but the experiment "
                   "asks for the CPU", gpu_opt);
        return;
    }
    struct summary_target t = {.cuda = false};
    const char *gpu = "the GPU planned for";
    if (want_cc || cuda)
        t = (struct summary_target){.cuda = true, .cc = want_cc ? want_cc : DEVICE_CC_DEFAULT,
                                    .source = want_cc ? "as --gpu asks" : "the default"};
    if (summary_plan(out, s, g, &t, gpu, d)) return; /* a refusal is an answer, not a finding */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t yaml_len = nul ? (size_t)(nul - data) : size;

    /* Overrides: the bytes after the NUL, one per line, at most 8; "--gpu X" is plan's. */
    char *ovbuf = NULL;
    const char *ov[8];
    const char *gpu_opt = NULL;
    size_t n = 0;
    if (nul) {
        size_t rest = size - yaml_len - 1;
        ovbuf = malloc(rest + 1);
        memcpy(ovbuf, nul + 1, rest);
        ovbuf[rest] = '\0';
        for (char *p = ovbuf; p && n < 8;) {
            char *q = strchr(p, '\n');
            if (q) *q = '\0';
            if (strncmp(p, "--gpu ", 6) == 0)
                gpu_opt = p + 6;
            else
                ov[n++] = p;
            p = q ? q + 1 : NULL;
        }
    }
    struct diag d = {.out = sink};
    struct spec *s = NULL;
    if (spec_load_text("fuzz/experiment.yaml", text, yaml_len, ov, n, &d, &s) == STATUS_OK) {
        spec_write_yaml(s, sink);
        (void)spec_mark(s, "optimizer.lr");
        struct graph *g = NULL;
        if (model_build(s, &d, &g) == STATUS_OK) plan_print(sink, s, g, gpu_opt, &d);
        graph_free(g);
        spec_free(s);
    }
    free(ovbuf);
    return 0;
}
