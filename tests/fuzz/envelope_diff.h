/* envelope_diff.h: src/hub/envelope.c against jansson, shared by
 * tests/fuzz/fuzz_envelope.c and tests/unit/test_envelope.c.
 *
 * env_diff_scan(): whenever env_scan() takes a text, json_loadb(…,
 * JSON_REJECT_DUPLICATES) must read it as an object with the same value
 * in every known field (kind, decoded string, integer; and the field's
 * span parsed alone equals jansson's value), and when the text is simple
 * enough that the scan has no reason to leave it to jansson (no backslash,
 * little nesting, few keys, short numbers without exponents) and jansson
 * takes it, the scan must take it too.
 * env_diff_msg(): serve_msg_json() writes the bytes jansson writes. */
#ifndef AXON_TESTS_ENVELOPE_DIFF_H
#define AXON_TESTS_ENVELOPE_DIFF_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/envelope.h"
#include "hub/serve.h"

static const char *const env_diff_names[ENV_NFIELDS] = {"type",
                                                        "topic",
                                                        "payload",
                                                        "encoding",
                                                        "id",
                                                        "since",
                                                        "limit",
                                                        "presence",
                                                        "token",
                                                        "name",
                                                        "response_topic",
                                                        "correlation_data",
                                                        "correlation_data_base64"};

/* Could the scan have a reason to leave this (valid) text to jansson? */
static bool env_diff_maybe_punt(const uint8_t *d, size_t n)
{
    size_t open = 0, colons = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = d[i];
        if (c == '\\' || c == 'e' || c == 'E' || c == '.') return true;
        /* jansson's reader skips a raw NUL byte between tokens (its
         * stream buffer takes '\0' for "empty"), so it takes texts that
         * are not JSON; the scan refuses them and leaves them to jansson */
        if (c == '\0') return true;
        open += c == '{' || c == '[';
        colons += c == ':';
        digits = c >= '0' && c <= '9' ? digits + 1 : 0;
        if (digits > 18) return true;
    }
    return open >= ENV_MAX_DEPTH || colons >= ENV_MAX_KEYS;
}

static bool env_diff_field(const env_value *v, json_t *j)
{
    if (v->kind == ENV_ABSENT) return j == NULL;
    if (!j) return false;
    json_t *alone = json_loadb(v->kind == ENV_STRING ? v->p - 1 : v->p,
                               v->n + (v->kind == ENV_STRING ? 2 : 0), JSON_DECODE_ANY, NULL);
    bool same = alone && json_equal(alone, j);
    json_decref(alone);
    switch (v->kind) {
    case ENV_STRING: {
        char *s = malloc(v->n + 1);
        size_t n = env_string(v, s);
        same = same && json_is_string(j) && json_string_length(j) == n &&
               memcmp(json_string_value(j), s, n) == 0 && s[n] == '\0';
        free(s);
        break;
    }
    case ENV_INT:
        same = same && json_is_integer(j) && json_integer_value(j) == v->i;
        break;
    case ENV_REAL:
        same = same && json_is_real(j);
        break;
    case ENV_TRUE:
        same = same && json_is_true(j);
        break;
    case ENV_FALSE:
        same = same && json_is_false(j);
        break;
    case ENV_NULL:
        same = same && json_is_null(j);
        break;
    case ENV_OBJECT:
        same = same && json_is_object(j);
        break;
    case ENV_ARRAY:
        same = same && json_is_array(j);
        break;
    default:
        same = false;
    }
    return same;
}

/* 0 when the scan and jansson agree about d; else which check failed. */
static int env_diff_scan(const uint8_t *d, size_t n)
{
    env_req q;
    int rc = env_scan(d, n, &q), bad = 0;
    json_t *j = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, NULL);
    if (rc == 0) {
        if (!json_is_object(j)) bad = 1;
        for (int f = 0; !bad && f < ENV_NFIELDS; f++)
            if (!env_diff_field(&q.f[f], json_object_get(j, env_diff_names[f]))) bad = 10 + f;
    } else if (json_is_object(j) && !env_diff_maybe_punt(d, n)) {
        bad = 2; /* refused a plain valid request */
    }
    json_decref(j);
    return bad;
}

/* 0 when serve_msg_json(m) is what jansson writes for it. */
static int env_diff_msg(const hub_msg *m)
{
    json_t *o = serve_msg_obj(m);
    char *want = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    size_t n = 0;
    char *got = serve_msg_json(m, &n);
    int bad = !want || !got ? (want != got) : (strlen(want) != n || strcmp(want, got) != 0);
    free(want);
    free(got);
    return bad;
}

#endif
