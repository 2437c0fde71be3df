/*
 * tests/ref/ref.h: the naive reference kernels ("the oracle"), in plain C on double arrays.
 * The fast CPU backend and the CUDA backend are tested against these on random inputs; these
 * are themselves checked by tests/test_ref.c (finite differences and hand-computed cases).
 *
 *     struct ref_conv c = {.N = 2, .C = 3, .H = 8, .W = 8, .K = 4, .R = 3, .S = 3,
 *                          .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1,
 *                          .dil_h = 1, .dil_w = 1, .groups = 1};
 *     c.P = ref_window_out(c.H, c.R, c.stride_h, c.pad_h, c.dil_h, 0);
 *     c.Q = ref_window_out(c.W, c.S, c.stride_w, c.pad_w, c.dil_w, 0);
 *     ref_conv_forward(&c, x, w, b, y);       // x (N, C, H, W) -> y (N, K, P, Q)
 *
 * Contract: every function takes raw pointers and explicit dimensions, keeps no state and
 * allocates nothing; the caller owns every buffer and sizes it as the shape comments say.
 * All activations are NCHW contiguous; vectors are (N, F). Outputs are overwritten, never
 * accumulated into. Nothing is checked: bad dimensions are the caller's bug. The semantics are
 * PyTorch's (the torch.nn module or torch.optim class named at each function).
 */
#ifndef RUNNER_TESTS_REF_H
#define RUNNER_TESTS_REF_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------------- */
/* Window geometry */

/* Output size of a window as PyTorch computes it: floor((in + 2 pad - dil (k - 1) - 1) / stride)
 * + 1, or the ceiling with ceil_mode, dropping a last window that would start in the right
 * padding. 0 when the dilated window does not fit the padded input. */
int ref_window_out(int in, int k, int stride, int pad, int dil, int ceil_mode);

/* ---------------------------------------------------------------------------------------- */
/* Convolution (torch.nn.Conv2d, cross-correlation) */

/* Convolution geometry (PyTorch Conv2d): x (N, C, H, W), w (K, C/groups, R, S), y (N, K, P, Q).
 * C and K divide by groups; P and Q are given (see ref_window_out). */
