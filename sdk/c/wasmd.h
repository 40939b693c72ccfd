/*
 * wasmd.h - a single-header C SDK for wasmd plug-ins (the msgpack ABI).
 *
 * A plug-in is a WASI reactor: no main(), only exports. wasmd writes each call's params
 * (a msgpack array) into memory it obtains from our `wasmd_alloc`, calls the export with
 * (ptr, len), and reads one msgpack value back from the (ptr << 32 | len) we return.
 *
 *     #define WASMD_IMPLEMENTATION   // in exactly one .c file
 *     #include "wasmd.h"
 *
 *     WASMD_EXPORT(halve) {                      // callable as PLUGIN.halve
 *         uint32_t n;
 *         int64_t x;
 *         if (!wasmd_read_array(params, &n) || n != 1 || !wasmd_read_int(params, &x))
 *             return wasmd_fail("halve takes [x: int]");
 *         wasmd_writer out = WASMD_WRITER_INIT;
 *         wasmd_write_int(&out, x / 2);
 *         return wasmd_return(&out);
 *     }
 *
 * Build (Debian: clang lld wasi-libc libclang-rt-dev-wasm32):
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 \
 *         -Wl,--strip-all -I sdk/c -o plugin.wasm plugin.c
 *
 * Memory: every buffer is malloc'd. The params buffer is freed when the export returns;
 * the result buffer is kept until the next wasmd_return (the host copies it right after
 * the call), so a plug-in never has to think about either.
 *
 * C99 plus the clang attributes that name wasm imports and exports. No dependency beyond
 * wasi-libc; the wasmd host imports are linked only if used.
 */
#ifndef WASMD_H
#define WASMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- host imports (module "wasmd") ------------------------------------------------- */

#define WASMD_IMPORT(name) __attribute__((import_module("wasmd"), import_name(#name)))

WASMD_IMPORT(log) void wasmd_host_log(int32_t level, const char *ptr, int32_t len);
WASMD_IMPORT(emit) void wasmd_host_emit(const uint8_t *ptr, int32_t len);
WASMD_IMPORT(error) void wasmd_host_error(const char *ptr, int32_t len);
WASMD_IMPORT(config_get) int64_t wasmd_host_config_get(const char *kptr, int32_t klen);
/* Who made the request this call serves (SO_PEERCRED of its connection; a call made
 * through another plug-in sees the request's caller): -1 where there is no socket peer. */
WASMD_IMPORT(caller_uid) int64_t wasmd_caller_uid(void);
WASMD_IMPORT(caller_gid) int64_t wasmd_caller_gid(void);
WASMD_IMPORT(caller_pid) int64_t wasmd_caller_pid(void);
WASMD_IMPORT(send) int32_t wasmd_host_send(const uint8_t *ptr, int32_t len);
WASMD_IMPORT(recv) int32_t wasmd_host_recv(uint8_t *ptr, int32_t cap);

enum { WASMD_DEBUG = 0, WASMD_INFO = 1, WASMD_WARNING = 2, WASMD_ERROR = 3 };

/* Durable state (docs/abi.md, "State"): the plug-in's own keys and values, kept by the
 * daemon across traps, reloads and restarts. A call's writes are committed together when
 * it returns a result, and dropped if it fails or traps; calls that use state run one at a
 * time, so get-then-set in one call is atomic. The imports answer a length, a count, or: */
WASMD_IMPORT(kv_get)
int32_t wasmd_host_kv_get(const void *kptr, int32_t klen, void *vptr, int32_t vcap);
WASMD_IMPORT(kv_set)
int32_t wasmd_host_kv_set(const void *kptr, int32_t klen, const void *vptr, int32_t vlen);
WASMD_IMPORT(kv_delete) int32_t wasmd_host_kv_delete(const void *kptr, int32_t klen);
WASMD_IMPORT(kv_next)
int32_t wasmd_host_kv_next(const void *pptr, int32_t plen, const void *aptr, int32_t alen,
                           void *kptr, int32_t kcap);

