/*
 * device_cuda.cu: a GPU's compute capability from the CUDA runtime, and the smallest proof
 * that kernels built into this binary run on the GPU: y = a * x + y on a device, compared
 * with the same sum on the host. Covered by tests/test_cuda_smoke.c.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>

extern "C" {
#include "device.h"
}

__global__ void saxpy_kernel(int n, float a, const float *x, float *y) // x, y: (n,)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

extern "C" int device_cuda_capability(int dev)
{
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
        cudaGetLastError(); /* not left for the next call's check */
        return -1;
    }
    return major * 10 + minor;
}

#define TRY(call)                                                                              \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            snprintf(msg, size, "%s failed on cuda:%d: %s (%s:%d)", #call, dev,                \
                     cudaGetErrorString(e_), __FILE__, __LINE__);                              \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)

extern "C" int device_cuda_selftest(int dev, char *msg, size_t size)
{
    enum { N = 1 << 20 };
    int rc = -1;
    float *hx = (float *)malloc(N * sizeof(float)), *hy = (float *)malloc(N * sizeof(float));
    float *dx = NULL, *dy = NULL;
    if (!hx || !hy) {
        snprintf(msg, size, "out of host memory");
        free(hx);
        free(hy);
        return -1;
    }
    for (int i = 0; i < N; i++) {
        hx[i] = (float)(i % 1000) * 0.001f;
        hy[i] = (float)(i % 7);
    }
    TRY(cudaSetDevice(dev));
    TRY(cudaMalloc((void **)&dx, N * sizeof(float)));
    TRY(cudaMalloc((void **)&dy, N * sizeof(float)));
    TRY(cudaMemcpy(dx, hx, N * sizeof(float), cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(dy, hy, N * sizeof(float), cudaMemcpyHostToDevice));
    saxpy_kernel<<<(N + 255) / 256, 256>>>(N, 2.0f, dx, dy);
    TRY(cudaGetLastError());
    TRY(cudaMemcpy(hy, dy, N * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++) {
        float want = 2.0f * ((float)(i % 1000) * 0.001f) + (float)(i % 7);
        if (fabsf(hy[i] - want) > 1e-6f * (1.0f + fabsf(want))) {
            snprintf(msg, size, "saxpy on cuda:%d: y[%d] = %g, expected %g", dev, i, hy[i], want);
            goto out;
        }
    }
    rc = 0;
out:
    cudaFree(dx);
    cudaFree(dy);
    free(hx);
    free(hy);
    return rc;
}
