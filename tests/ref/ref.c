/*
 * tests/ref/ref.c: the naive reference kernels ("the oracle") declared in ref.h: plain loops on
 * double arrays, written to be obviously correct rather than fast. No oneDNN, no OpenMP, no
 * allocation, no state. Covered by tests/test_ref.c (every backward against central finite
 * differences of its forward; forwards and optimizer steps against hand-computed values).
 */
#include "ref.h"

#include <math.h>
#include <stddef.h>

/* ---------------------------------------------------------------------------------------- */
/* Window geometry */

int ref_window_out(int in, int k, int stride, int pad, int dil, int ceil_mode)
{
    int span = in + 2 * pad - (dil * (k - 1) + 1);
    if (span < 0) return 0;
    int out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    /* ceil_mode: a last window starting in the right padding is dropped (PyTorch pooling_output_shape). */
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Convolution */

/* Flat offsets into the NCHW activations and the KCRS filter. */
static size_t conv_x_at(const struct ref_conv *c, int n, int ch, int h, int w)
{
    return (((size_t)n * c->C + ch) * c->H + h) * c->W + w;
}

static size_t conv_y_at(const struct ref_conv *c, int n, int k, int p, int q)
{
    return (((size_t)n * c->K + k) * c->P + p) * c->Q + q;
}

static size_t conv_w_at(const struct ref_conv *c, int k, int cg, int r, int s)
{
    return (((size_t)k * (c->C / c->groups) + cg) * c->R + r) * c->S + s;
}

void ref_conv_forward(const struct ref_conv *c, const double *x, const double *w, const double *b,
                      double *y)
{
    int cpg = c->C / c->groups; /* input channels per group */
    int kpg = c->K / c->groups; /* output channels per group */
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++) {
            int g = k / kpg;
            for (int p = 0; p < c->P; p++)
                for (int q = 0; q < c->Q; q++) {
                    double sum = b ? b[k] : 0.0;
                    for (int cg = 0; cg < cpg; cg++)
                        for (int r = 0; r < c->R; r++)
                            for (int s = 0; s < c->S; s++) {
                                int h = p * c->stride_h - c->pad_h + r * c->dil_h;
                                int ww = q * c->stride_w - c->pad_w + s * c->dil_w;
                                if (h < 0 || h >= c->H || ww < 0 || ww >= c->W) continue;
                                sum += x[conv_x_at(c, n, g * cpg + cg, h, ww)] *
                                       w[conv_w_at(c, k, cg, r, s)];
                            }
                    y[conv_y_at(c, n, k, p, q)] = sum;
                }
        }
}

/* The same loops as the forward, scattering dy back through each tap. */
void ref_conv_backward_data(const struct ref_conv *c, const double *dy, const double *w, double *dx)
{
    int cpg = c->C / c->groups;
    int kpg = c->K / c->groups;
    for (size_t i = 0; i < (size_t)c->N * c->C * c->H * c->W; i++) dx[i] = 0.0;
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++) {
            int g = k / kpg;
            for (int p = 0; p < c->P; p++)
                for (int q = 0; q < c->Q; q++) {
                    double d = dy[conv_y_at(c, n, k, p, q)];
                    for (int cg = 0; cg < cpg; cg++)
                        for (int r = 0; r < c->R; r++)
                            for (int s = 0; s < c->S; s++) {
                                int h = p * c->stride_h - c->pad_h + r * c->dil_h;
                                int ww = q * c->stride_w - c->pad_w + s * c->dil_w;
                                if (h < 0 || h >= c->H || ww < 0 || ww >= c->W) continue;
                                dx[conv_x_at(c, n, g * cpg + cg, h, ww)] +=
                                    d * w[conv_w_at(c, k, cg, r, s)];
                            }
                }
        }
}

void ref_conv_backward_weights(const struct ref_conv *c, const double *x, const double *dy,
                               double *dw, double *db)
{
    int cpg = c->C / c->groups;
    int kpg = c->K / c->groups;
    for (size_t i = 0; i < (size_t)c->K * cpg * c->R * c->S; i++) dw[i] = 0.0;
    if (db)
        for (int k = 0; k < c->K; k++) db[k] = 0.0;
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++) {
            int g = k / kpg;
            for (int p = 0; p < c->P; p++)
                for (int q = 0; q < c->Q; q++) {
                    double d = dy[conv_y_at(c, n, k, p, q)];
                    if (db) db[k] += d;
                    for (int cg = 0; cg < cpg; cg++)
                        for (int r = 0; r < c->R; r++)
                            for (int s = 0; s < c->S; s++) {
                                int h = p * c->stride_h - c->pad_h + r * c->dil_h;
                                int ww = q * c->stride_w - c->pad_w + s * c->dil_w;
                                if (h < 0 || h >= c->H || ww < 0 || ww >= c->W) continue;
                                dw[conv_w_at(c, k, cg, r, s)] +=
                                    d * x[conv_x_at(c, n, g * cpg + cg, h, ww)];
                            }
                }
        }
}

