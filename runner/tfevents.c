/*
 * tfevents.c: TensorBoard event files through protobuf-c (the .proto files of proto/tensorboard/); see
 * tfevents.h.
 */
#include "tfevents.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run_files.h"

#include "tensorboard/event.pb-c.h"
#include "tensorboard/plugins/hparams/plugin_data.pb-c.h"
#include "tensorboard/summary.pb-c.h"

struct tfevents {
    FILE *f;
    char path[4400];
    int err; /* errno of the first failed write; 0 */
    bool reported;
};

/* ---------------------------------------------------------------------------------------- */
/* CRC-32C and the record format */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t tfevents_crc32c(const void *data, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    const uint8_t *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

uint32_t tfevents_masked_crc(const void *data, size_t n)
{
    uint32_t c = tfevents_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* One Event, serialized and framed. */
static void write_event(struct tfevents *w, Tensorboard__Event *ev)
{
    if (!w || w->err) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ev->wall_time = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    size_t n = tensorboard__event__get_packed_size(ev);
    uint8_t *buf = malloc(n + 16);
    if (!buf) abort();
    put_le(buf, n, 8);
    put_le(buf + 8, tfevents_masked_crc(buf, 8), 4);
    tensorboard__event__pack(ev, buf + 12);
    put_le(buf + 12 + n, tfevents_masked_crc(buf + 12, n), 4);
    if (fwrite(buf, 1, n + 16, w->f) != n + 16) w->err = errno ? errno : EIO;
    free(buf);
}

/* An Event holding a Summary of one value. */
static void write_value(struct tfevents *w, int64_t step, Tensorboard__Summary__Value *v)
{
    Tensorboard__Summary sum = TENSORBOARD__SUMMARY__INIT;
    sum.n_value = 1;
    sum.value = &v;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.step = step;
    ev.what_case = TENSORBOARD__EVENT__WHAT_SUMMARY;
    ev.summary = &sum;
    write_event(w, &ev);
}

/* ---------------------------------------------------------------------------------------- */
/* Opening and closing */

enum status tfevents_open(const char *dir, const char *suffix, struct tfevents **out,
                          struct diag *d)
{
    *out = NULL;
    if (run_files_mkdirs(dir, d)) return STATUS_RUNTIME;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) || !host[0]) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    struct tfevents *w = calloc(1, sizeof *w);
    if (!w) abort();
    long long now = (long long)time(NULL);
    int fd = -1;
    for (int k = 1; fd < 0 && k < 100; k++) {
        char more[16] = "";
        if (k > 1) snprintf(more, sizeof more, ".%d", k);
        if (snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s%s%s%s", dir, now,
                     host, suffix ? "." : "", suffix ? suffix : "", more) >= (int)sizeof w->path) {
            diag_error(d, (struct mark){0}, "%s: path too long", dir);
            free(w);
            return STATUS_RUNTIME;
        }
        fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        diag_error(d, (struct mark){0}, "%s: cannot create: %s", w->path, strerror(errno));
        if (fd >= 0) close(fd);
        free(w);
        return STATUS_RUNTIME;
    }
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.what_case = TENSORBOARD__EVENT__WHAT_FILE_VERSION;
    ev.file_version = "brain.Event:2";
    write_event(w, &ev);
    *out = w;
    return tfevents_flush(w, d);
}

const char *tfevents_path(const struct tfevents *w)
{
    return w->path;
}

enum status tfevents_flush(struct tfevents *w, struct diag *d)
{
    if (!w) return STATUS_OK;
    if (!w->err && fflush(w->f)) w->err = errno ? errno : EIO;
    if (!w->err) return STATUS_OK;
    if (!w->reported)
        diag_error(d, (struct mark){0}, "%s: cannot write: %s", w->path, strerror(w->err));
    w->reported = true;
    return STATUS_RUNTIME;
}

enum status tfevents_close(struct tfevents *w, struct diag *d)
{
    if (!w) return STATUS_OK;
    enum status st = tfevents_flush(w, d);
    if (fclose(w->f) && !st) {
        diag_error(d, (struct mark){0}, "%s: cannot write: %s", w->path, strerror(errno));
        st = STATUS_RUNTIME;
    }
    free(w);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Summaries */

void tfevents_scalar(struct tfevents *w, const char *tag, int64_t step, double value)
{
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    v.simple_value = (float)value;
    write_value(w, step, &v);
}

void tfevents_image(struct tfevents *w, const char *tag, int64_t step, const uint8_t *planar,
                    int width, int height)
{
    if (!w || w->err) return;
    char *png = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&png, &len);
    if (!f) abort();
    bool ok = run_files_png_stream(f, planar, width, height, NULL, NULL, 0);
    if (fclose(f)) ok = false;
    if (!ok) {
        w->err = ENOMEM;
        free(png);
        return;
    }
    Tensorboard__Summary__Image im = TENSORBOARD__SUMMARY__IMAGE__INIT;
    im.width = width;
    im.height = height;
    im.colorspace = 3;
    im.encoded_image_string = (ProtobufCBinaryData){len, (uint8_t *)png};
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_IMAGE;
    v.image = &im;
    write_value(w, step, &v);
    free(png);
}

/* A value of plugin `plugin` with its content and a tensor. */
static void write_plugin(struct tfevents *w, const char *tag, int64_t step, const char *plugin,
                         ProtobufCBinaryData content, Tensorboard__TensorProto *t)
{
    Tensorboard__SummaryMetadata__PluginData pd = TENSORBOARD__SUMMARY_METADATA__PLUGIN_DATA__INIT;
    pd.plugin_name = (char *)plugin;
    pd.content = content;
    Tensorboard__SummaryMetadata md = TENSORBOARD__SUMMARY_METADATA__INIT;
    md.plugin_data = &pd;
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.metadata = &md;
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_TENSOR;
    v.tensor = t;
    write_value(w, step, &v);
}

