/*
 * common.h: the status type every fallible function returns, and small macros.
 *
 * Library functions return enum status marked MUST_CHECK and describe the failure through
 * struct diag (diag.h); only main() and tests turn a status into an exit code.
 */
#ifndef RUNNER_COMMON_H
#define RUNNER_COMMON_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define MUST_CHECK __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define MUST_CHECK
#define PRINTF_LIKE(f, a)
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Values double as process exit codes (DESIGN.md, Conventions). */
enum status {
    STATUS_OK = 0,
    STATUS_RUNTIME = 1, /* the run failed: I/O, out of memory, a library error */
    STATUS_CONFIG = 2,  /* bad configuration, plan or device */
    STATUS_SIGINT = 130,  /* stopped by SIGINT after saving a checkpoint */
    STATUS_SIGTERM = 143, /* stopped by SIGTERM after saving a checkpoint */
};

#endif