/* ---------------------------------------------------------------------------------------- */
/* Batch normalization */

static size_t bn_at(int C, int HW, int n, int ch, int i)
{
    return ((size_t)n * C + ch) * HW + i;
}

void ref_batchnorm_forward_train(int N, int C, int HW, double eps, double momentum,
                                 const double *x, const double *gamma, const double *beta,
                                 double *y, double *mean, double *var, double *running_mean,
                                 double *running_var)
{
    double count = (double)N * HW;
    for (int ch = 0; ch < C; ch++) {
        double sum = 0.0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) sum += x[bn_at(C, HW, n, ch, i)];
        double mu = sum / count;
        double sq = 0.0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                double d = x[bn_at(C, HW, n, ch, i)] - mu;
                sq += d * d;
            }
        double sigma2 = sq / count; /* biased: what the normalization uses */
        double invstd = 1.0 / sqrt(sigma2 + eps);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t at = bn_at(C, HW, n, ch, i);
                y[at] = gamma[ch] * (x[at] - mu) * invstd + beta[ch];
            }
        mean[ch] = mu;
        var[ch] = sigma2;
        double unbiased = count > 1.0 ? sigma2 * count / (count - 1.0) : sigma2;
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mu;
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * unbiased;
    }
}

void ref_batchnorm_forward_infer(int N, int C, int HW, double eps, const double *x,
                                 const double *gamma, const double *beta,
                                 const double *running_mean, const double *running_var, double *y)
{
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++) {
            double invstd = 1.0 / sqrt(running_var[ch] + eps);
            for (int i = 0; i < HW; i++) {
                size_t at = bn_at(C, HW, n, ch, i);
                y[at] = gamma[ch] * (x[at] - running_mean[ch]) * invstd + beta[ch];
            }
        }
}

/* With xhat = (x - mean) invstd and m = N HW:
 *     dbeta = sum dy,  dgamma = sum dy xhat,
 *     dx = gamma invstd / m (m dy - dbeta - xhat dgamma)
 * (the mean and variance depend on x too, hence the two subtracted terms). */
void ref_batchnorm_backward(int N, int C, int HW, double eps, const double *x, const double *dy,
                            const double *gamma, const double *mean, const double *var,
                            double *dx, double *dgamma, double *dbeta)
{
    double count = (double)N * HW;
    for (int ch = 0; ch < C; ch++) {
        double invstd = 1.0 / sqrt(var[ch] + eps);
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t at = bn_at(C, HW, n, ch, i);
                double xhat = (x[at] - mean[ch]) * invstd;
                sum_dy += dy[at];
                sum_dy_xhat += dy[at] * xhat;
            }
        dbeta[ch] = sum_dy;
        dgamma[ch] = sum_dy_xhat;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t at = bn_at(C, HW, n, ch, i);
                double xhat = (x[at] - mean[ch]) * invstd;
                dx[at] = gamma[ch] * invstd / count * (count * dy[at] - sum_dy - xhat * sum_dy_xhat);
            }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Element-wise */

void ref_relu_forward(int64_t n, const double *x, double *y)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0 ? x[i] : 0.0;
}

void ref_relu_backward(int64_t n, const double *x, const double *dy, double *dx)
{
    for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0 ? dy[i] : 0.0;
}

