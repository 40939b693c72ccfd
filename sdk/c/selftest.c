/*
 * selftest.c - exercises every part of wasmd.h through the daemon (tests/test_example_c.py).
 * Not an example to copy: examples/c/greet.c is. Built like it:
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 \
 *         -Wl,--strip-all -I sdk/c -o selftest.wasm sdk/c/selftest.c
 */
#define WASMD_IMPLEMENTATION
#include "wasmd.h"
#include "wasmd.h" /* a second include must be harmless */

#include <stdlib.h>
#include <string.h>

/* Re-encode one value from r into w, every msgpack type the reader knows. */
static bool copy(wasmd_reader *r, wasmd_writer *w, int depth) {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    const char *s;
    const uint8_t *bytes;
    uint32_t n;
    if (depth > 100) { r->error = "nested too deep"; return false; }
    switch (wasmd_peek(r)) {
    case WASMD_T_NIL:
        if (!wasmd_read_nil(r)) return false;
        wasmd_write_nil(w);
        return true;
    case WASMD_T_BOOL:
        if (!wasmd_read_bool(r, &b)) return false;
        wasmd_write_bool(w, b);
        return true;
    case WASMD_T_INT:
        if (wasmd_read_int(r, &i)) wasmd_write_int(w, i);
        else if (wasmd_read_uint(r, &u)) wasmd_write_uint(w, u);
        else return false;
        return true;
    case WASMD_T_FLOAT:
        if (!wasmd_read_double(r, &d)) return false;
        wasmd_write_double(w, d);
        return true;
    case WASMD_T_STR:
        if (!wasmd_read_str(r, &s, &n)) return false;
        wasmd_write_str(w, s, n);
        return true;
    case WASMD_T_BIN:
        if (!wasmd_read_bin(r, &bytes, &n)) return false;
        wasmd_write_bin(w, bytes, n);
        return true;
    case WASMD_T_ARRAY:
        if (!wasmd_read_array(r, &n)) return false;
        wasmd_write_array(w, n);
        for (uint32_t k = 0; k < n; k++)
            if (!copy(r, w, depth + 1)) return false;
        return true;
    case WASMD_T_MAP:
        if (!wasmd_read_map(r, &n)) return false;
        wasmd_write_map(w, n);
        for (uint64_t k = 0; k < 2 * (uint64_t)n; k++)
            if (!copy(r, w, depth + 1)) return false;
        return true;
    case WASMD_T_EXT: /* wasmd never sends ext; stand in nil so the shape survives */
        if (!wasmd_skip(r)) return false;
        wasmd_write_nil(w);
        return true;
    default:
        r->error = "no value";
        return false;
    }
}

/* echo [any...] -> the same array, decoded and encoded again */
WASMD_EXPORT(echo) {
    wasmd_writer out = WASMD_WRITER_INIT;
    if (!copy(params, &out, 0)) {
        wasmd_writer_free(&out);
        return wasmd_fail(params->error);
    }
    return wasmd_return(&out);
}

/* free [] -> "free": an export may share its name with a libc function */
WASMD_EXPORT(free) {
    (void)params;
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_cstr(&out, "free");
    return wasmd_return(&out);
}

/* skip [a, b] -> b, stepping over a whole */
WASMD_EXPORT(second) {
    uint32_t n;
    if (!wasmd_read_array(params, &n) || n != 2 || !wasmd_skip(params))
        return wasmd_fail("second takes [a, b]");
    wasmd_writer out = WASMD_WRITER_INIT;
    if (!copy(params, &out, 0)) {
        wasmd_writer_free(&out);
        return wasmd_fail(params->error);
    }
    return wasmd_return(&out);
}

/* emit [map] -> nil, the map sent as a plugin.custom event */
WASMD_EXPORT(emit) {
    uint32_t n;
    wasmd_writer event = WASMD_WRITER_INIT;
    if (!wasmd_read_array(params, &n) || n != 1 || wasmd_peek(params) != WASMD_T_MAP ||
        !copy(params, &event, 0)) {
        wasmd_writer_free(&event);
        return wasmd_fail("emit takes [map]");
    }
    wasmd_emit(&event);
    wasmd_writer_free(&event);
    return 0;
}

