/*
 * run_files.c: the run directory and the files written into it; see run_files.h.
 */
#include "run_files.h"

#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "paths.h"

/* dir/name (and suffix) into out; false, reported, when it does not fit. */
static bool join(char *out, size_t size, const char *dir, const char *name, const char *suffix,
                 struct diag *d)
{
    if (snprintf(out, size, "%s/%s%s", dir, name, suffix) < (int)size) return true;
    diag_error(d, (struct mark){0}, "%s/%s: path too long", dir, name);
    return false;
}

static enum status io_error(struct diag *d, const char *path, const char *what)
{
    diag_error(d, (struct mark){0}, "%s: %s: %s", path, what, strerror(errno));
    return STATUS_RUNTIME;
}

enum status run_files_mkdirs(const char *path, struct diag *d)
{
    return path_mkdirs(path) ? STATUS_OK : io_error(d, path, "cannot create");
}

enum status run_files_dir_create(const char *out, const char *name, char *dir, size_t size,
                           struct diag *d)
{
    if (out) {
        if (snprintf(dir, size, "%s", out) >= (int)size) {
            diag_error(d, (struct mark){0}, "%s: path too long", out);
            return STATUS_RUNTIME;
        }
        if (run_files_mkdirs(dir, d)) return STATUS_RUNTIME;
        char probe[4200];
        if (!join(probe, sizeof probe, dir, "metrics.jsonl", "", d)) return STATUS_RUNTIME;
        if (access(probe, F_OK) == 0) {
            diag_error(d, (struct mark){0}, "%s already holds a run (metrics.jsonl)", dir);
            diag_hint(d, "choose another --out, or remove that folder");
            return STATUS_RUNTIME;
        }
        return STATUS_OK;
    }
    char parent[4096], stamp[32];
    if (!join(parent, sizeof parent, "results", name, "", d)) return STATUS_RUNTIME;
    if (run_files_mkdirs(parent, d)) return STATUS_RUNTIME;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    for (int n = 1; n < 1000; n++) {
        char suffix[16] = "";
        if (n > 1) snprintf(suffix, sizeof suffix, "-%d", n);
        if (!join(dir, size, parent, stamp, suffix, d)) return STATUS_RUNTIME;
        if (mkdir(dir, 0777) == 0) return STATUS_OK;
        if (errno != EEXIST) return io_error(d, dir, "cannot create");
    }
    diag_error(d, (struct mark){0}, "%s: too many runs started in the same second", parent);
    return STATUS_RUNTIME;
}

FILE *run_files_begin(const char *dir, const char *name, struct diag *d)
{
    char tmp[4200];
    if (!join(tmp, sizeof tmp, dir, name, ".tmp", d)) return NULL;
    FILE *f = fopen(tmp, "w");
    if (!f) io_error(d, tmp, "cannot write");
    return f;
}

enum status run_files_end(FILE *f, const char *dir, const char *name, struct diag *d)
{
    char tmp[4200], path[4200];
    if (!join(tmp, sizeof tmp, dir, name, ".tmp", d) || !join(path, sizeof path, dir, name, "", d)) {
        fclose(f);
        return STATUS_RUNTIME;
    }
    bool bad = ferror(f) != 0;
    if (fclose(f) || bad) {
        unlink(tmp);
        return io_error(d, tmp, "write failed");
    }
    if (rename(tmp, path)) return io_error(d, path, "cannot rename into place");
    return STATUS_OK;
}

/* --------------------------------------------------------------------------------------- */
/* PNG (libpng) */

bool run_files_png_stream(FILE *f, const uint8_t *planar, int w, int h, const char *const *key,
                          const char *const *value, int ntext)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *row = malloc((size_t)w * 3);
    if (!png || !info || !row || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(row);
        return false;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text[8];
    for (int i = 0; i < ntext && i < 8; i++)
        text[i] = (png_text){.compression = PNG_TEXT_COMPRESSION_NONE, .key = (char *)key[i],
                             .text = (char *)value[i], .text_length = strlen(value[i])};
    if (ntext) png_set_text(png, info, text, ntext < 8 ? ntext : 8);
    png_write_info(png, info);
    size_t plane = (size_t)w * (size_t)h;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) row[x * 3 + c] = planar[c * plane + (size_t)y * w + x];
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return true;
}