void ref_add_forward(int64_t n, const double *a, const double *b, double *y)
{
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* ---------------------------------------------------------------------------------------- */
/* Pooling */

static size_t pool_x_at(const struct ref_pool *p, int n, int ch, int h, int w)
{
    return (((size_t)n * p->C + ch) * p->H + h) * p->W + w;
}

static size_t pool_y_at(const struct ref_pool *p, int n, int ch, int oh, int ow)
{
    return (((size_t)n * p->C + ch) * p->P + oh) * p->Q + ow;
}

/* The flat index into x of the first maximum of window (n, ch, oh, ow), rows then columns, or
 * -1 when the window holds no input element. */
static ptrdiff_t maxpool_argmax(const struct ref_pool *p, const double *x, int n, int ch, int oh,
                                int ow)
{
    ptrdiff_t best = -1;
    for (int i = 0; i < p->kh; i++)
        for (int j = 0; j < p->kw; j++) {
            int h = oh * p->stride_h - p->pad_h + i;
            int w = ow * p->stride_w - p->pad_w + j;
            if (h < 0 || h >= p->H || w < 0 || w >= p->W) continue; /* padding: -inf, never wins */
            size_t at = pool_x_at(p, n, ch, h, w);
            if (best < 0 || x[at] > x[best]) best = (ptrdiff_t)at; /* strict: ties keep the first */
        }
    return best;
}

void ref_maxpool_forward(const struct ref_pool *p, const double *x, double *y)
{
    for (int n = 0; n < p->N; n++)
        for (int ch = 0; ch < p->C; ch++)
            for (int oh = 0; oh < p->P; oh++)
                for (int ow = 0; ow < p->Q; ow++) {
                    ptrdiff_t best = maxpool_argmax(p, x, n, ch, oh, ow);
                    y[pool_y_at(p, n, ch, oh, ow)] = best < 0 ? -INFINITY : x[best];
                }
}

void ref_maxpool_backward(const struct ref_pool *p, const double *x, const double *dy, double *dx)
{
    for (size_t i = 0; i < (size_t)p->N * p->C * p->H * p->W; i++) dx[i] = 0.0;
    for (int n = 0; n < p->N; n++)
        for (int ch = 0; ch < p->C; ch++)
            for (int oh = 0; oh < p->P; oh++)
                for (int ow = 0; ow < p->Q; ow++) {
                    ptrdiff_t best = maxpool_argmax(p, x, n, ch, oh, ow);
                    if (best >= 0) dx[best] += dy[pool_y_at(p, n, ch, oh, ow)];
                }
}

/* The divisor of window (oh, ow), as PyTorch's avg_pool2d: with count_include_pad, the window
 * clipped to the padded input; without, the window clipped to the input itself. */
static int avgpool_divisor(const struct ref_pool *p, int oh, int ow)
{
    int h0 = oh * p->stride_h - p->pad_h, w0 = ow * p->stride_w - p->pad_w;
    int h1 = h0 + p->kh, w1 = w0 + p->kw; /* exclusive ends */
    if (p->count_include_pad) {
        if (h1 > p->H + p->pad_h) h1 = p->H + p->pad_h;
        if (w1 > p->W + p->pad_w) w1 = p->W + p->pad_w;
        return (h1 - h0) * (w1 - w0);
    }
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    if (h1 > p->H) h1 = p->H;
    if (w1 > p->W) w1 = p->W;
    return h1 > h0 && w1 > w0 ? (h1 - h0) * (w1 - w0) : 0;
}

void ref_avgpool_forward(const struct ref_pool *p, const double *x, double *y)
{
    for (int n = 0; n < p->N; n++)
        for (int ch = 0; ch < p->C; ch++)
            for (int oh = 0; oh < p->P; oh++)
                for (int ow = 0; ow < p->Q; ow++) {
                    int divisor = avgpool_divisor(p, oh, ow);
                    double sum = 0.0;
                    for (int i = 0; i < p->kh; i++)
                        for (int j = 0; j < p->kw; j++) {
                            int h = oh * p->stride_h - p->pad_h + i;
                            int w = ow * p->stride_w - p->pad_w + j;
                            if (h < 0 || h >= p->H || w < 0 || w >= p->W) continue;
                            sum += x[pool_x_at(p, n, ch, h, w)];
                        }
                    y[pool_y_at(p, n, ch, oh, ow)] = divisor > 0 ? sum / divisor : 0.0;
                }
}

void ref_avgpool_backward(const struct ref_pool *p, const double *dy, double *dx)
{
    for (size_t i = 0; i < (size_t)p->N * p->C * p->H * p->W; i++) dx[i] = 0.0;
    for (int n = 0; n < p->N; n++)
        for (int ch = 0; ch < p->C; ch++)
            for (int oh = 0; oh < p->P; oh++)
                for (int ow = 0; ow < p->Q; ow++) {
                    int divisor = avgpool_divisor(p, oh, ow);
                    if (divisor == 0) continue;
                    double d = dy[pool_y_at(p, n, ch, oh, ow)] / divisor;
                    for (int i = 0; i < p->kh; i++)
                        for (int j = 0; j < p->kw; j++) {
                            int h = oh * p->stride_h - p->pad_h + i;
                            int w = ow * p->stride_w - p->pad_w + j;
                            if (h < 0 || h >= p->H || w < 0 || w >= p->W) continue;
                            dx[pool_x_at(p, n, ch, h, w)] += d;
                        }
                }
}

void ref_global_avg_pool_forward(int N, int C, int HW, const double *x, double *y)
{
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++) {
            double sum = 0.0;
            for (int i = 0; i < HW; i++) sum += x[((size_t)n * C + ch) * HW + i];
            y[(size_t)n * C + ch] = sum / HW;
        }
}

void ref_global_avg_pool_backward(int N, int C, int HW, const double *dy, double *dx)
{
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < HW; i++)
                dx[((size_t)n * C + ch) * HW + i] = dy[(size_t)n * C + ch] / HW;
}

/* ---------------------------------------------------------------------------------------- */
/* Linear */

