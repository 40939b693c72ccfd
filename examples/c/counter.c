/*
 * counter.c - a wasmd plug-in in C that keeps its state in wasmd (sdk/c/wasmd.h, the
 * kv_* imports): its count survives traps, reloads and daemon restarts.
 *
 * Build from the repository root, or with `python examples/c/build.py OUT_DIR counter`:
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 \
 *         -Wl,--strip-all -I sdk/c -o counter.wasm examples/c/counter.c
 *
 *     wasmd call counter.incr             # 1, then 2, ... (also after a restart)
 *     wasmd call counter.incr 10          # adds 10
 *     wasmd call counter.remember k '{"any": "value"}'
 *     wasmd call counter.recall k         # {"any": "value"}
 *     wasmd call counter.notes            # ["k"]
 *     wasmd state counter                 # the keys and their sizes (an operator)
 */
#define WASMD_IMPLEMENTATION
#include "wasmd.h"

#include <stdlib.h>
#include <string.h>

#define NOTE "note:"

/* "note:KEY", NUL-terminated, into `name` (room for WASMD_KV_MAX_KEY + 1 bytes); false if
 * the key is too long for it. */
static bool note_key(char *name, const char *key, uint32_t klen) {
    if (klen > WASMD_KV_MAX_KEY - sizeof NOTE) return false;
    memcpy(name, NOTE, sizeof NOTE - 1);
    memcpy(name + sizeof NOTE - 1, key, klen);
    name[sizeof NOTE - 1 + klen] = '\0';
    return true;
}

static int64_t refused(int32_t code) {
    wasmd_log(WASMD_WARNING, "state refused: %d", (int)code);
    return wasmd_fail(code == WASMD_KV_QUOTA ? "over the state quota" : "state unavailable");
}

/* incr [] or [by: int] -> the count after adding (1 by default) */
WASMD_EXPORT(incr) {
    uint32_t n;
    int64_t by = 1, total = 0;
    if (!wasmd_read_array(params, &n) || n > 1 || (n == 1 && !wasmd_read_int(params, &by)))
        return wasmd_fail("incr takes [] or [by: int]");
    int32_t code = wasmd_kv_add("count", by, &total);
    if (code != 0) return refused(code);
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_int(&out, total);
    return wasmd_return(&out);
}

/* crash [] -> adds one, then traps: the addition is rolled back with the call */
WASMD_EXPORT(crash) {
    (void)params;
    int64_t total;
    wasmd_kv_add("count", 1, &total);
    __builtin_trap();
}

/* remember [key: str, value: any] -> nil; the value is kept as msgpack under "note:KEY" */
WASMD_EXPORT(remember) {
    uint32_t n, klen;
    const char *key;
    char name[WASMD_KV_MAX_KEY + 1];
    if (!wasmd_read_array(params, &n) || n != 2 || !wasmd_read_str(params, &key, &klen) ||
        !note_key(name, key, klen))
        return wasmd_fail("remember takes [key: str, value]");
    const uint8_t *value = params->pos;
    if (!wasmd_skip(params)) return wasmd_fail("remember takes [key: str, value]");
    int32_t code = wasmd_kv_set(name, value, (size_t)(params->pos - value));
    return code == 0 ? 0 : refused(code);
}

/* recall [key: str] -> the value remembered, or nil */
WASMD_EXPORT(recall) {
    uint32_t n, klen;
    const char *key;
    char name[WASMD_KV_MAX_KEY + 1];
    if (!wasmd_read_array(params, &n) || n != 1 || !wasmd_read_str(params, &key, &klen) ||
        !note_key(name, key, klen))
        return wasmd_fail("recall takes [key: str]");
    wasmd_reader stored;
    uint8_t *owned = NULL;
    int32_t code = wasmd_kv_get_value(name, &stored, &owned);
    if (code == WASMD_KV_ABSENT) return 0; /* nil */
    if (code != 0) return refused(code);
    size_t len = (size_t)(stored.end - stored.pos);
    wasmd_writer out = {owned, len, len, false}; /* the stored msgpack value, as it is */
    return wasmd_return(&out);
}

/* notes [] -> the keys remembered, in byte order: walked twice with kv_next, to count
 * them and then to write them (a call sees no other call's writes meanwhile). */
static uint32_t walk_notes(wasmd_writer *out) {
    static uint8_t key[2][WASMD_KV_MAX_KEY];
    uint32_t count = 0;
    int32_t n = 0;
    const uint8_t *after = NULL;
    for (;;) {
        uint8_t *found = key[count % 2];
        n = wasmd_kv_next(NOTE, sizeof NOTE - 1, after, n, found);
        if (n < 0) return count;
        if (out) wasmd_write_str(out, (const char *)found + sizeof NOTE - 1, (size_t)n - (sizeof NOTE - 1));
        after = found;
        count++;
    }
}

WASMD_EXPORT(notes) {
    (void)params;
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_array(&out, walk_notes(NULL));
    walk_notes(&out);
    return wasmd_return(&out);
}
