/*
 * summary.c: the layer table and totals of `runner plan`. See summary.h.
 * Covered by tests/test_graph.c and tests/test_cli.sh.
 */
#include "summary.h"

#include <string.h>

#include "device.h"
#include "gpu_plan.h"
#include "model.h"
#include "plan.h"

struct summary_target summary_target_default(const struct spec *s, bool cuda)
{
    struct summary_target t = {.cuda = cuda, .precision = "fp32"};
    if (!cuda) return t;
    t.cc = DEVICE_CC_DEFAULT;
    t.source = "the default without a GPU";
    /* device_precision without its errors: bf16 is asked of a GPU that has it. */
    switch (s->precision) {
    case SPEC_PRECISION_AUTO:
        t.precision = device_precision_name(device_auto_precision(t.cc));
        break;
    case SPEC_PRECISION_FP32: t.precision = "fp32"; break;
    case SPEC_PRECISION_BF16: t.precision = "bf16"; break;
    case SPEC_PRECISION_FP16: t.precision = "fp16"; break;
    }
    return t;
}

struct summary_memory summary_memory(const struct spec *s, const struct graph *g, bool cuda)
{
    struct summary_target t = summary_target_default(s, cuda);
    return summary_memory_for(s, g, &t);
}

struct summary_memory summary_memory_for(const struct spec *s, const struct graph *g,
                                         const struct summary_target *t)
{
    struct summary_memory m = {.batch = s->train.batch_size, .precision = t->precision};
    size_t act = strcmp(m.precision, "fp32") == 0 ? 4 : 2;
    m.state_per_param = model_optimizer_slots(s);
    size_t np = (size_t)g->nparams;
    m.params = 4 * (np + (size_t)g->nbuffers) + (act == 2 ? 2 * np : 0);
    m.grads = 4 * np;
    m.optimizer = 4 * np * (size_t)m.state_per_param;
    size_t per_image = (size_t)shape_numel(&g->input);
    for (size_t i = 0; i < g->nlayers; i++) per_image += (size_t)shape_numel(&g->layers[i].out);
    m.activations = per_image * act * (size_t)m.batch;
    m.total = m.params + m.grads + m.optimizer + m.activations;
    return m;
}

/* 1234567 -> "1,234,567" */
static const char *commas(char *buf, size_t size, unsigned long long x)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", x), j = 0;
    for (int i = 0; i < n && (size_t)j + 2 < size; i++) {
        if (i && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = tmp[i];
    }
    buf[j] = '\0';
    return buf;
}

static const char *mib(char *buf, size_t size, size_t bytes)
{
    if (bytes >= (size_t)1 << 30)
        snprintf(buf, size, "%.1f GiB", (double)bytes / (1 << 30));
    else
        snprintf(buf, size, "%.1f MiB", (double)bytes / (1 << 20));
    return buf;
}

void summary_print(FILE *out, const struct spec *s, const struct graph *g, bool cuda,
                   const struct plan_sizes *real)
{
    struct summary_target t = summary_target_default(s, cuda);
    summary_print_for(out, s, g, &t, real);
}