enum status run_files_png(const char *path, const uint8_t *planar, int w, int h,
                             const char *const *key, const char *const *value, int ntext,
                             struct diag *d)
{
    FILE *f = fopen(path, "wb");
    if (!f) return io_error(d, path, "cannot write");
    if (!run_files_png_stream(f, planar, w, h, key, value, ntext)) {
        fclose(f);
        diag_error(d, (struct mark){0}, "%s: writing the PNG failed", path);
        return STATUS_RUNTIME;
    }
    if (fclose(f)) return io_error(d, path, "write failed");
    return STATUS_OK;
}

/* --------------------------------------------------------------------------------------- */
/* Evaluation tables */

/* A CSV field: bare, or in double quotes (doubled inside) when it holds a comma, a quote or a
 * line break (a folder dataset's class names are the user's folder names). */
static void csv_field(FILE *f, const char *v)
{
    if (!strpbrk(v, ",\"\r\n")) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (; *v; v++) *v == '"' ? fputs("\"\"", f) : fputc(*v, f);
    fputc('"', f);
}

/* name in a file name: letters, digits, '-', '_' and '.' kept, anything else '_', at most
 * size - 1 bytes. */
static void file_word(char *out, size_t size, const char *name)
{
    size_t k = 0;
    for (; *name && k + 1 < size; name++) {
        unsigned char c = (unsigned char)*name;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        out[k++] = ok ? (char)c : '_';
    }
    out[k] = '\0';
}

enum status run_files_confusion(const char *dir, const struct eval_result *r,
                            const char *const *names, struct diag *d)
{
    FILE *f = run_files_begin(dir, "confusion_matrix.csv", d);
    if (!f) return STATUS_RUNTIME;
    int k = r->classes;
    fprintf(f, "true\\predicted");
    for (int j = 0; j < k; j++) {
        fputc(',', f);
        csv_field(f, names[j]);
    }
    fprintf(f, "\n");
    for (int i = 0; i < k; i++) {
        csv_field(f, names[i]);
        for (int j = 0; j < k; j++) fprintf(f, ",%lld", (long long)r->confusion[i * k + j]);
        fprintf(f, "\n");
    }
    return run_files_end(f, dir, "confusion_matrix.csv", d);
}

enum status run_files_per_class(const char *dir, const struct eval_result *r,
                            const char *const *names, double *macro_f1, struct diag *d)
{
    struct class_metrics *m = calloc((size_t)r->classes + 1, sizeof *m);
    if (!m) abort();
    *macro_f1 = eval_per_class(r, m);
    FILE *f = run_files_begin(dir, "per_class.csv", d);
    if (!f) {
        free(m);
        return STATUS_RUNTIME;
    }
    fprintf(f, "class,precision,recall,f1,support\n");
    for (int c = 0; c < r->classes; c++) {
        csv_field(f, names[c]);
        fprintf(f, ",%.6f,%.6f,%.6f,%lld\n", m[c].precision, m[c].recall, m[c].f1,
                (long long)m[c].support);
    }
    free(m);
    return run_files_end(f, dir, "per_class.csv", d);
}

static const struct eval_result *sort_r;

