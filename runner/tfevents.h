/*
 * tfevents.h: TensorBoard event files: scalars, images, text and the hparams plugin's
 * session records, as TensorBoard's EventAccumulator and its server read them.
 *
 *     struct tfevents *tb;
 *     if (tfevents_open(dir, NULL, &tb, &d)) return STATUS_RUNTIME; // dir/events.out.tfevents.<time>.<host>
 *     tfevents_scalar(tb, "train/loss", step, loss);
 *     if (tfevents_flush(tb, &d)) ...;  // once an epoch: a running run shows up
 *     if (tfevents_close(tb, &d)) ...;
 *
 * The messages are TensorBoard's own (the .proto files of proto/tensorboard/, compiled by protoc-c at
 * build time: Event, Summary, SessionLog, TensorProto, the hparams plugin's HParamsPluginData),
 * each Event framed as TensorFlow's record format: the length as a little-endian uint64, the
 * masked CRC-32C of those 8 bytes, the serialized Event, the masked CRC-32C of the Event; the
 * mask is ((c >> 15) | (c << 17)) + 0xa282ead8. A file's first event has file_version
 * "brain.Event:2". A file is never overwritten: a name taken gets ".2", ".3", ... appended.
 *
 * Writes after a failed one do nothing; tfevents_flush and tfevents_close report the first
 * failure ("PATH: cannot write: REASON") once. Covered by tests/test_tfevents.c and, through
 * TensorBoard itself, tests/test_tensorboard.sh.
 */
#ifndef RUNNER_TFEVENTS_H
#define RUNNER_TFEVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "diag.h"

struct tfevents;

/* Creates dir (mkdir -p) and dir/events.out.tfevents.<unix time>.<host>[.<suffix>], writing
 * its file_version event. */
MUST_CHECK enum status tfevents_open(const char *dir, const char *suffix, struct tfevents **out,
                                     struct diag *d);
/* The file's path. */
const char *tfevents_path(const struct tfevents *w);

/* A scalar as Summary.Value.simple_value (a float), which EventAccumulator.Scalars reads. */
void tfevents_scalar(struct tfevents *w, const char *tag, int64_t step, double value);
/* An RGB image of width x height from planar bytes (the R, G and B planes), as
 * Summary.Image holding a PNG, which EventAccumulator.Images reads. */
void tfevents_image(struct tfevents *w, const char *tag, int64_t step, const uint8_t *planar,
                    int width, int height);
/* Markdown text for the text plugin: a DT_STRING tensor under plugin "text". */
void tfevents_text(struct tfevents *w, const char *tag, int64_t step, const char *markdown);
/* SessionLog START at step: TensorBoard drops the events of earlier files at steps >= step
 * (a resumed run gives the first step it trains again). */
void tfevents_session_start(struct tfevents *w, int64_t step);

/* The hparams plugin's session records (tags _hparams_/session_start_info and
 * _hparams_/session_end_info) for the session whose scalars are in this file's directory.
 * values[i] are as typed: a finite decimal number becomes a number_value, true/false a
 * bool_value, anything else (nan, 0x10, " 1") a string_value. */
void tfevents_hparams_start(struct tfevents *w, const char *const *names,
                            const char *const *values, size_t n, double start_time);
void tfevents_hparams_end(struct tfevents *w, bool succeeded, double end_time);

/* Flushes the file to the operating system; the first failed write, if any, reported. */
MUST_CHECK enum status tfevents_flush(struct tfevents *w, struct diag *d);
/* Flushes, closes and frees w (NULL: nothing); the first failure reported. */
MUST_CHECK enum status tfevents_close(struct tfevents *w, struct diag *d);

/* CRC-32C (Castagnoli, reflected 0x82f63b78) of n bytes; "123456789" gives 0xe3069283. */
uint32_t tfevents_crc32c(const void *data, size_t n);
/* TensorFlow's masked CRC: ((c >> 15) | (c << 17)) + 0xa282ead8 of the CRC-32C c. */
uint32_t tfevents_masked_crc(const void *data, size_t n);

#endif
