/*
 * greet.c - a wasmd plug-in in C, on the msgpack ABI through sdk/c/wasmd.h.
 *
 * Build from the repository root (Debian packages clang lld wasi-libc
 * libclang-rt-dev-wasm32), or with `python examples/c/build.py OUT_DIR`:
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 \
 *         -Wl,--strip-all -I sdk/c -o greet.wasm examples/c/greet.c
 *
 * Then drop greet.wasm (and optionally a greet.toml with a [config] greeting) into a
 * plug-in directory:
 *
 *     wasmd call greet.greet world        # "hello, world"
 *     wasmd call greet.sum '[1, 2, 3]'    # 6
 *     wasmd call greet.info               # {"greeting": "hi", "language": "c"}
 *     wasmd call --stream greet.lines "$(printf 'a\nb')"   # a, b, then 2
 */
#define WASMD_IMPLEMENTATION
#include "wasmd.h"

#include <ctype.h>
#include <stdlib.h>

/* greet [name: str] -> "hello, NAME" */
WASMD_EXPORT(greet) {
    static const char hello[] = "hello, ";
    uint32_t count, len;
    const char *name;
    if (!wasmd_read_array(params, &count) || count != 1 || !wasmd_read_str(params, &name, &len))
        return wasmd_fail("greet takes [name: str]");
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_str_header(&out, (uint32_t)(sizeof hello - 1) + len);
    wasmd_write_raw(&out, hello, sizeof hello - 1);
    wasmd_write_raw(&out, name, len);
    return wasmd_return(&out);
}

/* sum [[int, ...]] -> int. The total is kept in 128 bits so that any sum of int64 and
 * uint64 values is exact; only a total outside both 64-bit ranges is refused. */
WASMD_EXPORT(sum) {
    uint32_t count, n;
    if (!wasmd_read_array(params, &count) || count != 1 || !wasmd_read_array(params, &n))
        return wasmd_fail("sum takes [array of ints]");
    __int128 total = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t v;
        uint64_t u;
        if (wasmd_read_int(params, &v)) total += v;
        else if (wasmd_read_uint(params, &u)) total += u; /* above INT64_MAX */
        else return wasmd_fail("sum takes [array of ints]");
    }
    wasmd_writer out = WASMD_WRITER_INIT;
    if (total >= INT64_MIN && total <= INT64_MAX) wasmd_write_int(&out, (int64_t)total);
    else if (total > 0 && total <= UINT64_MAX) wasmd_write_uint(&out, (uint64_t)total);
    else return wasmd_fail("sum is outside the 64-bit range");
    return wasmd_return(&out);
}

/* info [] -> {"greeting": the manifest's [config] greeting or nil, "language": "c"} */
WASMD_EXPORT(info) {
    (void)params; /* any params are ignored */
    size_t len;
    char *greeting = wasmd_config_get("greeting", &len);
    wasmd_log(WASMD_INFO, "info: greeting is %s", greeting ? greeting : "(not configured)");
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_map(&out, 2);
    wasmd_write_cstr(&out, "greeting");
    if (greeting) wasmd_write_str(&out, greeting, len);
    else wasmd_write_nil(&out);
    wasmd_write_cstr(&out, "language");
    wasmd_write_cstr(&out, "c");
    free(greeting);
    return wasmd_return(&out);
}

/* lines [text: str] -> int: called with wasmd.stream, sends each line of `text` as a chunk
 * as soon as it is found; returns how many lines it sent (a plain call: 0). */
WASMD_EXPORT(lines) {
    uint32_t count, len;
    const char *text;
    if (!wasmd_read_array(params, &count) || count != 1 || !wasmd_read_str(params, &text, &len))
        return wasmd_fail("lines takes [text: str]");
    wasmd_writer chunk = WASMD_WRITER_INIT;
    int64_t sent = 0;
    for (uint32_t start = 0, i = 0; start < len; start = ++i) {
        while (i < len && text[i] != '\n') i++;
        wasmd_write_str(&chunk, text + start, i - start);
        if (!wasmd_send(&chunk)) break; /* not a stream, or the call has ended */
        sent++;
    }
    wasmd_writer_free(&chunk);
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_int(&out, sent);
    return wasmd_return(&out);
}

/* shout [] -> int: sends back each string pushed to it (wasmd.push) in capitals, until the
 * client ends its input (wasmd.push_end); returns how many. */
WASMD_EXPORT(shout) {
    (void)params;
    wasmd_writer chunk = WASMD_WRITER_INIT;
    int64_t count = 0;
    size_t len;
    uint8_t *value;
    while ((value = wasmd_recv(&len)) != NULL) {
        wasmd_reader r = wasmd_reader_init(value, len);
        const char *s;
        uint32_t n;
        if (!wasmd_read_str(&r, &s, &n)) {
            free(value);
            wasmd_writer_free(&chunk);
            return wasmd_fail("shout takes pushed strings");
        }
        wasmd_write_str_header(&chunk, n);
        for (uint32_t i = 0; i < n; i++) {
            char c = (char)toupper((unsigned char)s[i]);
            wasmd_write_raw(&chunk, &c, 1);
        }
        free(value);
        if (!wasmd_send(&chunk)) break;
        count++;
    }
    wasmd_writer_free(&chunk);
    wasmd_writer out = WASMD_WRITER_INIT;
    wasmd_write_int(&out, count);
    return wasmd_return(&out);
}