/* Most confident first; the test order breaks ties. */
static int by_confidence(const void *a, const void *b)
{
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    float x = sort_r->conf[i], y = sort_r->conf[j];
    if (x != y) return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

/* The images of r in test order, the correctly classified ones in right (test order) and the
 * others in wrong (most confident first); both malloc'd. */
static void pick_samples(const struct eval_result *r, int64_t **right, int64_t *nr,
                         int64_t **wrong, int64_t *nw)
{
    *right = malloc((size_t)(r->n + 1) * sizeof **right);
    *wrong = malloc((size_t)(r->n + 1) * sizeof **wrong);
    if (!*right || !*wrong) abort();
    *nr = *nw = 0;
    for (int64_t i = 0; i < r->n; i++)
        if (r->pred[i] == r->label[i])
            (*right)[(*nr)++] = i;
        else
            (*wrong)[(*nw)++] = i;
    sort_r = r;
    qsort(*wrong, (size_t)*nw, sizeof **wrong, by_confidence);
}

enum status run_files_samples(const char *dir, const struct eval_result *r,
                              const struct dataset *set, const char *const *names,
                              int64_t count, struct diag *d)
{
    char sub[4200];
    if (!join(sub, sizeof sub, dir, "samples", "", d) || run_files_mkdirs(sub, d)) return STATUS_RUNTIME;
    int64_t *right, *wrong, nr, nw;
    pick_samples(r, &right, &nr, &wrong, &nw);
    FILE *f = run_files_begin(sub, "index.csv", d);
    enum status st = f ? STATUS_OK : STATUS_RUNTIME;
    if (f) fprintf(f, "file,index,true,predicted,confidence\n");
    uint8_t *buf = set->pixels ? NULL : malloc(3 * (size_t)set->max_h * (size_t)set->max_w + 1);
    if (!set->pixels && !buf) abort();
    for (int pass = 0; pass < 2 && !st; pass++) {
        const int64_t *list = pass ? wrong : right;
        int64_t n = pass ? nw : nr;
        for (int64_t s = 0; s < n && s < count && !st; s++) {
            int64_t i = list[s];
            const char *t = names[r->label[i]], *p = names[r->pred[i]];
            char file[200], path[4400], conf[32], index[32], tw[64], pw[64];
            file_word(tw, sizeof tw, t);
            file_word(pw, sizeof pw, p);
            if (pass)
                snprintf(file, sizeof file, "wrong_%03lld_%s_as_%s.png", (long long)s, tw, pw);
            else
                snprintf(file, sizeof file, "correct_%03lld_%s.png", (long long)s, tw);
            if (!join(path, sizeof path, sub, file, "", d)) {
                st = STATUS_RUNTIME;
                break;
            }
            snprintf(conf, sizeof conf, "%.4f", r->conf[i]);
            snprintf(index, sizeof index, "%lld", (long long)r->image[i]);
            const char *key[] = {"Title", "Comment"};
            char comment[4600], why[1200];
            const uint8_t *px;
            int h, w;
            if (!dataset_image(set, r->image[i], buf, &px, &h, &w, why, sizeof why)) {
                diag_error(d, (struct mark){0}, "%s", why);
                st = STATUS_RUNTIME;
                break;
            }
            snprintf(comment, sizeof comment, "test image %s%s%s: true %s, predicted %s (%s)",
                     index, set->files ? " " : "", set->files ? set->files[r->image[i]] : "", t,
                     p, conf);
            const char *value[] = {file, comment};
            st = run_files_png(path, px, w, h, key, value, 2, d);
            if (!st) {
                fprintf(f, "%s,%s,", file, index);
                csv_field(f, t);
                fputc(',', f);
                csv_field(f, p);
                fprintf(f, ",%s\n", conf);
            }
        }
    }
    if (f && st) fclose(f);
    else if (f) st = run_files_end(f, sub, "index.csv", d);
    free(right);
    free(wrong);
    free(buf);
    return st;
}

/* --------------------------------------------------------------------------------------- */
/* The evaluation as images (for TensorBoard) */

int run_files_confusion_cell(int classes)
{
    int cell = 480 / (classes > 0 ? classes : 1);
    return cell < 2 ? 2 : cell > 24 ? 24 : cell;
}

uint8_t *run_files_confusion_image(const struct eval_result *r, int *size)
{
    int k = r->classes, cell = run_files_confusion_cell(k), n = k * cell;
    size_t plane = (size_t)n * (size_t)n;
    uint8_t *px = malloc(3 * plane);
    if (!px) abort();
    for (int i = 0; i < k; i++) {
        int64_t total = 0;
        for (int j = 0; j < k; j++) total += r->confusion[i * k + j];
        for (int j = 0; j < k; j++) {
            /* White (none of the row) to dark blue (all of it). */
            double f = total ? (double)r->confusion[i * k + j] / (double)total : 0;
            uint8_t rgb[3] = {(uint8_t)(255 - 247 * f + 0.5), (uint8_t)(255 - 207 * f + 0.5),
                              (uint8_t)(255 - 148 * f + 0.5)};
            for (int y = i * cell; y < (i + 1) * cell; y++)
                for (int x = j * cell; x < (j + 1) * cell; x++)
                    for (int c = 0; c < 3; c++) px[c * plane + (size_t)y * n + x] = rgb[c];
        }
    }
    *size = n;
    return px;
}

int run_files_sample_cell(const struct dataset *set)
{
    int side = set->max_h > set->max_w ? set->max_h : set->max_w;
    return side < RUN_FILES_GRID_CELL ? side : RUN_FILES_GRID_CELL;
}

uint8_t *run_files_sample_grid(const struct eval_result *r, const struct dataset *set,
                               int64_t count, bool wrong_ones, int *w, int *h, char *why,
                               size_t size)
{
    if (size) why[0] = 0;
    int64_t *right, *wrong, nr, nw;
    pick_samples(r, &right, &nr, &wrong, &nw);
    const int64_t *list = wrong_ones ? wrong : right;
    int64_t n = wrong_ones ? nw : nr;
    if (n > count) n = count;
    uint8_t *grid = NULL, *buf = NULL;
    *w = *h = 0;
    if (n <= 0) goto done;
    int cell = run_files_sample_cell(set), tile = cell + 2 * RUN_FILES_GRID_BORDER;
    int cols = 1;
    while ((int64_t)cols * cols < n) cols++;
    int rows = (int)((n + cols - 1) / cols);
    int gw = cols * tile, gh = rows * tile;
    size_t plane = (size_t)gw * (size_t)gh;
    grid = malloc(3 * plane);
    buf = set->pixels ? NULL : malloc(3 * (size_t)set->max_h * (size_t)set->max_w + 1);
    if (!grid || (!set->pixels && !buf)) abort();
    memset(grid, 32, 3 * plane); /* dark grey between the images */
    const uint8_t border[3] = {wrong_ones ? 220 : 40, wrong_ones ? 40 : 170, 40};
    for (int64_t s = 0; s < n; s++) {
        const uint8_t *im;
        int ih, iw;
        if (!dataset_image(set, r->image[list[s]], buf, &im, &ih, &iw, why, size)) {
            free(grid);
            grid = NULL;
            goto done;
        }
        int x0 = (int)(s % cols) * tile, y0 = (int)(s / cols) * tile;
        for (int y = 0; y < tile; y++)
            for (int x = 0; x < tile; x++)
                if (y < RUN_FILES_GRID_BORDER || x < RUN_FILES_GRID_BORDER ||
                    y >= tile - RUN_FILES_GRID_BORDER || x >= tile - RUN_FILES_GRID_BORDER)
                    for (int c = 0; c < 3; c++)
                        grid[c * plane + (size_t)(y0 + y) * gw + x0 + x] = border[c];
        /* Fitted into the cell (nearest neighbour, no enlarging), centred. */
        int side = ih > iw ? ih : iw;
        double scale = side > cell ? (double)cell / side : 1.0;
        int oh = (int)(ih * scale), ow = (int)(iw * scale);
        if (oh < 1) oh = 1;
        if (ow < 1) ow = 1;
        int oy = y0 + RUN_FILES_GRID_BORDER + (cell - oh) / 2;
        int ox = x0 + RUN_FILES_GRID_BORDER + (cell - ow) / 2;
        size_t iplane = (size_t)ih * (size_t)iw;
        for (int y = 0; y < oh; y++) {
            int sy = (int)((y + 0.5) / scale);
            if (sy >= ih) sy = ih - 1;
            for (int x = 0; x < ow; x++) {
                int sx = (int)((x + 0.5) / scale);
                if (sx >= iw) sx = iw - 1;
                for (int c = 0; c < 3; c++)
                    grid[c * plane + (size_t)(oy + y) * gw + ox + x] =
                        im[c * iplane + (size_t)sy * iw + sx];
            }
        }
    }
    *w = gw;
    *h = gh;
done:
    free(right);
    free(wrong);
    free(buf);
    return grid;
}

void run_files_shell_word(FILE *f, const char *w)
{
    static const char safe[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/=+:@";
    if (*w && strspn(w, safe) == strlen(w)) {
        fputs(w, f);
        return;
    }
    fputc('\'', f);
    for (; *w; w++) *w == '\'' ? fputs("'\\''", f) : fputc(*w, f);
    fputc('\'', f);
}

const char *run_files_clock(double seconds, char *buf, size_t size)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
    return buf;
}
