/*
 * safetensors.h: reading and writing .safetensors files (huggingface/safetensors), the format
 * of pretrained weights and of checkpoints.
 *
 *     struct st_file *f;
 *     if (st_open("r50.safetensors", &d, &f)) return STATUS_CONFIG;
 *     int64_t shape[4] = {64, 3, 7, 7};                          // (K, C, R, S)
 *     enum status st = st_read_f32(f, "conv1.weight", 4, shape, conv1_w, &d);
 *     st_close(f);
 *
 *     struct st_writer *w = st_writer_new();
 *     st_add_metadata(w, "format", "pt");
 *     st_add_f32(w, "conv1.weight", ST_BF16, 4, shape, conv1_w);  // stored as bf16
 *     st_add_i64(w, "bn1.num_batches_tracked", 0, NULL, &steps);
 *     enum status st = st_write(w, "out.safetensors", &d);       // data read here
 *     st_writer_free(w);
 *
 * The layout: 8 bytes, a little-endian u64 N; N bytes of JSON mapping each tensor's name to
 * {"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__" object of
 * strings, padded with trailing spaces; then the data section, little-endian, offsets relative
 * to its start. The header JSON is read by a strict parser: objects, arrays, strings and
 * integers only; no duplicate keys; nothing but whitespace after the top-level object; no keys
 * in a tensor's entry but those three.
 *
 * st_open reads the whole file and checks everything before it returns: the header length,
 * the JSON (errors give the byte offset in the header), dtypes (F32, F16, BF16, I64; others
 * are named and refused), shapes (at most ST_MAX_RANK dimensions, none negative),
 * data_offsets (begin <= end, inside the data section, end - begin = numel * dtype size), and
 * that the tensors cover the data section exactly, without overlaps or gaps. Each problem is
 * an error that names the file and, where there is one, the tensor; the status is
 * STATUS_CONFIG for a bad file and STATUS_RUNTIME for out of memory. Covered by
 * tests/test_safetensors.c.
 */
#ifndef RUNNER_SAFETENSORS_H
#define RUNNER_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "diag.h"

#define ST_MAX_RANK 8
#define ST_MAX_HEADER ((uint64_t)100000000) /* the reference implementation's limit */

enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_I64, ST_DTYPE_COUNT };

const char *st_dtype_name(enum st_dtype t); /* "F32", "F16", "BF16", "I64" */
/* A shape as "[2048, 3, 3]" into buf (size bytes); returns buf. */
const char *st_shape_text(int rank, const int64_t *shape, char *buf, size_t size);
size_t st_dtype_size(enum st_dtype t);      /* bytes per element */

struct st_tensor {
    const char *name;
    enum st_dtype dtype;
    int rank;                     /* 0 for a scalar */
    int64_t shape[ST_MAX_RANK];   /* shape[0 .. rank) */
    int64_t numel;                /* product of the shape; 1 for a scalar, 0 with a zero dim */
    size_t begin, end;            /* byte range [begin, end) in the data section */
};

/* ---------------------------------------------------------------------------------------- */
/* Reading */

struct st_file;

/* Reads and checks path. On success *out owns everything (free it with st_close); on failure
 * *out is NULL. */
MUST_CHECK enum status st_open(const char *path, struct diag *d, struct st_file **out);
/* The same for bytes already in memory; name is used in messages. The bytes are not copied:
 * keep them alive and unchanged until st_close. */
MUST_CHECK enum status st_open_memory(const char *name, const void *bytes, size_t size,
                                      struct diag *d, struct st_file **out);
void st_close(struct st_file *f); /* NULL is fine */

size_t st_count(const struct st_file *f);
/* The i-th tensor in header order; NULL when i >= st_count(f). */
const struct st_tensor *st_tensor_at(const struct st_file *f, size_t i);
/* The tensor called name, or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
/* Renames the i-th tensor (header order) to name (copied), for files whose names differ from
 * the network's (pretrained.c); st_find finds it by its new name only. False, nothing changed,
 * when i >= st_count(f) or another tensor is called name already. */
bool st_rename(struct st_file *f, size_t i, const char *name);
/* The metadata value for key, or NULL when absent. */
const char *st_metadata(const struct st_file *f, const char *key);
/* The first byte of t's data: little-endian and not necessarily aligned (the data section
 * starts wherever the header ends), so read it with memcpy, not through a cast pointer. */
const void *st_data(const struct st_file *f, const struct st_tensor *t);

/* Copies tensor name into dst, converted to f32 from F32, F16 or BF16, after checking that it
 * exists and that its shape is (rank, shape). An error names the file, the tensor, and the
 * expected and found shape or dtype; dst is untouched then. */
MUST_CHECK enum status st_read_f32(const struct st_file *f, const char *name, int rank,
                                   const int64_t *shape, float *dst, struct diag *d);
/* The same for an I64 tensor. */
MUST_CHECK enum status st_read_i64(const struct st_file *f, const char *name, int rank,
                                   const int64_t *shape, int64_t *dst, struct diag *d);

/* ---------------------------------------------------------------------------------------- */
/* Writing */

struct st_writer;

/* Never NULL (aborts when out of memory, like the arena). */
struct st_writer *st_writer_new(void);
void st_writer_free(struct st_writer *w); /* NULL is fine */

/* Adds a tensor of (rank, shape) elements stored as `as` (ST_F32, ST_F16 or ST_BF16; f16 and
 * bf16 round to nearest even). Names, keys and values are copied; data is not: it is read by
 * st_write and must stay alive until then. data may be NULL when the tensor is empty. A bad
 * argument (rank outside 0..ST_MAX_RANK, a negative dimension, a dtype that is not a float,
 * a duplicate or reserved name) is reported by st_write. */
void st_add_f32(struct st_writer *w, const char *name, enum st_dtype as, int rank,
                const int64_t *shape, const float *data);
void st_add_i64(struct st_writer *w, const char *name, int rank, const int64_t *shape,
                const int64_t *data);
void st_add_metadata(struct st_writer *w, const char *key, const char *value);

/* Writes the file: tensors in the order added, "__metadata__" first (when there is any) with
 * its keys in the order added, the header padded with spaces so the data section starts at a
 * multiple of 8 bytes. The same tensors and metadata give the same bytes. The file is written
 * to PATH.tmp, synced, and renamed over path, so path holds either its old contents or the
 * complete new file. STATUS_CONFIG for a bad argument, STATUS_RUNTIME for an I/O error. */
MUST_CHECK enum status st_write(struct st_writer *w, const char *path, struct diag *d);

/* ---------------------------------------------------------------------------------------- */
/* Conversions (round to nearest even; NaN stays NaN, infinities and signed zeros are kept) */

float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);

#endif
