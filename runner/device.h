/*
 * device.h: which compute devices this build and machine offer.
 *
 *     char why[256];
 *     int n = device_cuda_count(why, sizeof why);   // 0: no usable GPU, and why says so
 *
 * Without CUDA support compiled in, or without a driver (cudaGetDeviceCount fails), the
 * count is 0 and `device: auto` means the CPU, quietly (DESIGN.md, CUDA). Covered by
 * tests/test_cuda_smoke.c, which exits 77 (skipped) where no GPU is present.
 */
#ifndef RUNNER_DEVICE_H
#define RUNNER_DEVICE_H

#include <stddef.h>

#include "common.h"
#include "diag.h"
#include "plan.h"
#include "spec.h"

int device_cuda_count(char *why, size_t size);

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
};

/* device_resolve's device for s, and precision auto made concrete (bf16 on a GPU, fp32 on the
 * CPU). STATUS_CONFIG, reported at the spec's key with a hint: no such GPU (device), or a
 * 16-bit precision asked of the CPU (precision). */
MUST_CHECK enum status device_choose(const struct spec *s, struct device_choice *c,
                                     struct diag *d);

#ifdef RUNNER_HAVE_CUDA
/* Runs a small kernel on device dev and checks its result (tests/test_cuda_smoke.c). */
int device_cuda_selftest(int dev, char *msg, size_t size);
#endif

#endif
