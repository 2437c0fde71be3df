/* device.c: see device.h. */
#include "device.h"

#include <ctype.h>
#include <lua.h>
#include <oneapi/dnnl/dnnl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#ifdef RUNNER_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#endif

/* --------------------------------------------------------------------------------------- */
/* Compute capabilities and precision */

enum plan_precision device_auto_precision(int cc)
{
    return device_cc_has_bf16(cc) ? PLAN_BF16 : PLAN_FP16;
}

bool device_cc_has_bf16(int cc) { return cc >= DEVICE_CC_BF16; }

int device_cc_parse(const char *text)
{
    int major = 0, minor = 0, cc = -1;
    const char *p = text;
    if (strncmp(p, "sm_", 3) == 0) {
        p += 3;
        /* sm_ and two or three digits, the last the minor version: sm_75, sm_120 */
        int k = 0, n = 0;
        while (isdigit((unsigned char)p[k]) && k < 4) n = 10 * n + (p[k++] - '0');
        if ((k == 2 || k == 3) && !p[k] && p[0] != '0') cc = n;
    } else {
        /* MAJOR.MINOR, a one- or two-digit major and a one-digit minor: 7.5, 12.0 */
        int k = 0;
        while (isdigit((unsigned char)p[k]) && k < 3) major = 10 * major + (p[k++] - '0');
        if ((k == 1 || k == 2) && p[0] != '0' && p[k] == '.' && isdigit((unsigned char)p[k + 1]) &&
            !p[k + 2]) {
            minor = p[k + 1] - '0';
            cc = 10 * major + minor;
        }
    }
    return cc >= DEVICE_CC_MIN ? cc : -1;
}

const char *device_precision_name(enum plan_precision p)
{
    return p == PLAN_BF16 ? "bf16" : p == PLAN_FP16 ? "fp16" : "fp32";
}

enum status device_precision(const struct spec *s, int cc, const char *gpu,
                             enum plan_precision *p, struct diag *d)
{
    if (cc <= 0) {
        *p = PLAN_FP32;
        if (s->precision == SPEC_PRECISION_AUTO || s->precision == SPEC_PRECISION_FP32)
            return STATUS_OK;
        diag_error(d, spec_mark(s, "precision"),
                   "precision %s needs a GPU; the CPU computes in fp32",
                   s->precision == SPEC_PRECISION_BF16 ? "bf16" : "fp16");
        diag_hint(d, "precision: auto (fp32 on the CPU) or fp32");
        return STATUS_CONFIG;
    }
    switch (s->precision) {
    case SPEC_PRECISION_AUTO: *p = device_auto_precision(cc); return STATUS_OK;
    case SPEC_PRECISION_FP32: *p = PLAN_FP32; return STATUS_OK;
    case SPEC_PRECISION_FP16: *p = PLAN_FP16; return STATUS_OK;
    case SPEC_PRECISION_BF16: break;
    }
    *p = PLAN_BF16;
    if (device_cc_has_bf16(cc)) return STATUS_OK;
    diag_error(d, spec_mark(s, "precision"),
               "precision bf16 needs a GPU of compute capability %d.%d or newer; %s has "
               "compute capability %d.%d, without bf16 tensor cores",
               DEVICE_CC_BF16 / 10, DEVICE_CC_BF16 % 10, gpu, cc / 10, cc % 10);
    diag_hint(d, "precision: fp16 (with loss scaling) or auto (fp16 there)");
    return STATUS_CONFIG;
}

/* --------------------------------------------------------------------------------------- */
/* The CUDA driver and runtime */

/* cudaErrorInsufficientDriver and cudaErrorNoDevice, for device_cuda_explain without the
 * CUDA headers (checked against them below). */
enum { CUDA_INSUFFICIENT_DRIVER = 35, CUDA_NO_DEVICE = 100 };
#ifdef RUNNER_HAVE_CUDA
_Static_assert(CUDA_INSUFFICIENT_DRIVER == (int)cudaErrorInsufficientDriver, "cudaError_t");
_Static_assert(CUDA_NO_DEVICE == (int)cudaErrorNoDevice, "cudaError_t");
#endif

