/*
 * test_tfevents.c: TensorBoard event files (runner/tfevents.c) read back record by record:
 * CRC-32C against its published check values, the record framing and both masked CRCs of
 * every record, each Event decoded with the generated protobuf-c code (the file version
 * first, scalars, a PNG image decoded to the pixels written, text, SessionLog START, the
 * hparams plugin's session records and their typed values, nan and hex as text), a second
 * file whose name is taken getting .2 and not overwriting the first, and the confusion-matrix and sample-grid images.
 * TensorBoard itself reads what the runner writes in tests/test_tensorboard.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "image.h"
#include "paths.h"
#include "run_files.h"
#include "tfevents.h"

#include "tensorboard/event.pb-c.h"
#include "tensorboard/plugins/hparams/plugin_data.pb-c.h"

static char tmp[256];

static void make_tmp(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/test_tfevents.XXXXXX");
    assert_non_null(mkdtemp(tmp));
}

static void remove_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* The events of a file, checked record by record. */
static Tensorboard__Event **read_events(const char *path, size_t *count)
{
    uint8_t *data;
    size_t size;
    char why[256];
    assert_true(image_read_file(path, &data, &size, why, sizeof why));
    Tensorboard__Event **ev = calloc(1000, sizeof *ev);
    size_t n = 0, at = 0;
    while (at < size) {
        assert_true(size - at >= 12);
        uint64_t len = get_le(data + at, 8);
        assert_int_equal(get_le(data + at + 8, 4), tfevents_masked_crc(data + at, 8));
        assert_true(size - at - 12 >= len + 4);
        assert_int_equal(get_le(data + at + 12 + len, 4), tfevents_masked_crc(data + at + 12, len));
        ev[n] = tensorboard__event__unpack(NULL, len, data + at + 12);
        assert_non_null(ev[n]);
        n++;
        at += 12 + len + 4;
    }
    free(data);
    *count = n;
    return ev;
}

