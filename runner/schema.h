/*
 * schema.h: every key of an experiment file, with its type, default, range and meaning, in
 * one table (schema.c). validate.c reads the YAML tree against it; `runner schema` prints it
 * (the README's YAML reference is that output, and tests/test_schema.c keeps them equal).
 *
 * A section is a mapping of keys. Some sections pick a variant, whose keys then join the
 * common ones: by their `type` key (optimizer, schedule) or, for list items, by their single
 * key (augment transforms: `{random_crop: {size: 32}}`). A section or variant with a
 * shorthand key accepts a scalar in place of the mapping (`model: r50.yaml` means
 * `model: {graph: r50.yaml}`; `hflip: 0.5` means `hflip: {p: 0.5}`).
 */
#ifndef RUNNER_SCHEMA_H
#define RUNNER_SCHEMA_H

#include <stddef.h>
#include <stdio.h>

enum schema_type {
    SCHEMA_BOOL,    /* bool: true or false, nothing else */
    SCHEMA_INT,     /* long long */
    SCHEMA_INT2,    /* long long[2]: an integer n (meaning [n, n]) or a list [h, w] */
    SCHEMA_FLOAT,   /* double; integers accepted */
    SCHEMA_STRING,  /* const char *: any scalar but null and booleans */
    SCHEMA_NAME,    /* const char *: letters, digits, '.', '_', '-' (used in paths) */
    SCHEMA_ENUM,    /* int: index into choices */
    SCHEMA_DEVICE,  /* struct spec_device: auto, cpu, cuda or cuda:N */
    SCHEMA_PATH,    /* const char *: resolved against the writing file's directory */
    SCHEMA_SHA256,  /* const char *: a SHA-256 digest, 64 hex digits (either case) */
    SCHEMA_FLOATS,  /* double[count] */
    SCHEMA_INTS,    /* struct spec_ints */
    SCHEMA_STRINGS, /* struct spec_strings */
    SCHEMA_SECTION, /* nested struct described by section */
    SCHEMA_LIST,    /* struct spec_list of section items, item_size bytes each */
    SCHEMA_GRAPH,   /* model graph: a path to a YAML file or an inline mapping */
    SCHEMA_ANY,     /* const struct node *: free-form, passed on as written */
};
/* The number of types, for tables indexed by type (validate.c's converters). It stands outside
 * the enum so that switches over a type stay complete without a case for it (-Wswitch); a type
 * added after SCHEMA_ANY moves it. */
enum { SCHEMA_TYPE_COUNT = SCHEMA_ANY + 1 };

enum schema_flags {
    SK_REQUIRED = 1 << 0,
    SK_MIN = 1 << 1,        /* min applies */
    SK_MAX = 1 << 2,        /* max applies */
    SK_MIN_OPEN = 1 << 3,   /* value > min (not >=) */
    SK_MAX_OPEN = 1 << 4,   /* value < max (not <=) */
    SK_NULLABLE = 1 << 5,   /* null allowed, meaning "not set" */
    SK_INCREASING = 1 << 6, /* INTS: strictly increasing */
    SK_MUST_EXIST = 1 << 7, /* PATH: the file must exist when the experiment is loaded */
    SK_HOOK = 1 << 8,       /* PATH: also looked up in the project's hooks/ */
    SK_URL = 1 << 9,        /* PATH: or an http://, https:// or hf:// URL (url.h), kept as
                             * written: neither resolved nor checked to exist (SK_MUST_EXIST
                             * is for paths only) */
};

struct schema_section;

struct schema_key {
    const char *name;
    enum schema_type type;
    size_t offset; /* of the field in the section's struct */
    unsigned flags;
    const char *def; /* default as YAML text, or NULL (required, or unset) */
    double min, max; /* with SK_MIN / SK_MAX; for lists, bounds on each element */
    int count;       /* FLOATS: exact number of values */
    const char *const *choices;          /* ENUM: NULL-terminated spellings */
    const struct schema_section *section; /* SECTION and LIST items */
    size_t item_size;                     /* LIST */
    const char *doc;
};

struct schema_variant {
    const char *name;
    const struct schema_key *keys;
    size_t nkeys;
    const char *shorthand; /* key a scalar stands for, or NULL */
    const char *doc;
};

enum schema_select {
    SCHEMA_SELECT_NONE,
    SCHEMA_SELECT_TYPE,       /* the `type` key (first of keys, an ENUM over the variants) */
    SCHEMA_SELECT_SINGLE_KEY, /* {variant_name: body} */
};

struct schema_section {
    const char *name; /* dotted path of the section: "optimizer", "augment.train[]" */
    const struct schema_key *keys;
    size_t nkeys;
    enum schema_select select;
    const struct schema_variant *variants;
    size_t nvariants;
    size_t variant_offset; /* int field receiving the variant's index */
    const char *shorthand;
    const char *doc;
};

/* The experiment file's top level. */
extern const struct schema_section schema_experiment;

/* Prints the reference of every key as Markdown (the README's "YAML reference"). */
void schema_write_markdown(FILE *out);

/* The table rows (key, type, default, allowed, meaning) of keys, as Markdown. */
void schema_write_keys(FILE *out, const struct schema_key *keys, size_t n);

/* "an integer >= 1", "a number in (0, 1)", "one of: auto, fp32": the expected-value phrase. */
const char *schema_describe(const struct schema_key *k, char *buf, size_t size);

#endif