enum {
    WASMD_KV_ABSENT = -1,      /* kv_get, kv_next: no such key */
    WASMD_KV_QUOTA = -2,       /* kv_set: over the manifest's [state] max_bytes/max_keys */
    WASMD_KV_UNAVAILABLE = -3, /* no store ([state] enabled = false), or outside a call */
    WASMD_KV_TOO_LARGE = -4,   /* a key over WASMD_KV_MAX_KEY, a value over ..._MAX_VALUE */
    WASMD_KV_FAILED = -5,      /* the store failed (disk full): the call fails anyway */
    WASMD_KV_BUSY = -6,        /* waiting would deadlock (plug-ins calling each other) */
    WASMD_KV_MAX_KEY = 1024,
    WASMD_KV_MAX_VALUE = 1024 * 1024,
};

/* ---- writer: msgpack into a growable buffer ---------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool failed; /* an allocation failed; wasmd_return reports it instead of bad bytes */
} wasmd_writer;

#define WASMD_WRITER_INIT {NULL, 0, 0, false}

void wasmd_write_nil(wasmd_writer *w);
void wasmd_write_bool(wasmd_writer *w, bool v);
void wasmd_write_int(wasmd_writer *w, int64_t v);
void wasmd_write_uint(wasmd_writer *w, uint64_t v);
void wasmd_write_double(wasmd_writer *w, double v);
void wasmd_write_str(wasmd_writer *w, const char *s, size_t len);
void wasmd_write_cstr(wasmd_writer *w, const char *s);
void wasmd_write_bin(wasmd_writer *w, const void *data, size_t len);
/* A str header alone, for a string built from pieces: follow it with exactly `len`
 * bytes of wasmd_write_raw. */
void wasmd_write_str_header(wasmd_writer *w, uint32_t len);
void wasmd_write_raw(wasmd_writer *w, const void *bytes, size_t len);
void wasmd_write_array(wasmd_writer *w, uint32_t count); /* then `count` values */
void wasmd_write_map(wasmd_writer *w, uint32_t count);   /* then `count` key, value pairs */
void wasmd_writer_free(wasmd_writer *w);

/* ---- reader: a cursor over msgpack bytes ------------------------------------------- */

typedef enum {
    WASMD_T_END, /* no bytes left */
    WASMD_T_NIL,
    WASMD_T_BOOL,
    WASMD_T_INT, /* any integer; wasmd_read_int or wasmd_read_uint takes it */
    WASMD_T_FLOAT,
    WASMD_T_STR,
    WASMD_T_BIN,
    WASMD_T_ARRAY,
    WASMD_T_MAP,
    WASMD_T_EXT,
    WASMD_T_INVALID,
} wasmd_type;

typedef struct {
    const uint8_t *pos, *end;
    const char *error; /* why the last failed read failed */
} wasmd_reader;

/*
 * Every read returns false on a type mismatch, a value out of range or truncated input;
 * it then sets r->error and leaves the cursor where it was, so the caller may try
 * another reading of the same value (wasmd_read_int, then wasmd_read_uint, say).
 * Views (str, bin) point into the params buffer: copy them to keep them past the call.
 */
wasmd_reader wasmd_reader_init(const void *data, size_t len);
wasmd_type wasmd_peek(const wasmd_reader *r);
bool wasmd_read_nil(wasmd_reader *r);
bool wasmd_read_bool(wasmd_reader *r, bool *v);
bool wasmd_read_int(wasmd_reader *r, int64_t *v);   /* fails above INT64_MAX */
bool wasmd_read_uint(wasmd_reader *r, uint64_t *v); /* fails below 0 */
bool wasmd_read_double(wasmd_reader *r, double *v); /* floats, and ints converted */
bool wasmd_read_str(wasmd_reader *r, const char **s, uint32_t *len);
bool wasmd_read_bin(wasmd_reader *r, const uint8_t **data, uint32_t *len);
bool wasmd_read_array(wasmd_reader *r, uint32_t *count);
bool wasmd_read_map(wasmd_reader *r, uint32_t *count);
bool wasmd_skip(wasmd_reader *r); /* one whole value, containers included */

/* ---- calls ------------------------------------------------------------------------- */

/* Hand the writer's bytes to the host as the call's result (the SDK now owns them). */
int64_t wasmd_return(wasmd_writer *w);
/* Fail the call with `message` (the client sees error 4, kind guest_error); returns 0. */
int64_t wasmd_fail(const char *message);
/* printf-style line to the daemon log, tagged with the plug-in's name. printf costs
 * ~16 KB of module; wasmd_host_log(level, text, len) logs a ready string without it. */
