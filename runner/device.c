/* device.c: see device.h. */
#include "device.h"

#include <lua.h>
#include <oneapi/dnnl/dnnl.h>
#include <png.h>
#include <stdio.h>
#include <yaml.h>

#ifdef RUNNER_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#endif

int device_cuda_count(char *why, size_t size)
{
#ifdef RUNNER_HAVE_CUDA
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, size, "no usable CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0) snprintf(why, size, "no CUDA device found");
    return n;
#else
    snprintf(why, size, "this runner was built without CUDA");
    return 0;
#endif
}

int device_resolve(const struct spec_device *want, struct spec_device *got, char *msg,
                   size_t size)
{
    char why[256];
    if (want->kind == SPEC_DEVICE_CPU) {
        *got = *want;
        return 0;
    }
    int n = device_cuda_count(why, sizeof why);
    if (want->kind == SPEC_DEVICE_AUTO) {
        *got = (struct spec_device){n > 0 ? SPEC_DEVICE_CUDA : SPEC_DEVICE_CPU, 0};
        return 0;
    }
    if (n == 0) {
        snprintf(msg, size, "device cuda:%d was asked for, but %s", want->index, why);
        return -1;
    }
    if (want->index >= n) {
        snprintf(msg, size, "device cuda:%d was asked for, but this machine has %d GPU%s "
                 "(cuda:0 to cuda:%d)", want->index, n, n == 1 ? "" : "s", n - 1);
        return -1;
    }
    *got = *want;
    return 0;
}

enum status device_choose(const struct spec *s, struct device_choice *c, struct diag *d)
{
    char msg[512];
    struct spec_device dev;
    *c = (struct device_choice){.be = &backend_cpu, .precision = "fp32"};
    if (device_resolve(&s->device, &dev, msg, sizeof msg)) {
        diag_error(d, spec_mark(s, "device"), "%s", msg);
        diag_hint(d, "device: auto uses a GPU when there is one, else the CPU");
        return STATUS_CONFIG;
    }
    c->o = (struct plan_options){.seed = (uint64_t)s->seed, .device = dev.index,
                                 .conv_direct = s->train.conv_algorithm == SPEC_CONV_DIRECT,
                                 .deterministic = s->train.deterministic, .tf32 = s->train.tf32,
                                 .no_graph = !s->train.cuda_graphs};
    if (dev.kind == SPEC_DEVICE_CPU) {
        if (s->precision != SPEC_PRECISION_AUTO && s->precision != SPEC_PRECISION_FP32) {
            diag_error(d, spec_mark(s, "precision"),
                       "precision %s needs a GPU; the CPU computes in fp32",
                       s->precision == SPEC_PRECISION_BF16 ? "bf16" : "fp16");
            diag_hint(d, "precision: auto (fp32 on the CPU) or fp32");
            return STATUS_CONFIG;
        }
        snprintf(c->name, sizeof c->name, "cpu");
        return STATUS_OK;
    }
#ifdef RUNNER_HAVE_CUDA
    c->be = &backend_cuda;
    c->o.precision = s->precision == SPEC_PRECISION_FP32   ? PLAN_FP32
                     : s->precision == SPEC_PRECISION_FP16 ? PLAN_FP16
                                                           : PLAN_BF16;
    c->precision = c->o.precision == PLAN_FP32 ? "fp32" : c->o.precision == PLAN_FP16 ? "fp16"
                                                                                      : "bf16";
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev.index) == cudaSuccess)
        snprintf(c->name, sizeof c->name, "cuda:%d (%s)", dev.index, p.name);
    else
        snprintf(c->name, sizeof c->name, "cuda:%d", dev.index);
    return STATUS_OK;
#else
    diag_error(d, spec_mark(s, "device"), "this runner was built without CUDA");
    return STATUS_CONFIG;
#endif
}

void device_write_versions(FILE *out)
{
    const dnnl_version_t *dv = dnnl_version();
    fprintf(out, "libyaml %s\n", yaml_get_version_string());
    fprintf(out, "Lua %s\n", LUA_RELEASE + 4);
    fprintf(out, "oneDNN %d.%d.%d\n", dv->major, dv->minor, dv->patch);
    fprintf(out, "libpng %s\n", png_get_libpng_ver(NULL));
#ifdef RUNNER_HAVE_CUDA
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    size_t cudnn = cudnnGetVersion();
    fprintf(out, "CUDA runtime %d.%d, driver %d.%d\n", rt / 1000, rt % 1000 / 10, drv / 1000,
            drv % 1000 / 10);
    fprintf(out, "cuDNN %zu.%zu.%zu\n", cudnn / 10000, cudnn % 10000 / 100, cudnn % 100);
    fprintf(out, "cuBLAS %d\n", CUBLAS_VERSION);
    char why[256];
    int n = device_cuda_count(why, sizeof why);
    if (n == 0) fprintf(out, "GPUs: none (%s)\n", why);
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
            fprintf(out, "GPU cuda:%d %s, compute capability %d.%d, %.1f GiB\n", i, p.name,
                    p.major, p.minor, (double)p.totalGlobalMem / (1 << 30));
    }
#else
    fprintf(out, "CUDA: not built in\n");
#endif
}
