/*
 * test_schema.c: the schema table is consistent (defaults valid and in range, every key
 * described, variants in order), and the README's YAML reference is exactly what
 * `runner schema` prints (regenerate it with scripts/update_readme.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph.h"
#include "schema.h"
#include "test_util.h"
#include "validate.h"

static const char *readme_path;

static void test_table_consistent(void **state)
{
    (void)state;
    struct diag d = {.out = stderr};
    assert_int_equal(validate_schema_table(&d), STATUS_OK);
}

static void test_readme_reference(void **state)
{
    (void)state;
    char *readme = slurp(readme_path);
    assert_non_null(readme);
    const char *begin_tag = "<!-- yaml-reference:begin -->\n", *end_tag = "<!-- yaml-reference:end -->";
    char *b = strstr(readme, begin_tag), *e = strstr(readme, end_tag);
    if (!b || !e || e < b) fail_msg("%s: no yaml-reference markers", readme_path);
    b += strlen(begin_tag);
    *e = '\0';
    char *gen = NULL;
    size_t len;
    FILE *f = open_memstream(&gen, &len);
    schema_write_markdown(f);
    graph_write_markdown(f);
    fclose(f);
    if (strcmp(b, gen) != 0) {
        int line = 1;
        const char *p = b, *q = gen;
        while (*p && *p == *q) {
            if (*p == '\n') line++;
            p++;
            q++;
        }
        fail_msg("README.md's YAML reference differs from `runner schema` at its line %d:\n"
                 "  README: %.120s\n  schema: %.120s\nrun scripts/update_readme.sh", line, p, q);
    }
    free(gen);
    free(readme);
}

int main(int argc, char **argv)
{
    readme_path = argc > 1 ? argv[1] : "README.md";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_consistent),
        cmocka_unit_test(test_readme_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
