/*
 * fuzz_spec.c: libFuzzer target for the experiment loader. The input is an experiment file's
 * text; after a NUL byte, newline-separated command-line overrides follow. Every error path
 * prints its message (echo and caret included) to /dev/null, a valid experiment is written
 * back as YAML, and its graph (written inline, e.g. model: {graph: {input: ..., graph: [...]}})
 * is expanded and summarized. Built and run by scripts/fuzz.sh (ASan + UBSan); not part of CTest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "spec.h"
#include "summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t yaml_len = nul ? (size_t)(nul - data) : size;

    /* Overrides: the bytes after the NUL, one per line, at most 8. */
    char *ovbuf = NULL;
    const char *ov[8];
    size_t n = 0;
    if (nul) {
        size_t rest = size - yaml_len - 1;
        ovbuf = malloc(rest + 1);
        memcpy(ovbuf, nul + 1, rest);
        ovbuf[rest] = '\0';
        for (char *p = ovbuf; p && n < 8;) {
            char *q = strchr(p, '\n');
            if (q) *q = '\0';
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
        if (model_build(s, &d, &g) == STATUS_OK) summary_print(sink, s, g, false, NULL);
        graph_free(g);
        spec_free(s);
    }
    free(ovbuf);
    return 0;
}