void ref_linear_forward(int N, int IN, int OUT, const double *x, const double *w, const double *b,
                        double *y)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double sum = b ? b[o] : 0.0;
            for (int i = 0; i < IN; i++) sum += x[(size_t)n * IN + i] * w[(size_t)o * IN + i];
            y[(size_t)n * OUT + o] = sum;
        }
}

void ref_linear_backward_data(int N, int IN, int OUT, const double *dy, const double *w, double *dx)
{
    for (int n = 0; n < N; n++)
        for (int i = 0; i < IN; i++) {
            double sum = 0.0;
            for (int o = 0; o < OUT; o++) sum += dy[(size_t)n * OUT + o] * w[(size_t)o * IN + i];
            dx[(size_t)n * IN + i] = sum;
        }
}

void ref_linear_backward_weights(int N, int IN, int OUT, const double *x, const double *dy,
                                 double *dw, double *db)
{
    for (int o = 0; o < OUT; o++) {
        for (int i = 0; i < IN; i++) {
            double sum = 0.0;
            for (int n = 0; n < N; n++) sum += dy[(size_t)n * OUT + o] * x[(size_t)n * IN + i];
            dw[(size_t)o * IN + i] = sum;
        }
        if (db) {
            double sum = 0.0;
            for (int n = 0; n < N; n++) sum += dy[(size_t)n * OUT + o];
            db[o] = sum;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Dropout */

void ref_dropout_forward(int64_t n, double p, const unsigned char *mask, const double *x, double *y)
{
    double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
    for (int64_t i = 0; i < n; i++) y[i] = mask[i] ? x[i] * scale : 0.0;
}

void ref_dropout_backward(int64_t n, double p, const unsigned char *mask, const double *dy,
                          double *dx)
{
    double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
    for (int64_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0;
}

/* ---------------------------------------------------------------------------------------- */
/* Softmax cross-entropy */

/* The target probability of class k for row n: the soft target, or the smoothed one-hot. */
static double xent_target(int K, const int *labels, double smoothing, const double *targets, int n,
                          int k)
{
    if (targets) return targets[(size_t)n * K + k];
    return (1.0 - smoothing) * (k == labels[n] ? 1.0 : 0.0) + smoothing / K;
}

/* Both losses: row loss = -sum_k q_k log softmax(z)_k, with
 * log softmax(z)_k = z_k - max - log sum_j exp(z_j - max). */
static double xent(int N, int K, const double *logits, const int *labels, double smoothing,
                   const double *targets, double *dlogits)
{
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const double *z = logits + (size_t)n * K;
        double zmax = z[0];
        for (int k = 1; k < K; k++)
            if (z[k] > zmax) zmax = z[k];
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp(z[k] - zmax);
        double logsum = log(sum);
        for (int k = 0; k < K; k++) {
            double logp = z[k] - zmax - logsum;
            double q = xent_target(K, labels, smoothing, targets, n, k);
            total -= q * logp;
            if (dlogits) dlogits[(size_t)n * K + k] = (exp(logp) - q) / N;
        }
    }
    return total / N;
}

double ref_softmax_xent(int N, int K, const double *logits, const int *labels, double smoothing,
                        double *dlogits)
{
    return xent(N, K, logits, labels, smoothing, NULL, dlogits);
}

double ref_softmax_xent_soft(int N, int K, const double *logits, const double *targets,
                             double *dlogits)
{
    return xent(N, K, logits, NULL, 0.0, targets, dlogits);
}

/* ---------------------------------------------------------------------------------------- */
/* Optimizers */

void ref_sgd_step(int64_t n, double lr, double momentum, double dampening, int nesterov,
                  double weight_decay, int first, double *w, const double *g, double *buf)
{
    for (int64_t i = 0; i < n; i++) {
        double d = g[i] + weight_decay * w[i];
        if (momentum != 0.0) {
            buf[i] = first ? d : momentum * buf[i] + (1.0 - dampening) * d;
            d = nesterov ? d + momentum * buf[i] : buf[i];
        }
        w[i] -= lr * d;
    }
}

void ref_adam_step(int64_t n, double lr, double beta1, double beta2, double eps,
                   double weight_decay, int decoupled, int64_t t, double *w, const double *g,
                   double *m, double *v)
{
    double correction1 = 1.0 - pow(beta1, (double)t);
    double correction2 = 1.0 - pow(beta2, (double)t);
    for (int64_t i = 0; i < n; i++) {
        double d = g[i];
        if (decoupled)
            w[i] *= 1.0 - lr * weight_decay;
        else
            d += weight_decay * w[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * d;
        v[i] = beta2 * v[i] + (1.0 - beta2) * d * d;
        double mhat = m[i] / correction1;
        double vhat = v[i] / correction2;
        w[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
}