static void free_events(Tensorboard__Event **ev, size_t n)
{
    for (size_t i = 0; i < n; i++) tensorboard__event__free_unpacked(ev[i], NULL);
    free(ev);
}

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(tfevents_crc32c("123456789", 9), 0xe3069283u);
    uint8_t zeros[32] = {0}, ones[32], up[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) up[i] = (uint8_t)i;
    /* RFC 3720, B.4 */
    assert_int_equal(tfevents_crc32c(zeros, 32), 0x8a9136aau);
    assert_int_equal(tfevents_crc32c(ones, 32), 0x62a8ab43u);
    assert_int_equal(tfevents_crc32c(up, 32), 0x46dd794eu);
    assert_int_equal(tfevents_crc32c("", 0), 0);
    uint32_t c = 0xe3069283u;
    assert_int_equal(tfevents_masked_crc("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

static void test_events(void **state)
{
    (void)state;
    make_tmp();
    char dir[300];
    snprintf(dir, sizeof dir, "%s/a/tensorboard", tmp);
    struct diag d = {.out = stderr};
    struct tfevents *w;
    assert_int_equal(tfevents_open(dir, NULL, &w, &d), STATUS_OK);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *path = tfevents_path(w);
    assert_non_null(strstr(path, "/a/tensorboard/events.out.tfevents."));
    assert_non_null(strstr(path, host));
    char first[4400];
    snprintf(first, sizeof first, "%s", path);

    tfevents_session_start(w, 40);
    tfevents_scalar(w, "train/loss", 41, 2.25);
    tfevents_scalar(w, "val/acc", 42, 0.1);
    uint8_t px[3 * 6 * 4];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 7);
    tfevents_image(w, "test/image", 43, px, 6, 4);
    tfevents_text(w, "config", 44, "    name: x\n");
    const char *names[] = {"lr", "augment", "nesterov", "a", "b"},
               *values[] = {"3e-4", "flip", "true", "nan", "0x10"};
    tfevents_hparams_start(w, names, values, 5, 1000.5);
    tfevents_hparams_end(w, true, 2000.25);
    assert_int_equal(tfevents_close(w, &d), STATUS_OK);

    size_t n;
    Tensorboard__Event **ev = read_events(first, &n);
    assert_int_equal(n, 8);
    assert_int_equal(ev[0]->what_case, TENSORBOARD__EVENT__WHAT_FILE_VERSION);
    assert_string_equal(ev[0]->file_version, "brain.Event:2");
    assert_true(ev[0]->wall_time > 1.7e9);
    assert_int_equal(ev[1]->what_case, TENSORBOARD__EVENT__WHAT_SESSION_LOG);
    assert_int_equal(ev[1]->session_log->status, TENSORBOARD__SESSION_LOG__SESSION_STATUS__START);
    assert_int_equal(ev[1]->step, 40);
    for (size_t i = 2; i < n; i++) {
        assert_int_equal(ev[i]->what_case, TENSORBOARD__EVENT__WHAT_SUMMARY);
        assert_int_equal(ev[i]->summary->n_value, 1);
    }
    Tensorboard__Summary__Value *v = ev[2]->summary->value[0];
    assert_int_equal(ev[2]->step, 41);
    assert_string_equal(v->tag, "train/loss");
    assert_int_equal(v->value_case, TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE);
    assert_true(v->simple_value == 2.25f);
    v = ev[3]->summary->value[0];
    assert_true(v->simple_value == 0.1f);

    /* The image: a PNG of the pixels written. */
    v = ev[4]->summary->value[0];
    assert_int_equal(ev[4]->step, 43);
    assert_string_equal(v->tag, "test/image");
    assert_int_equal(v->value_case, TENSORBOARD__SUMMARY__VALUE__VALUE_IMAGE);
    assert_int_equal(v->image->width, 6);
    assert_int_equal(v->image->height, 4);
    assert_int_equal(v->image->colorspace, 3);
    struct image_info info;
    char why[256];
    ProtobufCBinaryData png = v->image->encoded_image_string;
    assert_true(image_probe(png.data, png.len, &info, why, sizeof why));
    assert_int_equal(info.format, IMAGE_PNG);
    assert_int_equal(info.w, 6);
    assert_int_equal(info.h, 4);
    uint8_t back[sizeof px];
    assert_true(image_decode(png.data, png.len, &info, back, why, sizeof why));
    assert_memory_equal(back, px, sizeof px);

    /* Text: a DT_STRING scalar tensor of the text plugin. */
    v = ev[5]->summary->value[0];
    assert_string_equal(v->tag, "config");
    assert_string_equal(v->metadata->plugin_data->plugin_name, "text");
    assert_int_equal(v->value_case, TENSORBOARD__SUMMARY__VALUE__VALUE_TENSOR);
    assert_int_equal(v->tensor->dtype, TENSORBOARD__DATA_TYPE__DT_STRING);
    assert_int_equal(v->tensor->tensor_shape->n_dim, 0);
    assert_int_equal(v->tensor->n_string_val, 1);
    assert_int_equal(v->tensor->string_val[0].len, 12);
    assert_memory_equal(v->tensor->string_val[0].data, "    name: x\n", 12);

    /* hparams: the plugin's content, with typed values. */
    v = ev[6]->summary->value[0];
    assert_string_equal(v->tag, "_hparams_/session_start_info");
    assert_string_equal(v->metadata->plugin_data->plugin_name, "hparams");
    assert_int_equal(v->tensor->dtype, TENSORBOARD__DATA_TYPE__DT_FLOAT);
    ProtobufCBinaryData c = v->metadata->plugin_data->content;
    Tensorboard__Hparams__HParamsPluginData *pd =
        tensorboard__hparams__hparams_plugin_data__unpack(NULL, c.len, c.data);
    assert_non_null(pd);
    assert_int_equal(pd->version, 0);
    assert_int_equal(pd->data_case,
                     TENSORBOARD__HPARAMS__HPARAMS_PLUGIN_DATA__DATA_SESSION_START_INFO);
    Tensorboard__Hparams__SessionStartInfo *si = pd->session_start_info;
    assert_true(si->start_time_secs == 1000.5);
    assert_int_equal(si->n_hparams, 5);
    assert_string_equal(si->hparams[0]->key, "lr");
    assert_int_equal(si->hparams[0]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE);
    assert_true(si->hparams[0]->value->number_value == 3e-4);
    assert_int_equal(si->hparams[1]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
    assert_string_equal(si->hparams[1]->value->string_value, "flip");
    assert_int_equal(si->hparams[2]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE);
    assert_true(si->hparams[2]->value->bool_value);
    for (int k = 3; k < 5; k++) { /* not finite, not decimal: text */
        assert_int_equal(si->hparams[k]->value->kind_case,
                         GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
        assert_string_equal(si->hparams[k]->value->string_value, values[k]);
    }
    tensorboard__hparams__hparams_plugin_data__free_unpacked(pd, NULL);
    v = ev[7]->summary->value[0];
    assert_string_equal(v->tag, "_hparams_/session_end_info");
    c = v->metadata->plugin_data->content;
    pd = tensorboard__hparams__hparams_plugin_data__unpack(NULL, c.len, c.data);
    assert_non_null(pd);
    assert_int_equal(pd->session_end_info->status, TENSORBOARD__HPARAMS__STATUS__STATUS_SUCCESS);
    assert_true(pd->session_end_info->end_time_secs == 2000.25);
    tensorboard__hparams__hparams_plugin_data__free_unpacked(pd, NULL);
    free_events(ev, n);

    /* Opened again while the names of this second and the next two are taken: NAME.2, and
     * the first file keeps its events. */
    long long now = (long long)time(NULL);
    for (int k = 0; k < 3; k++) {
        char taken[1000];
        snprintf(taken, sizeof taken, "%s/events.out.tfevents.%lld.%s", dir, now + k, host);
        FILE *t = fopen(taken, "a");
        assert_non_null(t);
        fclose(t);
    }
    assert_int_equal(tfevents_open(dir, NULL, &w, &d), STATUS_OK);
    assert_string_not_equal(tfevents_path(w), first);
    size_t plen = strlen(tfevents_path(w));
    assert_true(plen > 2 && strcmp(tfevents_path(w) + plen - 2, ".2") == 0);
    tfevents_scalar(w, "train/loss", 50, 1);
    assert_int_equal(tfevents_close(w, &d), STATUS_OK);
    ev = read_events(first, &n);
    assert_int_equal(n, 8);
    free_events(ev, n);
    remove_tmp();
}

static void test_open_error(void **state)
{
    (void)state;
    make_tmp();
    char file[300], dir[320];
    snprintf(file, sizeof file, "%s/file", tmp);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(dir, sizeof dir, "%s/tensorboard", file); /* under a file: cannot be made */
    char *out = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&out, &len);
    struct diag d = {.out = err};
    struct tfevents *w = (struct tfevents *)1;
    assert_int_equal(tfevents_open(dir, NULL, &w, &d), STATUS_RUNTIME);
    assert_null(w);
    fclose(err);
    assert_non_null(strstr(out, file));
    free(out);
    remove_tmp();
}

/* The confusion matrix and the sample grids: their sizes as run_files.h gives them, and the
 * pixels where the images and the colours must be. */
static void test_images(void **state)
{
    (void)state;
    enum { K = 3, N = 7 };
    int32_t label[N] = {0, 1, 2, 0, 1, 2, 0}, pred[N] = {0, 1, 1, 0, 2, 2, 0};
    int64_t image[N] = {0, 1, 2, 3, 4, 5, 6}, conf[K * K] = {0};
    float p[N] = {0.9f, 0.8f, 0.7f, 0.6f, 0.95f, 0.5f, 0.4f};
    for (int i = 0; i < N; i++) conf[label[i] * K + pred[i]]++;
    struct eval_result r = {.n = N, .classes = K, .image = image, .label = label, .pred = pred,
                            .conf = p, .confusion = conf};
    int side;
    uint8_t *cm = run_files_confusion_image(&r, &side);
    int cell = run_files_confusion_cell(K);
    assert_int_equal(cell, 24);
    assert_int_equal(side, K * cell);
    size_t plane = (size_t)side * side;
    /* Row 0 is all on the diagonal: dark blue there, white beside it. */
    assert_int_equal(cm[0], 8);
    assert_int_equal(cm[2 * plane], 107);
    assert_int_equal(cm[cell + 1], 255);
    free(cm);
    assert_int_equal(run_files_confusion_cell(100), 4);
    assert_int_equal(run_files_confusion_cell(1000), 2);

    /* Seven 5 x 4 images, each of one grey level. */
    uint8_t pixels[N * 3 * 20];
    for (int i = 0; i < N; i++) memset(pixels + i * 60, 10 * (i + 1), 60);
    struct dataset set = {.n = N, .h = 4, .w = 5, .max_h = 4, .max_w = 5, .pixels = pixels,
                          .labels = label};
    int w, h;
    char why[256];
    uint8_t *g = run_files_sample_grid(&r, &set, 16, false, &w, &h, why, sizeof why);
    assert_non_null(g);
    int tile = 5 + 2 * RUN_FILES_GRID_BORDER;
    /* Five correct images: three columns, two rows. */
    assert_int_equal(w, 3 * tile);
    assert_int_equal(h, 2 * tile);
    size_t gp = (size_t)w * h;
    assert_int_equal(g[0], 40);   /* a green border */
    assert_int_equal(g[gp], 170);
    /* The first cell holds image 0 (grey 10), centred in height: 4 rows in a 5-pixel cell. */
    assert_int_equal(g[(size_t)RUN_FILES_GRID_BORDER * w + RUN_FILES_GRID_BORDER], 10);
    assert_int_equal(g[(size_t)(RUN_FILES_GRID_BORDER + 1) * w + tile + RUN_FILES_GRID_BORDER], 20);
    free(g);
    /* The two wrong ones, the most confident first (image 4, then 2); count 1 keeps one. */
    g = run_files_sample_grid(&r, &set, 1, true, &w, &h, why, sizeof why);
    assert_int_equal(w, tile);
    assert_int_equal(h, tile);
    assert_int_equal(g[0], 220); /* red */
    assert_int_equal(g[(size_t)(RUN_FILES_GRID_BORDER + 1) * w + RUN_FILES_GRID_BORDER], 50);
    free(g);
    g = run_files_sample_grid(&r, &set, 0, true, &w, &h, why, sizeof why);
    assert_null(g);
    assert_int_equal(w, 0);
    assert_string_equal(why, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_open_error),
        cmocka_unit_test(test_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