/* config [key: str] -> the manifest's value, or nil; also logs a long line */
WASMD_EXPORT(config) {
    uint32_t n, len;
    const char *key;
    if (!wasmd_read_array(params, &n) || n != 1 || !wasmd_read_str(params, &key, &len))
        return wasmd_fail("config takes [key: str]");
    char *copy_of_key = malloc((size_t)len + 1);
    if (copy_of_key == NULL) return wasmd_fail("out of memory");
    memcpy(copy_of_key, key, len);
    copy_of_key[len] = '\0';
    size_t value_len;
    char *value = wasmd_config_get(copy_of_key, &value_len);
    wasmd_log(WASMD_WARNING, "config %s = %s; %0300d", copy_of_key, value ? value : "-", 7);
    free(copy_of_key);
    wasmd_writer out = WASMD_WRITER_INIT;
    if (value) wasmd_write_str(&out, value, value_len);
    else wasmd_write_nil(&out);
    free(value);
    return wasmd_return(&out);
}

/* whoami [] -> [uid, gid, pid] of the caller */
WASMD_EXPORT(whoami) {
    (void)params;
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_array(&out, 3);
    wasmd_write_int(&out, wasmd_caller_uid());
    wasmd_write_int(&out, wasmd_caller_gid());
    wasmd_write_int(&out, wasmd_caller_pid());
    return wasmd_return(&out);
}

/* truncated [] -> reads of cut-off and invalid input fail without moving the cursor */
WASMD_EXPORT(truncated) {
    (void)params;
    static const uint8_t cases[][3] = {
        {0xd9, 5, 'a'}, /* str8 of 5 with 1 byte */
        {0xcd, 1, 0},   /* uint16 with 1 byte (the 0 is past len) */
        {0xc1, 0, 0},   /* never used */
        {0x92, 1, 0},   /* array of 2 with 1 item */
    };
    static const size_t lens[] = {3, 2, 1, 2};
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_array(&out, 4);
    for (size_t k = 0; k < 4; k++) {
        wasmd_reader r = wasmd_reader_init(cases[k], lens[k]);
        const char *s;
        uint32_t n;
        uint64_t u;
        bool failed = k == 0   ? !wasmd_read_str(&r, &s, &n)
                      : k == 1 ? !wasmd_read_uint(&r, &u)
                               : !wasmd_skip(&r);
        wasmd_write_array(&out, 2);
        wasmd_write_bool(&out, failed && r.pos == cases[k]);
        wasmd_write_cstr(&out, r.error ? r.error : "");
    }
    return wasmd_return(&out);
}

/* state [] -> [the sum after two adds, the long value's length and its last byte, whether
 * "k" was deleted then found absent, the refusal of a key over the limit] */
WASMD_EXPORT(state) {
    (void)params;
    int64_t total = 0;
    if (wasmd_kv_add("count", 2, &total) != 0 || wasmd_kv_add("count", -1, &total) != 0)
        return wasmd_fail("kv_add refused");
    uint8_t big[300]; /* longer than wasmd_kv_get's first guess: it asks again */
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)i;
    if (wasmd_kv_set("big", big, sizeof big) != 0) return wasmd_fail("kv_set refused");
    uint8_t *value = NULL;
    size_t len = 0;
    if (wasmd_kv_get("big", &value, &len) != 0) return wasmd_fail("kv_get refused");
    size_t big_len = len;
    uint8_t last = value[len - 1];
    free(value);
    wasmd_kv_set("k", "v", 1);
    int32_t deleted = wasmd_kv_delete("k");
    int32_t absent = wasmd_kv_get("k", &value, &len);
    char long_key[WASMD_KV_MAX_KEY + 2];
    memset(long_key, 'x', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_array(&out, 6);
    wasmd_write_int(&out, total);
    wasmd_write_uint(&out, big_len);
    wasmd_write_uint(&out, last);
    wasmd_write_int(&out, deleted);
    wasmd_write_int(&out, absent);
    wasmd_write_int(&out, wasmd_kv_set(long_key, "", 0));
    return wasmd_return(&out);
}
