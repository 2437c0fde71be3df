/*
 * device.h: which compute devices this build and machine offer, and the precision each
 * computes in.
 *
 *     char why[256];
 *     int n = device_cuda_count(why, sizeof why);   // 0: no usable GPU, and why says so
 *     if (n == 0 && device_cuda_broken(why, sizeof why)) ...   // a driver, but unusable
 *
 * Without CUDA support compiled in, or without an NVIDIA driver (cudaDriverGetVersion gives
 * 0), the count is 0 and `device: auto` means the CPU, quietly. A driver that is installed
 * but unusable (older than the CUDA runtime, no GPU visible) also gives 0, but it is a
 * problem to report: `device: auto` then says why, and uses the CPU (DESIGN.md, CUDA).
 *
 * Compute capabilities are major * 10 + minor: 75 for 7.5 (T4), 120 for 12.0. `precision:
 * auto` is bf16 from 8.0 and fp16 (with loss scaling) below; bf16 asked of a GPU below 8.0 is
 * a configuration error. Covered by tests/test_device.c (the decisions, without a GPU) and
 * tests/test_cuda_smoke.c, which exits 77 (skipped) where no GPU is present.
 */
#ifndef RUNNER_DEVICE_H
#define RUNNER_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common.h"
#include "diag.h"
#include "plan.h"
#include "spec.h"

/* ---- compute capabilities and precision (plain host logic) ------------------------------ */

#define DEVICE_CC_MIN 75     /* the oldest GPU this runner's GPU code is built for (T4) */
#define DEVICE_CC_BF16 80    /* the first with bf16 tensor cores (A100) */
#define DEVICE_CC_DEFAULT 90 /* what a GPU plan assumes without a GPU and without --gpu */

#ifndef __cplusplus /* C++ sees enum plan_precision inside struct plan_options (plan.h) */
/* precision auto on a GPU of compute capability cc: PLAN_BF16 from 8.0, else PLAN_FP16 (with
 * dynamic loss scaling). */
enum plan_precision device_auto_precision(int cc);
#endif

/* Whether a GPU of compute capability cc computes in bf16 (8.0 and newer). */
bool device_cc_has_bf16(int cc);

/* "sm_75" or "7.5" (also "sm_90", "9.0", "sm_120", "12.0") as a compute capability (75, 90,
 * 120); -1 for anything else, a capability below DEVICE_CC_MIN included. */
int device_cc_parse(const char *text);

#ifndef __cplusplus
/* "fp32", "bf16", "fp16". */
const char *device_precision_name(enum plan_precision p);

/* The precision s computes in on the CPU (cc 0) or on a GPU of compute capability cc, called
 * gpu in messages ("cuda:0 (Tesla T4)"): auto made concrete, else the one asked for.
 * STATUS_CONFIG, reported at the spec's precision key with a hint: bf16 or fp16 asked of the
 * CPU, or bf16 of a GPU below 8.0. */
MUST_CHECK enum status device_precision(const struct spec *s, int cc, const char *gpu,
                                        enum plan_precision *p, struct diag *d);
#endif

/* ---- the CUDA driver and runtime --------------------------------------------------------- */

/* What the CUDA runtime says about this machine. */
struct device_cuda_probe {
    int driver;             /* cudaDriverGetVersion: 0 without a driver, else 1000 * major +
                               10 * minor of the newest CUDA the driver supports */
    int runtime;            /* cudaRuntimeGetVersion, the same way */
    int error;              /* cudaGetDeviceCount's cudaError_t: 0 when it succeeded */
    const char *error_text; /* cudaGetErrorString(error), or NULL */
    int count;              /* GPUs, when it succeeded */
};

/* Whether the probe shows a driver that is installed but unusable (too old for the runtime,
 * no GPU visible, any cudaGetDeviceCount error); why says what it shows, with the versions:
 * "no NVIDIA driver" (false), or the problem (true). Plain logic, for device_cuda_count and
 * device_cuda_broken. */
bool device_cuda_explain(const struct device_cuda_probe *p, char *why, size_t size);

/* The GPUs CUDA can use; 0 with why set when there are none (no driver, an unusable one, or
 * no CUDA in this build). */
int device_cuda_count(char *why, size_t size);

/* Whether an NVIDIA driver is installed but CUDA cannot use it: then true and why says what
 * is wrong, with the driver's and the runtime's CUDA versions. False without a driver, with
 * usable GPUs, and in a build without CUDA. */
bool device_cuda_broken(char *why, size_t size);

/* The compute capability of GPU dev, with "cuda:N (NAME)" written into name; -1 (name
 * "cuda:N") where CUDA cannot tell (no such GPU, or no CUDA in this build). */
int device_gpu_info(int dev, char *name, size_t size);

/* Versions of the libraries this binary uses, one "name version" line each. */
void device_write_versions(FILE *out);

/* The device a spec asks for, made concrete: "cpu" or "cuda:N", or an error message
 * (device: cuda without a GPU). Returns 0 on success, -1 with *msg set. */
int device_resolve(const struct spec_device *want, struct spec_device *got, char *msg,
                   size_t size);

/* Where a run computes: the backend and the plan options that follow from the spec on this
 * machine, and the device's name for people ("cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"). */
struct device_choice {
    const struct backend *be;
    struct plan_options o; /* device, precision, tf32, deterministic, graphs, conv, seed */
    char name[300];
    const char *precision; /* "fp32", "bf16", "fp16" */
    int cc;                /* the GPU's compute capability (75 for 7.5); 0 on the CPU */
    char warning[400];     /* device: auto on the CPU because the NVIDIA driver is unusable:
                              why (device_choose printed "runner: warning: WHY" to d->out;
                              a run writes it into run.log too); else "" */
};

/* device_resolve's device for s, and device_precision's precision there (auto: bf16 on a GPU
 * from compute capability 8.0, fp16 below, fp32 on the CPU). STATUS_CONFIG, reported at the
 * spec's key with a hint: no such GPU (device), a 16-bit precision asked of the CPU, or bf16
 * of a GPU below 8.0 (precision). */
MUST_CHECK enum status device_choose(const struct spec *s, struct device_choice *c,
                                     struct diag *d);

#ifdef RUNNER_HAVE_CUDA
/* GPU dev's compute capability from the CUDA runtime (major * 10 + minor), or -1. */
int device_cuda_capability(int dev);

/* Runs a small kernel on device dev and checks its result (tests/test_cuda_smoke.c). */
int device_cuda_selftest(int dev, char *msg, size_t size);
#endif

#endif
