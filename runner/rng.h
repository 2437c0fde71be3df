/*
 * rng.h: counter-based random numbers. A value is a pure function of (key, counter), so a
 * result does not depend on thread timing or on what ran before: dropout masks are
 * rng_uniform(seed ^ step, element), parameter initialization rng_normal(seed, index).
 * The functions compile as plain C and as CUDA host and device code (RNG_HD), so a kernel
 * draws the same numbers as the host. Covered by tests/test_plan.c.
 */
#ifndef RUNNER_RNG_H
#define RUNNER_RNG_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define RNG_HD __host__ __device__ __forceinline__
#else
#define RNG_HD static inline
#endif

/* splitmix64's finalizer over key and counter: 64 well-mixed bits. */
RNG_HD uint64_t rng_bits(uint64_t key, uint64_t counter)
{
    uint64_t z = key * 0x9E3779B97F4A7C15ull + counter * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
RNG_HD double rng_uniform(uint64_t key, uint64_t counter)
{
    return (double)(rng_bits(key, counter) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller on two draws of the counter's pair). */
RNG_HD double rng_normal(uint64_t key, uint64_t counter)
{
    double u1 = rng_uniform(key, 2 * counter), u2 = rng_uniform(key, 2 * counter + 1);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

#endif