struct ref_conv {
    int N, C, H, W, K, R, S, P, Q;
    int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

void ref_conv_forward(const struct ref_conv *c,
                      const double *x, /* (N, C, H, W) */
                      const double *w, /* (K, C/groups, R, S) */
                      const double *b, /* (K) or NULL */
                      double *y);      /* (N, K, P, Q) */
/* dx overwritten. */
void ref_conv_backward_data(const struct ref_conv *c,
                            const double *dy, /* (N, K, P, Q) */
                            const double *w,  /* (K, C/groups, R, S) */
                            double *dx);      /* (N, C, H, W) */
/* dw and db overwritten; db NULL: no bias. */
void ref_conv_backward_weights(const struct ref_conv *c,
                               const double *x,  /* (N, C, H, W) */
                               const double *dy, /* (N, K, P, Q) */
                               double *dw,       /* (K, C/groups, R, S) */
                               double *db);      /* (K) or NULL */

/* ---------------------------------------------------------------------------------------- */
/* Batch normalization (torch.nn.BatchNorm2d; HW = 1 is BatchNorm1d) */

/* Batch normalization over channels of x (N, C, HW) — PyTorch BatchNorm2d (HW = 1 is BatchNorm1d).
 * Training: normalizes with the batch mean and biased variance; saves them in mean/var (C);
 * updates running_mean/running_var (C) in place with momentum: r = (1 - momentum) r + momentum * batch,
 * the running variance using the UNBIASED batch variance (n / (n - 1)), n = N * HW.
 * (PyTorch refuses n = 1 in training; here the running variance then takes the biased one.) */
void ref_batchnorm_forward_train(int N, int C, int HW, double eps, double momentum,
                                 const double *x,     /* (N, C, HW) */
                                 const double *gamma, /* (C) */
                                 const double *beta,  /* (C) */
                                 double *y,           /* (N, C, HW) */
                                 double *mean,        /* (C) out: batch mean */
                                 double *var,         /* (C) out: batch biased variance */
                                 double *running_mean,  /* (C) in/out */
                                 double *running_var);  /* (C) in/out */
/* y = gamma (x - running_mean) / sqrt(running_var + eps) + beta. */
void ref_batchnorm_forward_infer(int N, int C, int HW, double eps,
                                 const double *x,            /* (N, C, HW) */
                                 const double *gamma,        /* (C) */
                                 const double *beta,         /* (C) */
                                 const double *running_mean, /* (C) */
                                 const double *running_var,  /* (C) */
                                 double *y);                 /* (N, C, HW) */
/* Backward of the training forward (batch statistics), given the saved mean/var.
 * dx, dgamma and dbeta overwritten. */
void ref_batchnorm_backward(int N, int C, int HW, double eps,
                            const double *x,     /* (N, C, HW) */
                            const double *dy,    /* (N, C, HW) */
                            const double *gamma, /* (C) */
                            const double *mean,  /* (C) saved by forward_train */
                            const double *var,   /* (C) saved by forward_train */
                            double *dx,          /* (N, C, HW) */
                            double *dgamma,      /* (C) */
                            double *dbeta);      /* (C) */

/* ---------------------------------------------------------------------------------------- */
/* Element-wise: ReLU (torch.nn.ReLU), residual add */

void ref_relu_forward(int64_t n,
                      const double *x, /* (n) */
                      double *y);      /* (n) */
/* dx = dy where x > 0, else 0 (the gradient at 0 is 0, as PyTorch). */
void ref_relu_backward(int64_t n,
                       const double *x,  /* (n) forward input */
                       const double *dy, /* (n) */
                       double *dx);      /* (n) */

/* y = a + b (its backward passes dy to both inputs unchanged). */
void ref_add_forward(int64_t n,
                     const double *a, /* (n) */
                     const double *b, /* (n) */
                     double *y);      /* (n) */

/* ---------------------------------------------------------------------------------------- */
/* Pooling (torch.nn.MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1)) */

/* Pooling geometry (PyTorch MaxPool2d / AvgPool2d): x (N, C, H, W) -> y (N, C, P, Q); P, Q given
 * (the caller computes them, ceil_mode included); pad on each side. */
struct ref_pool {
    int N, C, H, W, P, Q, kh, kw, stride_h, stride_w, pad_h, pad_w;
    int count_include_pad; /* avgpool: divide by kh*kw (1) or by the window's part inside the input (0).
                              PyTorch with count_include_pad=1 divides by the window clipped to the
                              PADDED input (H + 2 pad), which matters only with ceil_mode; implement that. */
};

/* Padding is -inf; a window with no input element gives -inf. */
void ref_maxpool_forward(const struct ref_pool *p,
                         const double *x, /* (N, C, H, W) */
                         double *y);      /* (N, C, P, Q) */
/* Gradient to the FIRST maximum of each window, scanning rows then columns; dx overwritten. */
void ref_maxpool_backward(const struct ref_pool *p,
                          const double *x,  /* (N, C, H, W) forward input */
                          const double *dy, /* (N, C, P, Q) */
                          double *dx);      /* (N, C, H, W) */
/* A window with a divisor of 0 (no input element, count_include_pad 0) gives 0. */
void ref_avgpool_forward(const struct ref_pool *p,
                         const double *x, /* (N, C, H, W) */
                         double *y);      /* (N, C, P, Q) */
/* dx overwritten. */
void ref_avgpool_backward(const struct ref_pool *p,
                          const double *dy, /* (N, C, P, Q) */
                          double *dx);      /* (N, C, H, W) */

void ref_global_avg_pool_forward(int N, int C, int HW,
                                 const double *x, /* (N, C, HW) */
                                 double *y);      /* (N, C) */
void ref_global_avg_pool_backward(int N, int C, int HW,
                                  const double *dy, /* (N, C) */
                                  double *dx);      /* (N, C, HW) */

/* ---------------------------------------------------------------------------------------- */
/* Linear (torch.nn.Linear): x (N, IN), w (OUT, IN), b (OUT) or NULL, y (N, OUT) */

void ref_linear_forward(int N, int IN, int OUT,
                        const double *x, /* (N, IN) */
                        const double *w, /* (OUT, IN) */
                        const double *b, /* (OUT) or NULL */
                        double *y);      /* (N, OUT) */
/* dx overwritten. */
void ref_linear_backward_data(int N, int IN, int OUT,
                              const double *dy, /* (N, OUT) */
                              const double *w,  /* (OUT, IN) */
                              double *dx);      /* (N, IN) */
/* dw and db overwritten; db NULL: no bias. */
void ref_linear_backward_weights(int N, int IN, int OUT,
                                 const double *x,  /* (N, IN) */
                                 const double *dy, /* (N, OUT) */
                                 double *dw,       /* (OUT, IN) */
                                 double *db);      /* (OUT) or NULL */

/* ---------------------------------------------------------------------------------------- */
/* Dropout (torch.nn.Dropout, training) with a given mask */

/* Dropout with a given keep mask (1 keep, 0 drop): y = x * mask / (1 - p); backward likewise.
 * p = 1 gives all zeros (as PyTorch). */
void ref_dropout_forward(int64_t n, double p,
                         const unsigned char *mask, /* (n) */
                         const double *x,           /* (n) */
                         double *y);                /* (n) */
void ref_dropout_backward(int64_t n, double p,
                          const unsigned char *mask, /* (n) */
                          const double *dy,          /* (n) */
                          double *dx);               /* (n) */

/* ---------------------------------------------------------------------------------------- */
/* Loss: softmax cross-entropy (torch.nn.CrossEntropyLoss, reduction mean) */

/* Softmax cross-entropy with label smoothing (PyTorch CrossEntropyLoss(label_smoothing=s),
 * reduction mean): logits (N, K), labels (N) in [0, K). Target distribution q = (1 - s) onehot + s / K.
 * Returns the mean loss; writes dlogits (N, K) = (softmax - q) / N when dlogits is not NULL.
 * Uses the max-subtraction for stability. */
double ref_softmax_xent(int N, int K,
                        const double *logits, /* (N, K) */
                        const int *labels,    /* (N) */
                        double smoothing,
                        double *dlogits);     /* (N, K) or NULL */
/* Soft targets (rows summing to 1, for mixup/cutmix) instead of labels and smoothing. */
double ref_softmax_xent_soft(int N, int K,
                             const double *logits,  /* (N, K) */
                             const double *targets, /* (N, K) */
                             double *dlogits);      /* (N, K) or NULL */

/* ---------------------------------------------------------------------------------------- */
/* Optimizers (torch.optim.SGD, Adam, AdamW): one step on n parameters, in place */

/* SGD: g' = g + wd * w; if momentum != 0: buf = first ? g' : momentum * buf + (1 - dampening) * g';
 *      g' = nesterov ? g' + momentum * buf : buf;  w -= lr * g'.
 * first: the first step (buf is uninitialized and gets set); buf unused when momentum is 0. */
void ref_sgd_step(int64_t n, double lr, double momentum, double dampening, int nesterov,
                  double weight_decay, int first,
                  double *w,       /* (n) in/out */
                  const double *g, /* (n) */
                  double *buf);    /* (n) in/out momentum buffer */
/* Adam (decoupled = 0): g' = g + wd * w.  AdamW (decoupled = 1): w *= 1 - lr * wd, g' = g.
 *      m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2; mhat = m / (1 - b1^t); vhat = v / (1 - b2^t);
 *      w -= lr * mhat / (sqrt(vhat) + eps).   t is the 1-based step number; m, v start at 0. */
void ref_adam_step(int64_t n, double lr, double beta1, double beta2, double eps,
                   double weight_decay, int decoupled, int64_t t,
                   double *w,       /* (n) in/out */
                   const double *g, /* (n) */
                   double *m,       /* (n) in/out first moment */
                   double *v);      /* (n) in/out second moment */

#endif
