/*
 * test_yaml_load.c: YAML text -> node tree (yaml_load.c, node.c, paths.c): scalars and their
 * style, marks, structure, strict refusals, depth, merging, lexical paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "paths.h"
#include "yaml_load.h"

static const struct source src = {"mem.yaml", ".", "", 0};

static struct node *parse(struct arena *a, const char *text, int *errors)
{
    struct diag d = {0};
    struct node *n = NULL;
    enum status st = yaml_load_text(a, &d, &src, text, strlen(text), 1, 1, &n);
    *errors = d.errors;
    return st ? NULL : n;
}

static void test_scalars_and_marks(void **state)
{
    (void)state;
    struct arena a = {0};
    int e;
    struct node *n = parse(&a, "# c\nname: run1\nlr: 3e-4\nq: \"3\"\nempty:\nlist: [1, two]\n", &e);
    assert_non_null(n);
    assert_int_equal(n->kind, NODE_MAP);
    assert_int_equal(n->n, 5);
    struct node *key, *v = node_map_get(n, "lr", &key);
    assert_string_equal(v->text, "3e-4");
    assert_true(v->plain);
    assert_int_equal(key->mark.line, 3);
    assert_int_equal(key->mark.col, 1);
    assert_int_equal(v->mark.line, 3);
    assert_int_equal(v->mark.col, 5);
    v = node_map_get(n, "q", NULL);
    assert_false(v->plain);
    assert_string_equal(node_describe(&a, v), "\"3\"");
    assert_true(node_is_null(node_map_get(n, "empty", NULL)));
    v = node_map_get(n, "list", NULL);
    assert_int_equal(v->kind, NODE_SEQ);
    assert_int_equal(v->n, 2);
    assert_int_equal(v->items[1]->mark.col, 11);
    assert_string_equal(node_describe(&a, v), "a list");
    assert_string_equal(node_describe(&a, v->items[0]), "1");
    arena_free(&a);
}

static void test_offset_marks(void **state)
{
    (void)state;
    /* A value parsed from the middle of a line (an override) keeps its real columns. */
    struct arena a = {0};
    struct diag d = {0};
    struct node *n;
    const char *text = "[0.9, 0.99]";
    assert_int_equal(yaml_load_text(&a, &d, &src, text, strlen(text), 4, 17, &n), STATUS_OK);
    assert_int_equal(n->mark.line, 4);
    assert_int_equal(n->mark.col, 17);
    assert_int_equal(n->items[1]->mark.col, 23);
    /* An empty text is a null scalar. */
    assert_int_equal(yaml_load_text(&a, &d, &src, "", 0, 1, 5, &n), STATUS_OK);
    assert_true(node_is_null(n));
    arena_free(&a);
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "a: &x 1\n",           "a: *x\n",           "a: {<<: {b: 1}}\n",  "a: !!str 1\n",
        "a: 1\na: 2\n",        "a: 1\n---\nb: 2\n", "? [x]\n: 1\n",       "a: [1\n",
        "a:\n\tb: 1\n",        "a: b: c\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct arena a = {0};
        int e;
        if (parse(&a, bad[i], &e) != NULL || e != 1) fail_msg("accepted: %s", bad[i]);
        arena_free(&a);
    }
}

static void test_depth(void **state)
{
    (void)state;
    char text[300];
    struct arena a = {0};
    int e;
    /* The root sequence is level 1: 64 levels pass, 65 fail. */
    for (int depth = 64; depth <= 65; depth++) {
        memset(text, 0, sizeof text);
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        struct node *n = parse(&a, text, &e);
        if (depth == 64) assert_non_null(n);
        else assert_null(n);
    }
    arena_free(&a);
}

static void test_duplicates_many_keys(void **state)
{
    (void)state;
    char text[20000];
    size_t used = 0;
    for (int i = 0; i < 1000; i++) used += (size_t)sprintf(text + used, "k%d: %d\n", i, i);
    struct arena a = {0};
    int e;
    assert_non_null(parse(&a, text, &e));
    sprintf(text + used, "k500: again\n");
    assert_null(parse(&a, text, &e));
    assert_int_equal(e, 1);
    arena_free(&a);
}

static void test_merge(void **state)
{
    (void)state;
    struct arena a = {0};
    int e;
    struct node *base = parse(&a, "opt: {type: adam, lr: 1, betas: [1, 2]}\nl: [1, 2, 3]\nx: 1\n", &e);
    struct node *over = parse(&a, "opt: {lr: 2}\nl: [9]\ny: 2\n", &e);
    struct node *m = node_merge(&a, base, over);
    struct node *opt = node_map_get(m, "opt", NULL);
    assert_string_equal(node_map_get(opt, "type", NULL)->text, "adam");
    assert_string_equal(node_map_get(opt, "lr", NULL)->text, "2");
    assert_non_null(node_map_get(opt, "betas", NULL));
    assert_int_equal(node_map_get(m, "l", NULL)->n, 1); /* lists replace */
    assert_non_null(node_map_get(m, "x", NULL));
    assert_non_null(node_map_get(m, "y", NULL));
    /* The inputs are untouched. */
    assert_string_equal(node_map_get(node_map_get(base, "opt", NULL), "lr", NULL)->text, "1");
    /* A changed type replaces the mapping whole. */
    struct node *sgd = parse(&a, "opt: {type: sgd, lr: 3}\n", &e);
    opt = node_map_get(node_merge(&a, base, sgd), "opt", NULL);
    assert_string_equal(node_map_get(opt, "type", NULL)->text, "sgd");
    assert_null(node_map_get(opt, "betas", NULL));
    arena_free(&a);
}

static void test_paths(void **state)
{
    (void)state;
    struct arena a = {0};
    assert_string_equal(path_join(&a, "experiments/sweeps", "../models/r50.yaml"),
                        "experiments/models/r50.yaml");
    assert_string_equal(path_join(&a, ".", "x.yaml"), "x.yaml");
    assert_string_equal(path_join(&a, "a", "/abs/x"), "/abs/x");
    assert_string_equal(path_normalize(&a, "../../a/./b//c/.."), "../../a/b");
    assert_string_equal(path_normalize(&a, "/../x"), "/x");
    assert_string_equal(path_normalize(&a, "a/.."), ".");
    assert_string_equal(path_dirname(&a, "x.yaml"), ".");
    assert_string_equal(path_dirname(&a, "/x.yaml"), "/");
    assert_string_equal(path_dirname(&a, "e/s/x.yaml"), "e/s");
    assert_string_equal(path_stem(&a, "e/lr_3e-4.yaml"), "lr_3e-4");
    arena_free(&a);
}

static void test_closest(void **state)
{
    (void)state;
    static const char *const keys[] = {"weight_decay", "lr", "betas", "eps"};
    assert_string_equal(diag_closest("weight_decai", keys, 4), "weight_decay");
    assert_string_equal(diag_closest("betsa", keys, 4), "betas"); /* transposition */
    assert_string_equal(diag_closest("lrr", keys, 4), "lr");
    assert_null(diag_closest("momentum", keys, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_and_marks), cmocka_unit_test(test_offset_marks),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_depth),
        cmocka_unit_test(test_duplicates_many_keys), cmocka_unit_test(test_merge),
        cmocka_unit_test(test_paths),             cmocka_unit_test(test_closest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
