/*
 * spec_write.c: the resolved configuration as YAML, every key with its effective value,
 * walked from the schema table so nothing is forgotten. `runner config` prints it; a run
 * stores it as config.yaml. Reading the output back gives the same spec (tests/test_spec.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "spec.h"

static bool plain_safe(const char *s)
{
    if (!s[0] || strchr("-+.0123456789", s[0])) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("_./-", *p)))
            return false;
    static const char *const reserved[] = {"true", "false", "null", "Null", "NULL", "~"};
    for (size_t i = 0; i < ARRAY_LEN(reserved); i++)
        if (strcmp(s, reserved[i]) == 0) return false;
    return true;
}

static void write_str(FILE *out, const char *s, size_t len)
{
    if (strlen(s) == len && plain_safe(s)) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* The shortest text that reads back as the same double. */
static void write_num(FILE *out, double x)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    fputs(buf, out);
}

static void write_node(FILE *out, const struct node *n)
{
    if (!n) {
        fputs("null", out);
        return;
    }
    if (n->kind == NODE_SCALAR) {
        if (n->plain)
            fputs(n->len ? n->text : "null", out);
        else
            write_str(out, n->text, n->len);
        return;
    }
    fputc(n->kind == NODE_MAP ? '{' : '[', out);
    for (size_t i = 0; i < n->n; i++) {
        if (i) fputs(", ", out);
        if (n->kind == NODE_MAP) {
            write_str(out, n->keys[i]->text, n->keys[i]->len);
            fputs(": ", out);
        }
        write_node(out, n->items[i]);
    }
    fputc(n->kind == NODE_MAP ? '}' : ']', out);
}

static void write_keys(FILE *out, const struct schema_section *s, const void *base, int indent,
                       bool flow);

/* One list item (of section s), as a flow mapping. */
static void write_item(FILE *out, const struct schema_section *s, const void *item)
{
    if (s->select == SCHEMA_SELECT_SINGLE_KEY) {
        const struct schema_variant *var =
            &s->variants[*(const int *)((const char *)item + s->variant_offset)];
        struct schema_section one = {.keys = var->keys, .nkeys = var->nkeys};
        fprintf(out, "{%s: ", var->name);
        write_keys(out, &one, item, 0, true);
        fputc('}', out);
    } else {
        write_keys(out, s, item, 0, true);
    }
}

const char *spec_device_text(const struct spec_device *dev, char *buf, size_t size)
{
    if (dev->kind == SPEC_DEVICE_CUDA)
        snprintf(buf, size, "cuda:%d", dev->index);
    else
        snprintf(buf, size, "%s", dev->kind == SPEC_DEVICE_CPU ? "cpu" : "auto");
    return buf;
}

/* A value that fits on the line of its key (everything but sections). */
static void write_inline(FILE *out, const struct schema_key *k, const void *base)
{
    const void *f = (const char *)base + k->offset;
    switch (k->type) {
    case SCHEMA_BOOL: fputs(*(const bool *)f ? "true" : "false", out); break;
    case SCHEMA_INT: fprintf(out, "%lld", *(const long long *)f); break;
    case SCHEMA_INT2: {
        const long long *v = f;
        if (v[0] == v[1])
            fprintf(out, "%lld", v[0]);
        else
            fprintf(out, "[%lld, %lld]", v[0], v[1]);
        break;
    }
    case SCHEMA_FLOAT: write_num(out, *(const double *)f); break;
    case SCHEMA_STRING:
    case SCHEMA_NAME:
    case SCHEMA_PATH:
    case SCHEMA_SHA256: {
        const char *s = *(const char *const *)f;
        if (s)
            write_str(out, s, strlen(s));
        else
            fputs("null", out);
        break;
    }
    case SCHEMA_ENUM: fputs(k->choices[*(const int *)f], out); break;
    case SCHEMA_DEVICE: {
        char text[32];
        fputs(spec_device_text(f, text, sizeof text), out);
        break;
    }
    case SCHEMA_FLOATS:
        fputc('[', out);
        for (int i = 0; i < k->count; i++) {
            if (i) fputs(", ", out);
            write_num(out, ((const double *)f)[i]);
        }
        fputc(']', out);
        break;
    case SCHEMA_INTS: {
        const struct spec_ints *v = f;
        fputc('[', out);
        for (size_t i = 0; i < v->n; i++) fprintf(out, "%s%lld", i ? ", " : "", v->v[i]);
        fputc(']', out);
        break;
    }
    case SCHEMA_STRINGS: {
        const struct spec_strings *v = f;
        fputc('[', out);
        for (size_t i = 0; i < v->n; i++) {
            if (i) fputs(", ", out);
            write_str(out, v->v[i], strlen(v->v[i]));
        }
        fputc(']', out);
        break;
    }
    case SCHEMA_GRAPH: {
        const struct spec_graph *g = f;
        if (g->path)
            write_str(out, g->path, strlen(g->path));
        else
            write_node(out, g->tree);
        break;
    }
    case SCHEMA_ANY: write_node(out, *(const struct node *const *)f); break;
    case SCHEMA_LIST: {
        const struct spec_list *l = f;
        fputc('[', out);
        for (size_t i = 0; i < l->n; i++) {
            if (i) fputs(", ", out);
            write_item(out, k->section, (const char *)l->v + i * k->item_size);
        }
        fputc(']', out);
        break;
    }
    case SCHEMA_SECTION: break;
    }
}

static void write_key_list(FILE *out, const struct schema_key *keys, size_t n, const void *base,
                           int indent, bool flow, bool *first, const struct schema_key *skip)
{
    for (size_t i = 0; i < n; i++) {
        const struct schema_key *k = &keys[i];
        if (k == skip || strcmp(k->name, "extends") == 0) continue; /* resolved already */
        if (flow) {
            fprintf(out, "%s%s: ", *first ? "" : ", ", k->name);
            write_inline(out, k, base);
        } else if (k->type == SCHEMA_SECTION) {
            fprintf(out, "%*s%s:\n", indent, "", k->name);
            write_keys(out, k->section, (const char *)base + k->offset, indent + 2, false);
        } else if (k->type == SCHEMA_LIST &&
                   ((const struct spec_list *)((const char *)base + k->offset))->n > 0) {
            /* One item per line: "- {...}" */
            const struct spec_list *l = (const void *)((const char *)base + k->offset);
            fprintf(out, "%*s%s:\n", indent, "", k->name);
            for (size_t j = 0; j < l->n; j++) {
                fprintf(out, "%*s  - ", indent, "");
                write_item(out, k->section, (const char *)l->v + j * k->item_size);
                fputc('\n', out);
            }
        } else {
            fprintf(out, "%*s%s: ", indent, "", k->name);
            write_inline(out, k, base);
            fputc('\n', out);
        }
        *first = false;
    }
}

static void write_keys(FILE *out, const struct schema_section *s, const void *base, int indent,
                       bool flow)
{
    bool first = true;
    if (flow) fputc('{', out);
    write_key_list(out, s->keys, s->nkeys, base, indent, flow, &first, NULL);
    if (s->select == SCHEMA_SELECT_TYPE) {
        const struct schema_variant *var =
            &s->variants[*(const int *)((const char *)base + s->keys[0].offset)];
        write_key_list(out, var->keys, var->nkeys, base, indent, flow, &first, NULL);
    }
    if (flow) fputc('}', out);
}

void spec_write_yaml(const struct spec *s, FILE *out)
{
    write_keys(out, &schema_experiment, s, 0, false);
}

char *spec_yaml_text(const struct spec *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    spec_write_yaml(s, f);
    fclose(f);
    return text;
}