void tfevents_text(struct tfevents *w, const char *tag, int64_t step, const char *markdown)
{
    Tensorboard__TensorShapeProto shape = TENSORBOARD__TENSOR_SHAPE_PROTO__INIT;
    Tensorboard__TensorProto t = TENSORBOARD__TENSOR_PROTO__INIT;
    t.dtype = TENSORBOARD__DATA_TYPE__DT_STRING;
    t.tensor_shape = &shape; /* a scalar: no dimensions */
    ProtobufCBinaryData text = {strlen(markdown), (uint8_t *)markdown};
    t.n_string_val = 1;
    t.string_val = &text;
    write_plugin(w, tag, step, "text", (ProtobufCBinaryData){0, NULL}, &t);
}

void tfevents_session_start(struct tfevents *w, int64_t step)
{
    Tensorboard__SessionLog log = TENSORBOARD__SESSION_LOG__INIT;
    log.status = TENSORBOARD__SESSION_LOG__SESSION_STATUS__START;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.step = step;
    ev.what_case = TENSORBOARD__EVENT__WHAT_SESSION_LOG;
    ev.session_log = &log;
    write_event(w, &ev);
}

/* An hparams record: HParamsPluginData serialized into the plugin content, with the empty
 * float tensor (shape [0]) TensorBoard's own writer puts beside it. */
static void write_hparams(struct tfevents *w, const char *tag, Tensorboard__Hparams__HParamsPluginData *pd)
{
    size_t n = tensorboard__hparams__hparams_plugin_data__get_packed_size(pd);
    uint8_t *buf = malloc(n + 1);
    if (!buf) abort();
    tensorboard__hparams__hparams_plugin_data__pack(pd, buf);
    Tensorboard__TensorShapeProto__Dim dim = TENSORBOARD__TENSOR_SHAPE_PROTO__DIM__INIT, *dims = &dim;
    Tensorboard__TensorShapeProto shape = TENSORBOARD__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 1;
    shape.dim = &dims;
    Tensorboard__TensorProto t = TENSORBOARD__TENSOR_PROTO__INIT;
    t.dtype = TENSORBOARD__DATA_TYPE__DT_FLOAT;
    t.tensor_shape = &shape;
    write_plugin(w, tag, 0, "hparams", (ProtobufCBinaryData){n, buf}, &t);
    free(buf);
}

/* A value as typed: a finite decimal number (digits, a sign, a point, an exponent: what
 * strtod reads of the whole text), true/false, else text. */
static void typed_value(Google__Protobuf__Value *v, const char *text)
{
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    bool decimal = *text && strspn(text, "0123456789+-.eE") == strlen(text);
    if (decimal && !*end && !errno && isfinite(x)) {
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v->number_value = x;
    } else if (!strcmp(text, "true") || !strcmp(text, "false")) {
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v->bool_value = text[0] == 't';
    } else {
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v->string_value = (char *)text;
    }
}

void tfevents_hparams_start(struct tfevents *w, const char *const *names,
                            const char *const *values, size_t n, double start_time)
{
    Tensorboard__Hparams__SessionStartInfo__HparamsEntry *e = calloc(n + 1, sizeof *e);
    Tensorboard__Hparams__SessionStartInfo__HparamsEntry **ep = calloc(n + 1, sizeof *ep);
    Google__Protobuf__Value *v = calloc(n + 1, sizeof *v);
    if (!e || !ep || !v) abort();
    for (size_t i = 0; i < n; i++) {
        tensorboard__hparams__session_start_info__hparams_entry__init(&e[i]);
        google__protobuf__value__init(&v[i]);
        typed_value(&v[i], values[i]);
        e[i].key = (char *)names[i];
        e[i].value = &v[i];
        ep[i] = &e[i];
    }
    Tensorboard__Hparams__SessionStartInfo info = TENSORBOARD__HPARAMS__SESSION_START_INFO__INIT;
    info.n_hparams = n;
    info.hparams = ep;
    info.start_time_secs = start_time;
    Tensorboard__Hparams__HParamsPluginData pd = TENSORBOARD__HPARAMS__HPARAMS_PLUGIN_DATA__INIT;
    pd.data_case = TENSORBOARD__HPARAMS__HPARAMS_PLUGIN_DATA__DATA_SESSION_START_INFO;
    pd.session_start_info = &info;
    write_hparams(w, "_hparams_/session_start_info", &pd);
    free(e);
    free(ep);
    free(v);
}

void tfevents_hparams_end(struct tfevents *w, bool succeeded, double end_time)
{
    Tensorboard__Hparams__SessionEndInfo info = TENSORBOARD__HPARAMS__SESSION_END_INFO__INIT;
    info.status = succeeded ? TENSORBOARD__HPARAMS__STATUS__STATUS_SUCCESS
                            : TENSORBOARD__HPARAMS__STATUS__STATUS_FAILURE;
    info.end_time_secs = end_time;
    Tensorboard__Hparams__HParamsPluginData pd = TENSORBOARD__HPARAMS__HPARAMS_PLUGIN_DATA__INIT;
    pd.data_case = TENSORBOARD__HPARAMS__HPARAMS_PLUGIN_DATA__DATA_SESSION_END_INFO;
    pd.session_end_info = &info;
    write_hparams(w, "_hparams_/session_end_info", &pd);
}