void summary_print_for(FILE *out, const struct spec *s, const struct graph *g,
                       const struct summary_target *t, const struct plan_sizes *real)
{
    bool cuda = t->cuda;
    int w = 5;
    for (size_t i = 0; i < g->nlayers; i++) {
        int n = (int)strlen(g->layers[i].name);
        if (n > w) w = n;
    }
    char a[SHAPE_TEXT], b[32], c[32], set[96];
    fprintf(out, "%s (%s): graph %s, input %s\n", s->name, s->file->name,
            s->model.graph.path ? s->model.graph.path : "written inline",
            shape_format(&g->input, a, sizeof a));
    if (cuda)
        fprintf(out, "planned for compute capability %d.%d (%s)%s%s\n", t->cc / 10, t->cc % 10,
                t->precision, t->source ? ", " : "", t->source ? t->source : "");
    fputc('\n', out);
    fprintf(out, "%-*s  %-15s  %-16s  %-10s  %12s  %14s\n", w, "layer", "op", "settings",
            "output", "params", "MACs");
    int count[OP_KIND_COUNT] = {0};
    for (size_t i = 0; i < g->nlayers; i++) {
        const struct graph_layer *l = &g->layers[i];
        const struct op_def *op = op_table[l->op];
        count[l->op]++;
        int64_t np = 0;
        for (size_t t = 0; t < l->ntensors; t++)
            if (g->tensors[l->tensor0 + t].t.role == TENSOR_PARAM)
                np += op_tensor_numel(&g->tensors[l->tensor0 + t].t);
        set[0] = '\0';
        if (op->summary) op->summary(&l->p, set, sizeof set);
        char row[512];
        snprintf(row, sizeof row, "%-*s  %-15s  %-16s  %-10s  %12s  %14s", w, l->name,
                         op->name, set, shape_format(&l->out, a, sizeof a),
                         np ? commas(b, sizeof b, (unsigned long long)np) : "",
                         l->macs ? commas(c, sizeof c, l->macs) : "");
        size_t n = strlen(row);
        while (n && row[n - 1] == ' ') row[--n] = '\0';
        fprintf(out, "%s\n", row);
    }
    fprintf(out, "\nlayers          %zu (", g->nlayers);
    bool first = true;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        if (count[k]) {
            fprintf(out, "%s%d %s", first ? "" : ", ", count[k], op_table[k]->name);
            first = false;
        }
    fprintf(out, ")\n");
    fprintf(out, "parameters      %s in %zu tensors", commas(b, sizeof b, (unsigned long long)g->nparams),
            g->nparam_tensors);
    if (g->nbuffer_tensors)
        fprintf(out, " (buffers: %s values in %zu tensors)",
                commas(c, sizeof c, (unsigned long long)g->nbuffers), g->nbuffer_tensors);
    fprintf(out, "\nMACs per image  %s (%.3f G)\n", commas(b, sizeof b, g->macs), (double)g->macs / 1e9);
    fprintf(out, "output          %lld class scores (%d classes in the data)\n",
            (long long)g->layers[g->output].out.d[0], model_classes(s));

    struct summary_memory m = summary_memory_for(s, g, t);
    static const char *const opt[] = {"sgd", "adam", "adamw"};
    size_t total = real->params + real->grads + real->optimizer + real->activations +
                   real->workspace;
    fprintf(out, "\nmemory of one training step, as planned (batch %lld, %s, %s, %s "
            "backend):\n", m.batch, m.precision, opt[s->optimizer.type], cuda ? "cuda" : "cpu");
    fprintf(out, "  parameters       %12s  (with buffers, in the backend's layouts%s)\n",
            mib(a, sizeof a, real->params),
            cuda && strcmp(m.precision, "fp32") ? "; fp32 and a 16-bit copy" : "");
    fprintf(out, "  gradients        %12s\n", mib(a, sizeof a, real->grads));
    fprintf(out, "  optimizer state  %12s  (%d value%s per parameter)\n",
            mib(a, sizeof a, real->optimizer), m.state_per_param,
            m.state_per_param == 1 ? "" : "s");
    fprintf(out, "  activations      %12s  (buffers shared by lifetime; every layer's outputs "
            "would take %s)\n", mib(a, sizeof a, real->activations),
            mib(b, sizeof b, m.activations));
    if (cuda)
        fprintf(out, "  workspace        %12s  (and cuDNN's and cuBLAS's, known on the GPU)\n",
                mib(a, sizeof a, real->workspace));
    else
        fprintf(out, "  workspace        %12s\n", mib(a, sizeof a, real->workspace));
    fprintf(out, "  total            %12s\n", mib(a, sizeof a, total));
}

enum status summary_plan(FILE *out, const struct spec *s, const struct graph *g,
                         struct summary_target *t, const char *gpu, struct diag *d)
{
    enum plan_precision p;
    if (device_precision(s, t->cuda ? t->cc : 0, t->cuda ? gpu : "the CPU", &p, d))
        return STATUS_CONFIG;
    t->precision = device_precision_name(p);
    struct plan *pl = NULL;
    struct plan_sizes gpu_sizes;
    if (t->cuda) {
        enum gpu_dtype dt = p == PLAN_FP32 ? GPU_F32 : p == PLAN_FP16 ? GPU_F16 : GPU_BF16;
        gpu_plan_sizes(g, s->train.batch_size, dt, model_optimizer_slots(s), &gpu_sizes);
    } else {
        struct plan_options o = {.batch = s->train.batch_size,
                                 .optimizer_slots = model_optimizer_slots(s),
                                 .seed = (uint64_t)s->seed, .sizes_only = true,
                                 .conv_direct = s->train.conv_algorithm == SPEC_CONV_DIRECT};
        if (plan_create(g, &backend_cpu, &o, d, &pl)) return STATUS_CONFIG;
    }
    summary_print_for(out, s, g, t, pl ? &pl->sizes : &gpu_sizes);
    plan_free(pl);
    return STATUS_OK;
}