bool device_cuda_explain(const struct device_cuda_probe *p, char *why, size_t size)
{
    int dmaj = p->driver / 1000, dmin = p->driver % 1000 / 10;
    int rmaj = p->runtime / 1000, rmin = p->runtime % 1000 / 10;
    const char *text = p->error_text ? p->error_text : "unknown error";
    if (p->driver <= 0) {
        snprintf(why, size, "no NVIDIA driver");
        return false;
    }
    if (p->error == 0 && p->count > 0) {
        snprintf(why, size, "%d GPU%s", p->count, p->count == 1 ? "" : "s");
        return false;
    }
    if (p->error == CUDA_INSUFFICIENT_DRIVER)
        snprintf(why, size, "the NVIDIA driver supports CUDA up to %d.%d, older than this "
                 "runner's CUDA %d.%d runtime (cudaGetDeviceCount: %s); update the driver",
                 dmaj, dmin, rmaj, rmin, text);
    else if (p->error == 0 || p->error == CUDA_NO_DEVICE) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        snprintf(why, size, "the NVIDIA driver (CUDA %d.%d; runtime %d.%d) is installed, but no "
                 "GPU is visible%s%s%s", dmaj, dmin, rmaj, rmin,
                 vis ? " (CUDA_VISIBLE_DEVICES=\"" : "", vis ? vis : "", vis ? "\")" : "");
    } else
        snprintf(why, size, "the NVIDIA driver (CUDA %d.%d; runtime %d.%d) is installed, but "
                 "cudaGetDeviceCount failed: %s", dmaj, dmin, rmaj, rmin, text);
    return true;
}

#ifdef RUNNER_HAVE_CUDA
static bool cuda_probe(char *why, size_t size, int *count)
{
    struct device_cuda_probe p = {0};
    cudaDriverGetVersion(&p.driver);
    cudaRuntimeGetVersion(&p.runtime);
    cudaError_t e = cudaGetDeviceCount(&p.count);
    if (e != cudaSuccess) {
        p.error = (int)e;
        p.error_text = cudaGetErrorString(e);
        p.count = 0;
        cudaGetLastError(); /* not left for the next call's check */
    }
    *count = p.count;
    return device_cuda_explain(&p, why, size);
}
#endif

int device_cuda_count(char *why, size_t size)
{
#ifdef RUNNER_HAVE_CUDA
    int n;
    cuda_probe(why, size, &n);
    return n;
#else
    snprintf(why, size, "this runner was built without CUDA");
    return 0;
#endif
}

bool device_cuda_broken(char *why, size_t size)
{
#ifdef RUNNER_HAVE_CUDA
    int n;
    return cuda_probe(why, size, &n);
#else
    snprintf(why, size, "this runner was built without CUDA");
    return false;
#endif
}

int device_gpu_info(int dev, char *name, size_t size)
{
    snprintf(name, size, "cuda:%d", dev);
#ifdef RUNNER_HAVE_CUDA
    int cc = device_cuda_capability(dev);
    struct cudaDeviceProp p;
    if (cc < 0) return -1;
    if (cudaGetDeviceProperties(&p, dev) == cudaSuccess)
        snprintf(name, size, "cuda:%d (%s)", dev, p.name);
    else
        cudaGetLastError();
    return cc;
#else
    return -1;
#endif
}

/* --------------------------------------------------------------------------------------- */
/* The device of a run */

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
        snprintf(msg, size, "device cuda:%d was asked for, but there is no usable GPU: %s",
                 want->index, why);
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
        if (device_precision(s, 0, "the CPU", &c->o.precision, d)) return STATUS_CONFIG;
        snprintf(c->name, sizeof c->name, "cpu");
        char why[300];
        if (s->device.kind == SPEC_DEVICE_AUTO && device_cuda_broken(why, sizeof why)) {
            snprintf(c->warning, sizeof c->warning, "%s; running on the CPU", why);
            if (d->out) fprintf(d->out, "runner: warning: %s\n", c->warning);
        }
        return STATUS_OK;
    }
#ifdef RUNNER_HAVE_CUDA
    c->be = &backend_cuda;
    c->cc = device_gpu_info(dev.index, c->name, sizeof c->name);
    if (c->cc < 0) {
        diag_error(d, spec_mark(s, "device"), "the CUDA runtime cannot tell the compute "
                   "capability of %s", c->name);
        return STATUS_RUNTIME;
    }
    if (device_precision(s, c->cc, c->name, &c->o.precision, d)) return STATUS_CONFIG;
    c->precision = device_precision_name(c->o.precision);
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
    fprintf(out, "Lua %s\n", &LUA_RELEASE[4]); /* LUA_RELEASE past its "Lua " */
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
