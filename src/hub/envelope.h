/* envelope.h: the JSON envelope of docs/protocol.md without a JSON tree.
 *
 * env_scan() reads a request ({"type":"publish","topic":…,"payload":…})
 * in one pass over the bytes: it checks the whole text is valid JSON and
 * notes where the top-level fields the gateways know are (their text
 * stays in the caller's buffer; strings are decoded on demand by
 * env_string()).  Unknown fields, nested objects and arrays are checked
 * and skipped.  No allocation; never reads past `len`.
 *
 * The contract is jansson's json_loadb(…, JSON_REJECT_DUPLICATES), which
 * the gateways used before and still use for what the scan leaves to them:
 * when env_scan() returns 0, jansson reads the same text as an object with
 * the same values.  It returns -1 for invalid JSON and also for valid text
 * it does not take on (the caller then parses with jansson, which gives
 * the same error replies as always): a top level that is not an object,
 * nesting deeper than ENV_MAX_DEPTH, more than ENV_MAX_KEYS keys in one
 * object, a key with a backslash escape, an integer of more than 18 digits
 * or a real number that might overflow a double.
 *
 * Duplicate keys: nothing wins.  A key that appears twice in one object
 * (at any depth) makes the request invalid, as JSON_REJECT_DUPLICATES
 * always did ("duplicate object key"), so no two readers of one request
 * can disagree about what it says.  \u0000 is refused in strings and keys
 * (jansson without JSON_ALLOW_NUL), as are lone UTF-16 surrogates and
 * invalid UTF-8.
 *
 * tests/unit/test_envelope.c holds the adversarial cases;
 * tests/fuzz/fuzz_envelope.c checks every input against jansson. */
#ifndef AXON_HUB_ENVELOPE_H
#define AXON_HUB_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENV_MAX_DEPTH 32 /* nesting the scan reads itself */
#define ENV_MAX_KEYS 32  /* keys in one object it checks for duplicates */

typedef enum env_kind {
    ENV_ABSENT = 0,
    ENV_STRING,
    ENV_INT,
    ENV_REAL,
    ENV_TRUE,
    ENV_FALSE,
    ENV_NULL,
    ENV_OBJECT,
    ENV_ARRAY
} env_kind;

/* A top-level field's value: its text in the scanned buffer (a string's
 * without the quotes, still escaped when `escaped`). */
typedef struct env_value {
    const char *p;
    size_t n;
    env_kind kind;
    bool escaped; /* ENV_STRING with backslash escapes */
    int64_t i;    /* ENV_INT: the value */
} env_value;

enum env_field {
    ENV_F_TYPE,
    ENV_F_TOPIC,
    ENV_F_PAYLOAD,
    ENV_F_ENCODING,
    ENV_F_ID,
    ENV_F_SINCE,
    ENV_F_LIMIT,
    ENV_F_PRESENCE,
    ENV_F_TOKEN,
    ENV_F_NAME,
    ENV_F_RESPONSE_TOPIC, /* a request's MQTT 5.0 properties (serve_req_props) */
    ENV_F_CORRELATION,
    ENV_F_CORRELATION_B64,
    ENV_NFIELDS
};

typedef struct env_req {
    env_value f[ENV_NFIELDS]; /* kind ENV_ABSENT when the field is not there */
} env_req;

/* Scans `len` bytes as one request; 0 with `r` filled, or -1 (see above). */
int env_scan(const void *buf, size_t len, env_req *r);

/* A string value decoded into `out` (v->n + 1 bytes are always enough; it
 * is NUL-terminated); its length. */
size_t env_string(const env_value *v, char *out);

/* Is `v` the string `s`? */
bool env_is(const env_value *v, const char *s);

/* Appends `s` (n bytes of valid UTF-8) to `out` as a JSON string, quoted
 * and escaped exactly as jansson's json_dumps does; returns the end.
 * env_quoted_len() is how many bytes that takes. */
size_t env_quoted_len(const char *s, size_t n);
char *env_quote(char *out, const char *s, size_t n);

#endif
