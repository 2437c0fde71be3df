/*
 * layers/conv.c: the conv op's table entry: parameters, shape rule, tensors, multiply-adds.
 * See conv.h. Covered by tests/test_graph.c.
 */
#include "layers/conv.h"

#include "common.h"
#include "op.h"
#include "schema.h"

#define P(f) offsetof(struct conv_params, f)

static const struct schema_key conv_keys[] = {
    {.name = "out", .type = SCHEMA_INT, .offset = P(out), .flags = SK_REQUIRED | SK_MIN,
     .min = 1, .doc = "output channels"},
    {.name = "kernel", .type = SCHEMA_INT2, .offset = P(kernel), .flags = SK_REQUIRED | SK_MIN,
     .min = 1, .doc = "kernel size"},
    {.name = "stride", .type = SCHEMA_INT2, .offset = P(stride), .flags = SK_MIN, .min = 1,
     .def = "1", .doc = "step between windows"},
    {.name = "pad", .type = SCHEMA_INT2, .offset = P(pad), .flags = SK_MIN, .min = 0,
     .def = "0", .doc = "zero padding on each side"},
    {.name = "dilation", .type = SCHEMA_INT2, .offset = P(dilation), .flags = SK_MIN, .min = 1,
     .def = "1", .doc = "spacing between kernel taps"},
    {.name = "groups", .type = SCHEMA_INT, .offset = P(groups), .flags = SK_MIN, .min = 1,
     .def = "1", .doc = "channel groups (input and output channels must divide by it)"},
    {.name = "bias", .type = SCHEMA_BOOL, .offset = P(bias), .def = "false",
     .doc = "add a learned bias per output channel (off: a batchnorm usually follows)"},
};
static const struct schema_section conv_section = {
    .name = "conv", .keys = conv_keys, .nkeys = ARRAY_LEN(conv_keys)};

static bool conv_infer(union op_params *up, const struct shape *in, struct shape *out,
                       char *why, size_t size)
{
    const struct conv_params *p = &up->conv;
    char sb[SHAPE_TEXT];
    if (in->rank != 3) {
        snprintf(why, size, "conv needs a CxHxW input, got %s", shape_format(in, sb, sizeof sb));
        return false;
    }
    if (in->d[0] % p->groups || p->out % p->groups) {
        snprintf(why, size, "groups %lld must divide the input channels (%lld) and out (%lld)",
                 p->groups, (long long)in->d[0], p->out);
        return false;
    }
    int64_t o[2];
    for (int i = 0; i < 2; i++)
        o[i] = shape_window_out(in->d[1 + i], p->kernel[i], p->stride[i], p->pad[i],
                                p->dilation[i], false);
    if (o[0] < 1 || o[1] < 1) {
        long long er = p->dilation[0] * (p->kernel[0] - 1) + 1;
        long long es = p->dilation[1] * (p->kernel[1] - 1) + 1;
        long long ph = in->d[1] + 2 * p->pad[0], pw = in->d[2] + 2 * p->pad[1];
        if (er != p->kernel[0] || es != p->kernel[1])
            snprintf(why, size, "kernel %lldx%lld, dilated to %lldx%lld, is larger than its "
                     "padded input %lldx%lld", p->kernel[0], p->kernel[1], er, es, ph, pw);
        else
            snprintf(why, size, "kernel %lldx%lld is larger than its padded input %lldx%lld",
                     p->kernel[0], p->kernel[1], ph, pw);
        return false;
    }
    *out = (struct shape){3, {p->out, o[0], o[1]}};
    return true;
}

static int conv_tensors(const union op_params *up, const struct shape *in,
                        const struct shape *out, struct op_tensor *t)
{
    (void)out;
    const struct conv_params *p = &up->conv;
    int64_t cg = in->d[0] / p->groups, rs = p->kernel[0] * p->kernel[1];
    int64_t fan_in = cg * rs, fan_out = p->out * rs;
    t[0] = (struct op_tensor){"weight", 4, {p->out, cg, p->kernel[0], p->kernel[1]},
                              TENSOR_PARAM, TENSOR_F32, TENSOR_INIT_KAIMING_NORMAL, fan_in, fan_out};
    if (!p->bias) return 1;
    t[1] = (struct op_tensor){"bias", 1, {p->out}, TENSOR_PARAM, TENSOR_F32,
                              TENSOR_INIT_UNIFORM_FAN_IN, fan_in, fan_out};
    return 2;
}

static uint64_t conv_macs(const union op_params *up, const struct shape *in,
                          const struct shape *out)
{
    const struct conv_params *p = &up->conv;
    return (uint64_t)shape_numel(out) * (uint64_t)(in->d[0] / p->groups) *
           (uint64_t)(p->kernel[0] * p->kernel[1]);
}

static void conv_summary(const union op_params *up, char *buf, size_t size)
{
    const struct conv_params *p = &up->conv;
    char k[48], st[48], pad[48], dil[48];
    snprintf(k, sizeof k, "%lldx%lld", p->kernel[0], p->kernel[1]);
    shape_pair(st, sizeof st, p->stride, ",");
    shape_pair(pad, sizeof pad, p->pad, ",");
    shape_pair(dil, sizeof dil, p->dilation, ",");
    bool s1 = p->stride[0] == 1 && p->stride[1] == 1;
    bool d1 = p->dilation[0] == 1 && p->dilation[1] == 1;
    char g[32] = "";
    if (p->groups != 1) snprintf(g, sizeof g, " groups %lld", p->groups);
    snprintf(buf, size, "%s%s%s%s%s%s%s%s%s", k, s1 ? "" : "/", s1 ? "" : st,
             p->pad[0] || p->pad[1] ? " pad " : "", p->pad[0] || p->pad[1] ? pad : "",
             d1 ? "" : " dil ", d1 ? "" : dil, g, p->bias ? " +bias" : "");
}

const struct op_def op_conv = {
    .name = "conv",
    .doc = "2-D convolution (torch.nn.Conv2d): CxHxW -> out x P x Q; weight (out, C/groups, kh, "
           "kw), bias (out)",
    .arity = 1,
    .params = &conv_section,
    .infer = conv_infer,
    .tensors = conv_tensors,
    .macs = conv_macs,
    .summary = conv_summary,
};