void wasmd_log(int32_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The manifest's [config] value for `key`, NUL-terminated, malloc'd: free() it. NULL if
 * the key is absent. `len` (may be NULL) receives the length without the NUL. */
char *wasmd_config_get(const char *key, size_t *len);
/* Send the writer's bytes, which must be one msgpack map, as a plugin.custom event. */
void wasmd_emit(const wasmd_writer *w);

/*
 * Streaming calls (docs/abi.md, "send and recv"). A client that calls an export with
 * wasmd.stream gets every value it sends at once, as a chunk; the export's result ends the
 * stream. wasmd_send sends the writer's bytes (exactly one msgpack value, at most 1 MiB)
 * and empties the writer for the next chunk; it waits while the client's window is used up.
 * It returns false when the call is not a stream (a plain call: the value is dropped) or
 * has ended (cancelled, or past its deadline: stop, the call's answer is decided).
 */
bool wasmd_send(wasmd_writer *w);
/* The next value the client pushed (wasmd.push), malloc'd: free() it; `len` receives its
 * length. NULL at the end of the input (wasmd.push_end), when the call is not a stream, or
 * has ended. Waits for a push. Read it with wasmd_reader_init(value, len). */
uint8_t *wasmd_recv(size_t *len);
/* State helpers. A key is a NUL-terminated string here (the imports take any bytes). */
/* The value of `key`, malloc'd (free() it; NULL for an empty value), its length in *len;
 * returns 0, or a negative WASMD_KV_ code (WASMD_KV_ABSENT: no such key). */
int32_t wasmd_kv_get(const char *key, uint8_t **value, size_t *len);
/* Set `key` to `len` bytes; 0 or a negative WASMD_KV_ code (never traps). */
int32_t wasmd_kv_set(const char *key, const void *value, size_t len);
/* 1 if `key` was deleted, 0 if it was absent, or a negative WASMD_KV_ code. */
int32_t wasmd_kv_delete(const char *key);
/* A counter kept as 8 bytes little-endian: adds `delta` (absent counts as 0) and stores
 * the sum in *total; 0 or a negative WASMD_KV_ code. Atomic: the call is a transaction. */
int32_t wasmd_kv_add(const char *key, int64_t delta, int64_t *total);
/* msgpack values: store the writer's bytes under `key`; read them back into a reader
 * (its data malloc'd in *owned: free() it after reading). */
int32_t wasmd_kv_set_value(const char *key, const wasmd_writer *w);
int32_t wasmd_kv_get_value(const char *key, wasmd_reader *r, uint8_t **owned);
/* Keys by prefix, in byte order: the first key after `after` (alen 0: from the start)
 * that starts with `prefix` is copied to `key` (WASMD_KV_MAX_KEY bytes of room); its
 * length, or WASMD_KV_ABSENT when there is none left.
 *     uint8_t k[WASMD_KV_MAX_KEY]; int32_t n = 0;
 *     while ((n = wasmd_kv_next("user:", 5, k, n, k)) >= 0) { ... k[0..n) ... } */
int32_t wasmd_kv_next(const char *prefix, size_t plen, const uint8_t *after, int32_t alen,
                      uint8_t *key);

/* What WASMD_EXPORT expands to: runs `body` over the params, then frees them. */
typedef int64_t (*wasmd_body)(wasmd_reader *params);
int64_t wasmd_dispatch(wasmd_body body, int32_t ptr, int32_t len);

/*
 * WASMD_EXPORT(name) { ... } defines the export `name`, of the ABI's type
 * (ptr: i32, len: i32) -> i64. The body sees `wasmd_reader *params` over the params
 * array and returns wasmd_return(...), wasmd_fail(...), or 0 for nil. The C function
 * is wasmd_export_NAME, so that exports may be called `log` or `free` without clashing
 * with libc.
 */
#define WASMD_EXPORT(name)                                                           \
    static int64_t wasmd_body_##name(wasmd_reader *params);                          \
    __attribute__((export_name(#name))) int64_t wasmd_export_##name(int32_t ptr,     \
                                                                    int32_t len);    \
    int64_t wasmd_export_##name(int32_t ptr, int32_t len) {                          \
        return wasmd_dispatch(wasmd_body_##name, ptr, len);                          \
    }                                                                                \
    static int64_t wasmd_body_##name(wasmd_reader *params)

#ifdef __cplusplus
}
#endif
#endif /* WASMD_H */

/* ==================================================================================== */
#ifdef WASMD_IMPLEMENTATION
#undef WASMD_IMPLEMENTATION /* a second include must not define everything twice */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((export_name("wasmd_alloc"))) int32_t wasmd_alloc(int32_t len);
int32_t wasmd_alloc(int32_t len) {
    /* malloc(0) may return NULL, and pointer 0 would read as "no buffer". */
    void *p = malloc(len > 0 ? (size_t)len : 1);
    /* The host has no way to hear "no memory" from here; trapping fails the call cleanly
     * (error 4) instead of letting the host write the params over address 0. */
    if (p == NULL) __builtin_trap();
    return (int32_t)(uintptr_t)p;
}

/* The last result handed to the host; freed when the next one replaces it. */
static uint8_t *wasmd_last_result;

int64_t wasmd_dispatch(wasmd_body body, int32_t ptr, int32_t len) {
    void *input = (void *)(uintptr_t)(uint32_t)ptr;
    wasmd_reader params = wasmd_reader_init(input, (uint32_t)len);
    int64_t result = body(&params);
    free(input); /* wasmd_alloc gave it to the host; the call is over, so it is ours again */
    return result;
}

/* -- writer -- */

static bool wasmd_reserve(wasmd_writer *w, size_t extra) {
    if (w->failed) return false;
    if (w->cap - w->len >= extra) return true;
    size_t cap = w->cap ? w->cap : 64;
    while (cap - w->len < extra) {
        if (cap > SIZE_MAX / 2) { w->failed = true; return false; }
        cap *= 2;
    }
    uint8_t *data = realloc(w->data, cap);
    if (data == NULL) { w->failed = true; return false; }
    w->data = data;
    w->cap = cap;
    return true;
}

static void wasmd_put(wasmd_writer *w, const void *bytes, size_t n) {
    if (n && wasmd_reserve(w, n)) {
        memcpy(w->data + w->len, bytes, n);
        w->len += n;
    }
}

/* A type byte followed by `size` bytes of `v`, big-endian as msgpack wants. */
static void wasmd_put_be(wasmd_writer *w, uint8_t type, uint64_t v, int size) {
    uint8_t buf[9];
    buf[0] = type;
    for (int i = 0; i < size; i++) buf[1 + i] = (uint8_t)(v >> (8 * (size - 1 - i)));
    wasmd_put(w, buf, (size_t)size + 1);
}

/* The smallest of the three header forms whose length field holds n. */
static void wasmd_put_header(wasmd_writer *w, uint8_t fix, uint32_t fix_max, uint8_t t8,
                             uint8_t t16, uint8_t t32, uint32_t n) {
    if (n <= fix_max && fix) { uint8_t b = (uint8_t)(fix | n); wasmd_put(w, &b, 1); }
    else if (n <= 0xff && t8) wasmd_put_be(w, t8, n, 1);
    else if (n <= 0xffff) wasmd_put_be(w, t16, n, 2);
    else wasmd_put_be(w, t32, n, 4);
}

void wasmd_write_nil(wasmd_writer *w) { wasmd_put(w, "\xc0", 1); }
void wasmd_write_bool(wasmd_writer *w, bool v) { wasmd_put(w, v ? "\xc3" : "\xc2", 1); }

void wasmd_write_uint(wasmd_writer *w, uint64_t v) {
    if (v <= 0x7f) { uint8_t b = (uint8_t)v; wasmd_put(w, &b, 1); }
    else if (v <= 0xff) wasmd_put_be(w, 0xcc, v, 1);
    else if (v <= 0xffff) wasmd_put_be(w, 0xcd, v, 2);
    else if (v <= 0xffffffff) wasmd_put_be(w, 0xce, v, 4);
    else wasmd_put_be(w, 0xcf, v, 8);
}

void wasmd_write_int(wasmd_writer *w, int64_t v) {
    if (v >= 0) wasmd_write_uint(w, (uint64_t)v);
    else if (v >= -32) { uint8_t b = (uint8_t)(int8_t)v; wasmd_put(w, &b, 1); }
    else if (v >= INT8_MIN) wasmd_put_be(w, 0xd0, (uint64_t)v, 1);
    else if (v >= INT16_MIN) wasmd_put_be(w, 0xd1, (uint64_t)v, 2);
    else if (v >= INT32_MIN) wasmd_put_be(w, 0xd2, (uint64_t)v, 4);
    else wasmd_put_be(w, 0xd3, (uint64_t)v, 8);
}

void wasmd_write_double(wasmd_writer *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    wasmd_put_be(w, 0xcb, bits, 8);
}

void wasmd_write_str_header(wasmd_writer *w, uint32_t len) {
    wasmd_put_header(w, 0xa0, 31, 0xd9, 0xda, 0xdb, len);
}

void wasmd_write_raw(wasmd_writer *w, const void *bytes, size_t len) { wasmd_put(w, bytes, len); }

void wasmd_write_str(wasmd_writer *w, const char *s, size_t len) {
    wasmd_write_str_header(w, (uint32_t)len);
    wasmd_put(w, s, len);
}

void wasmd_write_cstr(wasmd_writer *w, const char *s) { wasmd_write_str(w, s, strlen(s)); }

void wasmd_write_bin(wasmd_writer *w, const void *data, size_t len) {
    wasmd_put_header(w, 0, 0, 0xc4, 0xc5, 0xc6, (uint32_t)len);
    wasmd_put(w, data, len);
}

void wasmd_write_array(wasmd_writer *w, uint32_t n) {
    wasmd_put_header(w, 0x90, 15, 0, 0xdc, 0xdd, n);
}

void wasmd_write_map(wasmd_writer *w, uint32_t n) {
    wasmd_put_header(w, 0x80, 15, 0, 0xde, 0xdf, n);
}

void wasmd_writer_free(wasmd_writer *w) {
    free(w->data);
    *w = (wasmd_writer)WASMD_WRITER_INIT;
}

/* -- reader -- */

wasmd_reader wasmd_reader_init(const void *data, size_t len) {
    wasmd_reader r = {(const uint8_t *)data, (const uint8_t *)data + len, NULL};
    return r;
}

wasmd_type wasmd_peek(const wasmd_reader *r) {
    if (r->pos >= r->end) return WASMD_T_END;
    uint8_t b = *r->pos;
    if (b <= 0x7f || b >= 0xe0) return WASMD_T_INT;
    if (b <= 0x8f) return WASMD_T_MAP;
    if (b <= 0x9f) return WASMD_T_ARRAY;
    if (b <= 0xbf) return WASMD_T_STR;
    switch (b) {
    case 0xc0: return WASMD_T_NIL;
    case 0xc2: case 0xc3: return WASMD_T_BOOL;
    case 0xc4: case 0xc5: case 0xc6: return WASMD_T_BIN;
    case 0xc7: case 0xc8: case 0xc9: return WASMD_T_EXT;
    case 0xca: case 0xcb: return WASMD_T_FLOAT;
    case 0xd9: case 0xda: case 0xdb: return WASMD_T_STR;
    case 0xdc: case 0xdd: return WASMD_T_ARRAY;
    case 0xde: case 0xdf: return WASMD_T_MAP;
    default:
        if (b >= 0xcc && b <= 0xd3) return WASMD_T_INT;
        if (b >= 0xd4 && b <= 0xd8) return WASMD_T_EXT;
        return WASMD_T_INVALID; /* 0xc1 */
    }
}

static bool wasmd_bad(wasmd_reader *r, const char *why) {
    r->error = why;
    return false;
}

/* `size` big-endian bytes at p (the caller has checked they are there). */
static uint64_t wasmd_be(const uint8_t *p, int size) {
    uint64_t v = 0;
    for (int i = 0; i < size; i++) v = (v << 8) | p[i];
    return v;
}

/* Decode the header of the value at the cursor without moving it: its type, its inline
 * value or length, and how many header bytes it took. False if the header is cut off. */
static bool wasmd_header(wasmd_reader *r, wasmd_type *type, uint64_t *value, size_t *size) {
    *type = wasmd_peek(r);
    if (*type == WASMD_T_END) return wasmd_bad(r, "expected a value, found the end");
    if (*type == WASMD_T_INVALID) return wasmd_bad(r, "invalid msgpack byte 0xc1");
    uint8_t b = *r->pos;
    int n = 0; /* bytes of length or value after the type byte */
    *value = 0;
    if (b <= 0x7f) *value = b;
    else if (b >= 0xe0) *value = (uint64_t)(int64_t)(int8_t)b;
    else if (b <= 0x9f) *value = b & 0x0f; /* fixmap, fixarray */
    else if (b <= 0xbf) *value = b & 0x1f;
    else if (b == 0xc3) *value = 1;
    else if (b >= 0xd4 && b <= 0xd8) *value = 1u << (b - 0xd4); /* fixext: payload size */
    else {
        static const uint8_t sizes[0x20] = {
            /* c0 */ 0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8,
            /* d0 */ 1, 2, 4, 8, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4,
        };
        n = sizes[b - 0xc0];
        if ((size_t)(r->end - r->pos) < (size_t)n + 1) return wasmd_bad(r, "truncated value");
        *value = wasmd_be(r->pos + 1, n);
        /* Sign-extend int8..int64 so that *value holds the int64 bit pattern. */
        if (b >= 0xd0 && b <= 0xd3 && n < 8 && (*value >> (8 * n - 1)))
            *value |= ~(uint64_t)0 << (8 * n);
    }
    *size = (size_t)n + 1;
    if (*type == WASMD_T_EXT) *size += 1; /* the ext type byte */
    return true;
}

/* Check that `payload` bytes follow a header of `header` bytes; then step over both. */
static bool wasmd_take(wasmd_reader *r, size_t header, uint64_t payload, const uint8_t **at) {
    size_t avail = (size_t)(r->end - r->pos);
    if (avail < header || avail - header < payload) return wasmd_bad(r, "truncated value");
    *at = r->pos + header;
    r->pos += header + payload;
    return true;
}

static bool wasmd_expect(wasmd_reader *r, wasmd_type want, uint64_t *value, size_t *size,
                         const char *why) {
    wasmd_type type;
    if (!wasmd_header(r, &type, value, size)) return false;
    return type == want ? true : wasmd_bad(r, why);
}

bool wasmd_read_nil(wasmd_reader *r) {
    uint64_t v; size_t n;
    if (!wasmd_expect(r, WASMD_T_NIL, &v, &n, "expected nil")) return false;
    r->pos += n;
    return true;
}

bool wasmd_read_bool(wasmd_reader *r, bool *out) {
    uint64_t v; size_t n;
    if (!wasmd_expect(r, WASMD_T_BOOL, &v, &n, "expected a bool")) return false;
    *out = v != 0;
    r->pos += n;
    return true;
}

/* Unsigned types are 0x00-0x7f and 0xcc-0xcf: their value is not a two's complement. */
static bool wasmd_is_unsigned(uint8_t b) { return b <= 0x7f || (b >= 0xcc && b <= 0xcf); }

bool wasmd_read_int(wasmd_reader *r, int64_t *out) {
    uint64_t v; size_t n;
    if (!wasmd_expect(r, WASMD_T_INT, &v, &n, "expected an integer")) return false;
    if (wasmd_is_unsigned(*r->pos) && v > INT64_MAX)
        return wasmd_bad(r, "integer above the int64 range");
    *out = (int64_t)v;
    r->pos += n;
    return true;
}

bool wasmd_read_uint(wasmd_reader *r, uint64_t *out) {
    uint64_t v; size_t n;
    if (!wasmd_expect(r, WASMD_T_INT, &v, &n, "expected an integer")) return false;
    if (!wasmd_is_unsigned(*r->pos) && (int64_t)v < 0)
        return wasmd_bad(r, "negative integer where an unsigned one was expected");
    *out = v;
    r->pos += n;
    return true;
}

bool wasmd_read_double(wasmd_reader *r, double *out) {
    wasmd_type type;
    uint64_t v; size_t n;
    if (!wasmd_header(r, &type, &v, &n)) return false;
    uint8_t b = *r->pos;
    if (type == WASMD_T_INT) *out = wasmd_is_unsigned(b) ? (double)v : (double)(int64_t)v;
    else if (b == 0xcb) memcpy(out, &v, 8);
    else if (b == 0xca) { uint32_t bits = (uint32_t)v; float f; memcpy(&f, &bits, 4); *out = f; }
    else return wasmd_bad(r, "expected a number");
    r->pos += n;
    return true;
}

static bool wasmd_read_bytes(wasmd_reader *r, wasmd_type want, const uint8_t **data,
                             uint32_t *len, const char *why) {
    uint64_t v; size_t n;
    if (!wasmd_expect(r, want, &v, &n, why) || !wasmd_take(r, n, v, data)) return false;
    *len = (uint32_t)v;
    return true;
}

bool wasmd_read_str(wasmd_reader *r, const char **s, uint32_t *len) {
    return wasmd_read_bytes(r, WASMD_T_STR, (const uint8_t **)s, len, "expected a string");
}

bool wasmd_read_bin(wasmd_reader *r, const uint8_t **data, uint32_t *len) {
    return wasmd_read_bytes(r, WASMD_T_BIN, data, len, "expected bin");
}

bool wasmd_read_array(wasmd_reader *r, uint32_t *count) {
    uint64_t v; size_t n;
    if (!wasmd_expect(r, WASMD_T_ARRAY, &v, &n, "expected an array")) return false;
    *count = (uint32_t)v;
    r->pos += n;
    return true;
}

bool wasmd_read_map(wasmd_reader *r, uint32_t *count) {
    uint64_t v; size_t n;
    if (!wasmd_expect(r, WASMD_T_MAP, &v, &n, "expected a map")) return false;
    *count = (uint32_t)v;
    r->pos += n;
    return true;
}

bool wasmd_skip(wasmd_reader *r) {
    /* A count of values still to skip instead of recursion: a hostile nesting depth
     * cannot overflow the (small, fixed) wasm stack. */
    const uint8_t *start = r->pos, *ignored;
    uint64_t pending = 1;
    while (pending > 0) {
        wasmd_type type;
        uint64_t v; size_t n;
        if (!wasmd_header(r, &type, &v, &n)) { r->pos = start; return false; }
        pending--;
        if (type == WASMD_T_ARRAY) { pending += v; r->pos += n; }
        else if (type == WASMD_T_MAP) { pending += 2 * v; r->pos += n; }
        else if (type == WASMD_T_STR || type == WASMD_T_BIN || type == WASMD_T_EXT) {
            if (!wasmd_take(r, n, v, &ignored)) { r->pos = start; return false; }
        } else r->pos += n;
    }
    return true;
}

/* -- calls -- */

int64_t wasmd_return(wasmd_writer *w) {
    if (w->failed) {
        wasmd_writer_free(w);
        return wasmd_fail("out of memory while writing the result");
    }
    if (w->len == 0) { wasmd_writer_free(w); return 0; }
    free(wasmd_last_result); /* the host copied it out when the previous call returned */
    wasmd_last_result = w->data;
    int64_t packed = (int64_t)((uint64_t)(uintptr_t)w->data << 32 | (uint32_t)w->len);
    *w = (wasmd_writer)WASMD_WRITER_INIT;
    return packed;
}

int64_t wasmd_fail(const char *message) {
    wasmd_host_error(message, (int32_t)strlen(message));
    return 0;
}

void wasmd_log(int32_t level, const char *fmt, ...) {
    char small[256];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(small, sizeof small, fmt, args);
    va_end(args);
    if (n < 0) return;
    if ((size_t)n < sizeof small) { wasmd_host_log(level, small, n); return; }
    char *big = malloc((size_t)n + 1); /* a long line: format again into its exact size */
    if (big == NULL) { wasmd_host_log(level, small, (int32_t)sizeof small - 1); return; }
    va_start(args, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, args);
    va_end(args);
    wasmd_host_log(level, big, n);
    free(big);
}

char *wasmd_config_get(const char *key, size_t *len) {
    int64_t packed = wasmd_host_config_get(key, (int32_t)strlen(key));
    if (packed == -1) return NULL;
    uint32_t n = (uint32_t)packed;
    /* The host placed the value through wasmd_alloc (so, malloc) without a terminator;
     * an empty value is 0, no allocation at all, and realloc(NULL, 1) is a malloc. */
    char *value = (char *)(uintptr_t)(uint32_t)((uint64_t)packed >> 32);
    char *grown = realloc(value, (size_t)n + 1);
    if (grown == NULL) { free(value); return NULL; }
    grown[n] = '\0';
    if (len) *len = n;
    return grown;
}

void wasmd_emit(const wasmd_writer *w) {
    if (!w->failed) wasmd_host_emit(w->data, (int32_t)w->len);
}

bool wasmd_send(wasmd_writer *w) {
    bool sent = !w->failed && w->len > 0 && wasmd_host_send(w->data, (int32_t)w->len) == 0;
    w->len = 0; /* the buffer stays for the next chunk */
    w->failed = false;
    return sent;
}

uint8_t *wasmd_recv(size_t *len) {
    /* recv answers -2 while the value needs more room (it stays queued): grow and ask
     * again, up to a pushed value's limit of 1 MiB. */
    for (size_t cap = 256; cap <= ((size_t)4 << 20); cap *= 4) {
        uint8_t *value = malloc(cap);
        if (value == NULL) return NULL;
        int32_t n = wasmd_host_recv(value, (int32_t)cap);
        if (n >= 0) {
            if (len) *len = (size_t)n;
            return value;
        }
        free(value);
        if (n != -2) return NULL;
    }
    return NULL;
}

/* -- state -- */

int32_t wasmd_kv_get(const char *key, uint8_t **value, size_t *len) {
    int32_t klen = (int32_t)strlen(key);
    uint8_t small[64];
    *value = NULL;
    *len = 0;
    int32_t n = wasmd_host_kv_get(key, klen, small, (int32_t)sizeof small);
    if (n <= 0) return n < 0 ? n : 0;
    uint8_t *buffer = malloc((size_t)n);
    if (buffer == NULL) return WASMD_KV_FAILED;
    if ((size_t)n <= sizeof small) {
        memcpy(buffer, small, (size_t)n);
    } else { /* bigger than the first guess: ask again with room for all of it */
        int32_t again = wasmd_host_kv_get(key, klen, buffer, n);
        if (again != n) { free(buffer); return again < 0 ? again : WASMD_KV_FAILED; }
    }
    *value = buffer;
    *len = (size_t)n;
    return 0;
}

int32_t wasmd_kv_set(const char *key, const void *value, size_t len) {
    if (len > WASMD_KV_MAX_VALUE) return WASMD_KV_TOO_LARGE;
    return wasmd_host_kv_set(key, (int32_t)strlen(key), value, (int32_t)len);
}

int32_t wasmd_kv_delete(const char *key) {
    return wasmd_host_kv_delete(key, (int32_t)strlen(key));
}

int32_t wasmd_kv_add(const char *key, int64_t delta, int64_t *total) {
    uint8_t bytes[8] = {0};
    int32_t n = wasmd_host_kv_get(key, (int32_t)strlen(key), bytes, 8);
    if (n < 0 && n != WASMD_KV_ABSENT) return n;
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) value = value << 8 | bytes[i];
    value += (uint64_t)delta; /* wraps, as int64 arithmetic in two's complement would */
    for (int i = 0; i < 8; i++) bytes[i] = (uint8_t)(value >> (8 * i));
    int32_t stored = wasmd_kv_set(key, bytes, 8);
    if (stored == 0 && total) *total = (int64_t)value;
    return stored;
}

int32_t wasmd_kv_set_value(const char *key, const wasmd_writer *w) {
    if (w->failed) return WASMD_KV_FAILED;
    return wasmd_kv_set(key, w->data, w->len);
}

int32_t wasmd_kv_get_value(const char *key, wasmd_reader *r, uint8_t **owned) {
    size_t len = 0;
    int32_t got = wasmd_kv_get(key, owned, &len);
    if (got == 0) *r = wasmd_reader_init(*owned, len);
    return got;
}

int32_t wasmd_kv_next(const char *prefix, size_t plen, const uint8_t *after, int32_t alen,
                      uint8_t *key) {
    return wasmd_host_kv_next(prefix, (int32_t)plen, after, alen > 0 ? alen : 0, key,
                              WASMD_KV_MAX_KEY);
}

#endif /* WASMD_IMPLEMENTATION */
