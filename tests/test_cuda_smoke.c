/*
 * test_cuda_smoke.c: a kernel built into runner runs on every GPU present and gives the
 * right numbers. Exit 77 (skipped) without a usable GPU, unless RUNNER_REQUIRE_GPU=1, where
 * a missing GPU is a failure. Built only with the CUDA backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

int main(void)
{
    char why[256];
    int n = device_cuda_count(why, sizeof why);
    const char *req = getenv("RUNNER_REQUIRE_GPU");
    if (n == 0) {
        if (req && strcmp(req, "1") == 0) {
            fprintf(stderr, "RUNNER_REQUIRE_GPU=1, but %s\n", why);
            return 1;
        }
        printf("skipped: %s\n", why);
        return 77;
    }
    for (int i = 0; i < n; i++) {
        char msg[512];
        if (device_cuda_selftest(i, msg, sizeof msg) != 0) {
            fprintf(stderr, "cuda:%d: %s\n", i, msg);
            return 1;
        }
        printf("cuda:%d: saxpy ok\n", i);
    }
    return 0;
}
