/* test_errors.c — the error table behind the enum, kvt_strerror and kvt_error_name; version queries. */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "kvtier.h"

typedef struct row {
    const char *name;
    int value;
    const char *msg;
} row;

static const row table[] = {
#define ROW(name, value, msg) {#name, value, msg},
    KVT_ERROR_TABLE(ROW)
#undef ROW
};
#define NROWS (sizeof table / sizeof table[0])

Test(errors, table_values_are_distinct_and_not_positive)
{
    cr_assert_geq(NROWS, 2);
    cr_assert_str_eq(table[0].name, "KVT_OK");
    cr_assert_eq(table[0].value, 0);
    for (size_t i = 0; i < NROWS; i++) {
        cr_assert_leq(table[i].value, 0, "%s is positive", table[i].name);
        cr_assert_eq(strncmp(table[i].name, "KVT_", 4), 0, "%s lacks the prefix", table[i].name);
        for (size_t j = i + 1; j < NROWS; j++) {
            cr_assert_neq(table[i].value, table[j].value, "%s and %s share %d", table[i].name,
                          table[j].name, table[i].value);
            cr_assert_str_neq(table[i].name, table[j].name);
        }
    }
}

Test(errors, every_code_has_text_and_name)
{
    for (size_t i = 0; i < NROWS; i++) {
        const char *text = kvt_strerror(table[i].value);
        cr_assert_not_null(text, "%s", table[i].name);
        cr_assert_gt(strlen(text), 0, "%s has empty text", table[i].name);
        cr_assert_str_eq(text, table[i].msg, "%s", table[i].name);
        const char *name = kvt_error_name(table[i].value);
        cr_assert_not_null(name, "%s has no name", table[i].name);
        cr_assert_str_eq(name, table[i].name);
    }
}

/* The enum is generated from the same table: spot-check that it is. */
Test(errors, enum_matches_table)
{
    cr_assert_eq(KVT_OK, 0);
    cr_assert_eq(KVT_EINVAL, -1);
    cr_assert_eq(KVT_ENULL, -2);
    cr_assert_eq(KVT_ESIZE, -3);
    cr_assert_str_eq(kvt_error_name(KVT_ENOENT), "KVT_ENOENT");
    cr_assert_str_eq(kvt_error_name(KVT_ETOOSMALL), "KVT_ETOOSMALL");
}

Test(errors, unknown_codes)
{
    int lowest = 0;
    for (size_t i = 0; i < NROWS; i++)
        if (table[i].value < lowest)
            lowest = table[i].value;
    const int unknown[] = {1, 2, 100, lowest - 1, lowest - 100, -1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *text = kvt_strerror(unknown[i]);
        cr_assert_not_null(text, "kvt_strerror(%d) is NULL", unknown[i]);
        cr_assert_gt(strlen(text), 0, "kvt_strerror(%d) is empty", unknown[i]);
        cr_assert_null(kvt_error_name(unknown[i]), "kvt_error_name(%d) = %s", unknown[i],
                       kvt_error_name(unknown[i]));
        /* An unknown code must not read as a known one (or as success). */
        for (size_t j = 0; j < NROWS; j++)
            cr_assert_str_neq(text, table[j].msg, "kvt_strerror(%d) reads as %s", unknown[i],
                              table[j].name);
    }
}

Test(errors, last_error_is_never_null)
{
    cr_assert_not_null(kvt_last_error());
    kvt_key out;
    cr_assert_eq(kvt_ns_key(NULL, 1, &out), KVT_ENULL);
    const char *msg = kvt_last_error();
    cr_assert_not_null(msg);
    cr_assert_not_null(strstr(msg, kvt_strerror(KVT_ENULL)), "\"%s\"", msg);
    cr_assert_not_null(strstr(msg, "kvt_ns_key"), "\"%s\"", msg);
}

Test(errors, version_matches_header)
{
    cr_assert_eq(kvt_version(), KVT_VERSION_NUMBER);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", KVT_VERSION_MAJOR, KVT_VERSION_MINOR,
             KVT_VERSION_PATCH);
    const char *s = kvt_version_string();
    cr_assert_not_null(s);
    cr_assert_str_eq(s, expect);
    cr_assert_eq(kvt_version_string(), s, "the version string is not static storage");
}
