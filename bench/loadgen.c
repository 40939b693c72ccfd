/* loadgen: a msgpack-rpc load generator for Unix sockets, small enough not to be the bottleneck.
 *
 *   loadgen latency    SOCKET METHOD WARMUP N|SECONDSs    [PARAM...]
 *   loadgen throughput SOCKET METHOD CONNS DEPTH WARMUP_S SECONDS [PARAM...]
 *
 * Requests are [0, msgid, METHOD, [PARAM...]] with PARAMs positive fixints (0..127), encoded by
 * hand. Responses are framed with a msgpack skipper that knows every type, so any result or
 * error shape parses; notifications ([2, method, params]) are skipped. Every response's msgid
 * must match a request in flight on its connection, or the run fails.
 *
 * latency:    one connection, one request at a time; WARMUP calls unmeasured, then N timed
 *             (or, given as e.g. "2.5s", as many as that much time allows).
 * throughput: CONNS connections on one epoll thread, DEPTH requests in flight on each; for
 *             WARMUP_S seconds responses are not counted, then for SECONDS they are. Then it
 *             stops sending and waits (at most 5 s) for the responses still in flight.
 *
 * Output: one line of JSON on stdout. Exit 0 on success, 1 on a protocol or socket failure
 * (with a message on stderr), 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 4096 /* msgids in flight per connection are tracked in msgid % SLOTS */
#define BUF_SIZE (1 << 20)
#define MAX_PARAMS 15
#define MAX_DEPTH 64 /* nesting of arrays and maps the skipper accepts */

static uint8_t params_enc[1 + MAX_PARAMS];
static size_t params_len;
static const char *method;
static size_t method_len;

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static void fail(const char *what) {
    fprintf(stderr, "loadgen: %s\n", what);
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int connect_to(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) fail("socket path too long");
    strcpy(addr.sun_path, path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die(path);
    return fd;
}

/* Append one request to out; returns its length. */
static size_t encode_request(uint8_t *out, uint32_t msgid) {
    uint8_t *p = out;
    *p++ = 0x94; /* fixarray of 4 */
    *p++ = 0x00; /* type: request */
    if (msgid < 128) {
        *p++ = (uint8_t)msgid;
    } else {
        *p++ = 0xce;
        *p++ = (uint8_t)(msgid >> 24);
        *p++ = (uint8_t)(msgid >> 16);
        *p++ = (uint8_t)(msgid >> 8);
        *p++ = (uint8_t)msgid;
    }
    if (method_len < 32) {
        *p++ = (uint8_t)(0xa0 | method_len);
    } else {
        *p++ = 0xd9;
        *p++ = (uint8_t)method_len;
    }
    memcpy(p, method, method_len);
    p += method_len;
    memcpy(p, params_enc, params_len);
    p += params_len;
    return (size_t)(p - out);
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* The length of the msgpack object at p, 0 if it is not complete yet, -1 if it is invalid. */
static int64_t skip(const uint8_t *p, size_t n, int depth) {
    if (n < 1) return 0;
    if (depth > MAX_DEPTH) return -1;
    uint8_t b = p[0];
    uint64_t items = 0, body = 0;
    size_t head = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 1;
    if ((b & 0xe0) == 0xa0) {
        body = b & 0x1f; /* fixstr */
    } else if ((b & 0xf0) == 0x90) {
        items = b & 0x0f; /* fixarray */
    } else if ((b & 0xf0) == 0x80) {
        items = 2 * (uint64_t)(b & 0x0f); /* fixmap */
    } else {
        switch (b) {
        case 0xcc: case 0xd0: body = 1; break; /* uint8, int8 */
        case 0xcd: case 0xd1: body = 2; break;
        case 0xca: case 0xce: case 0xd2: body = 4; break;
        case 0xcb: case 0xcf: case 0xd3: body = 8; break;
        case 0xd4: body = 2; break; /* fixext 1: type + data */
        case 0xd5: body = 3; break;
        case 0xd6: body = 5; break;
        case 0xd7: body = 9; break;
        case 0xd8: body = 17; break;
        case 0xc4: case 0xd9: case 0xc7: /* bin8, str8, ext8 */
            if (n < 2) return 0;
            head = 2;
            body = p[1] + (b == 0xc7);
            break;
        case 0xc5: case 0xda: case 0xc8: /* 16-bit lengths */
            if (n < 3) return 0;
            head = 3;
            body = be(p + 1, 2) + (b == 0xc8);
            break;
        case 0xc6: case 0xdb: case 0xc9: /* 32-bit lengths */
            if (n < 5) return 0;
            head = 5;
            body = be(p + 1, 4) + (b == 0xc9);
            break;
        case 0xdc: case 0xde: /* array16, map16 */
            if (n < 3) return 0;
            head = 3;
            items = be(p + 1, 2) * (b == 0xde ? 2 : 1);
            break;
        case 0xdd: case 0xdf: /* array32, map32 */
            if (n < 5) return 0;
            head = 5;
            items = be(p + 1, 4) * (b == 0xdf ? 2 : 1);
            break;
        default: /* 0xc1 is never used */
            return -1;
        }
    }
    if (!items) return head + body <= n ? (int64_t)(head + body) : 0;
    size_t at = head;
    for (uint64_t i = 0; i < items; i++) {
        int64_t len = skip(p + at, n - at, depth + 1);
        if (len <= 0) return len;
        at += (size_t)len;
    }
    return (int64_t)at;
}

static int read_uint(const uint8_t *p, uint32_t *out) {
    uint8_t b = p[0];
    if (b <= 0x7f) *out = b;
    else if (b == 0xcc) *out = p[1];
    else if (b == 0xcd) *out = (uint32_t)be(p + 1, 2);
    else if (b == 0xce) *out = (uint32_t)be(p + 1, 4);
    else return -1;
    return 0;
}

enum { MSG_RESPONSE_OK, MSG_RESPONSE_ERROR, MSG_OTHER };

/* Classify one complete message; a response's msgid goes to *msgid. */
static int classify(const uint8_t *p, size_t len, uint32_t *msgid) {
    if (p[0] == 0x93 && len > 1 && p[1] == 0x02) return MSG_OTHER; /* notification */
    if (p[0] != 0x94 || len < 4 || p[1] != 0x01) fail("a message that is not a response");
    if (read_uint(p + 2, msgid) < 0) fail("a response whose msgid is not a uint32");
    int64_t id_len = skip(p + 2, len - 2, 1);
    return p[2 + id_len] == 0xc0 ? MSG_RESPONSE_OK : MSG_RESPONSE_ERROR;
}

typedef struct {
    int fd;
    uint32_t next_id;
    int in_flight;
    uint32_t slots[SLOTS]; /* msgid + 1 of the request in flight in this slot, 0 if free */
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_sent;
    int want_write;
} Conn;

static void track(Conn *c, uint32_t id) {
    if (c->slots[id % SLOTS]) fail("too many requests in flight to track");
    c->slots[id % SLOTS] = id + 1;
    c->in_flight++;
}

static void untrack(Conn *c, uint32_t id) {
    if (c->slots[id % SLOTS] != id + 1) {
        fprintf(stderr, "loadgen: response to msgid %u, which is not in flight\n", id);
        exit(1);
    }
    c->slots[id % SLOTS] = 0;
    c->in_flight--;
}

static void conn_init(Conn *c, const char *path) {
    memset(c, 0, sizeof *c);
    c->fd = connect_to(path);
    c->in = malloc(BUF_SIZE);
    c->out = malloc(BUF_SIZE);
    if (!c->in || !c->out) fail("out of memory");
}

/* Parse every complete message in c->in; returns responses seen, errors into *errors. */
static long conn_parse(Conn *c, long *errors) {
    size_t at = 0;
    long responses = 0;
    while (at < c->in_len) {
        int64_t len = skip(c->in + at, c->in_len - at, 0);
        if (len < 0) fail("invalid msgpack from the server");
        if (len == 0) break;
        uint32_t id;
        int kind = classify(c->in + at, (size_t)len, &id);
        if (kind != MSG_OTHER) {
            untrack(c, id);
            responses++;
            if (kind == MSG_RESPONSE_ERROR) (*errors)++;
        }
        at += (size_t)len;
    }
    memmove(c->in, c->in + at, c->in_len - at);
    c->in_len -= at;
    if (c->in_len == BUF_SIZE) fail("a message larger than the receive buffer");
    return responses;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int latency(const char *path, long warmup, long n, double seconds) {
    Conn *c = calloc(1, sizeof *c);
    if (!c) fail("out of memory");
    conn_init(c, path);
    size_t capacity = n > 0 ? (size_t)n : 65536;
    int64_t *samples = malloc(sizeof(int64_t) * capacity);
    if (!samples) fail("out of memory");
    long errors = 0;
    uint8_t req[128 + 64];
    int64_t until = 0; /* in duration mode, set once the warm-up is over */
    if (seconds > 0) n = LONG_MAX - warmup;
    for (long i = 0; i < warmup + n; i++) {
        if (seconds > 0 && i == warmup) until = now_ns() + (int64_t)(seconds * 1e9);
        if (until && now_ns() >= until) {
            n = i - warmup;
            break;
        }
        if (i >= warmup && (size_t)(i - warmup) == capacity) {
            capacity *= 2;
            samples = realloc(samples, sizeof(int64_t) * capacity);
            if (!samples) fail("out of memory");
        }
        uint32_t id = c->next_id++;
        size_t len = encode_request(req, id);
        track(c, id);
        int64_t start = now_ns();
        if (send(c->fd, req, len, 0) != (ssize_t)len) die("send");
        long got = 0, errs = 0;
        while (!got) {
            ssize_t r = recv(c->fd, c->in + c->in_len, BUF_SIZE - c->in_len, 0);
            if (r <= 0) die("recv (the server closed the connection?)");
            c->in_len += (size_t)r;
            got = conn_parse(c, &errs);
        }
        int64_t elapsed = now_ns() - start;
        if (i >= warmup) {
            samples[i - warmup] = elapsed;
            errors += errs;
        }
    }
    if (n < 1) fail("no call finished in the time given");
    qsort(samples, (size_t)n, sizeof *samples, cmp_i64);
    double sum = 0;
    for (long i = 0; i < n; i++) sum += (double)samples[i];
#define PCT(q) samples[(long)((q) * (double)n) < n ? (long)((q) * (double)n) : n - 1]
    printf("{\"mode\": \"latency\", \"calls\": %ld, \"errors\": %ld, \"mean_ns\": %.0f, "
           "\"min_ns\": %lld, \"p50_ns\": %lld, \"p90_ns\": %lld, \"p99_ns\": %lld, "
           "\"p999_ns\": %lld, \"max_ns\": %lld}\n",
           n, errors, sum / (double)n, (long long)samples[0], (long long)PCT(0.5),
           (long long)PCT(0.9), (long long)PCT(0.99), (long long)PCT(0.999),
           (long long)samples[n - 1]);
    return 0;
}

static void conn_fill(Conn *c, int depth) {
    if (c->out_sent == c->out_len) c->out_sent = c->out_len = 0;
    while (c->in_flight < depth && c->out_len + 256 < BUF_SIZE) {
        uint32_t id = c->next_id++;
        c->out_len += encode_request(c->out + c->out_len, id);
        track(c, id);
    }
}

static void conn_flush(Conn *c, int ep) {
    while (c->out_sent < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (w < 0) die("send");
        c->out_sent += (size_t)w;
    }
    int want = c->out_sent < c->out_len;
    if (want != c->want_write) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
        c->want_write = want;
    }
}

static int throughput(const char *path, int conns, int depth, double warmup_s, double seconds) {
    Conn *cs = calloc((size_t)conns, sizeof *cs);
    if (!cs) fail("out of memory");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < conns; i++) {
        conn_init(&cs[i], path);
        if (fcntl(cs[i].fd, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
    }
    int64_t start = now_ns();
    int64_t measure_from = start + (int64_t)(warmup_s * 1e9);
    int64_t measure_to = measure_from + (int64_t)(seconds * 1e9);
    int64_t give_up = measure_to + 5000000000LL;
    long calls = 0, errors = 0, late = 0, late_errors = 0;
    for (int i = 0; i < conns; i++) {
        conn_fill(&cs[i], depth);
        conn_flush(&cs[i], ep);
    }
    struct epoll_event events[256];
    int sending = 1;
    for (;;) {
        int64_t now = now_ns();
        if (sending && now >= measure_to) sending = 0;
        if (!sending) {
            int left = 0;
            for (int i = 0; i < conns; i++) left += cs[i].in_flight;
            if (!left) break;
            if (now >= give_up) fail("responses still missing 5 s after the run");
        }
        int n = epoll_wait(ep, events, 256, 50);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        now = now_ns();
        for (int k = 0; k < n; k++) {
            Conn *c = events[k].data.ptr;
            if ((events[k].events & (EPOLLHUP | EPOLLERR)) && !(events[k].events & EPOLLIN))
                fail("a connection failed");
            if (events[k].events & EPOLLIN) {
                ssize_t r = recv(c->fd, c->in + c->in_len, BUF_SIZE - c->in_len, 0);
                if (r == 0) fail("the server closed a connection");
                if (r < 0 && errno != EAGAIN) die("recv");
                if (r > 0) {
                    c->in_len += (size_t)r;
                    long errs = 0;
                    long got = conn_parse(c, &errs);
                    if (now >= measure_from && now < measure_to) {
                        calls += got - errs;
                        errors += errs;
                    } else if (now >= measure_to) {
                        late += got;
                        late_errors += errs;
                    }
                }
            }
            if (sending) conn_fill(c, depth);
            conn_flush(c, ep);
        }
    }
    printf("{\"mode\": \"throughput\", \"conns\": %d, \"depth\": %d, \"seconds\": %.3f, "
           "\"calls\": %ld, \"errors\": %ld, \"calls_per_s\": %.1f, \"drained\": %ld, "
           "\"drained_errors\": %ld}\n",
           conns, depth, seconds, calls, errors, (double)calls / seconds, late, late_errors);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen latency SOCKET METHOD WARMUP N|SECONDSs [PARAM...]\n"
            "       loadgen throughput SOCKET METHOD CONNS DEPTH WARMUP_S SECONDS [PARAM...]\n"
            "PARAMs are integers 0..127 (at most %d)\n",
            MAX_PARAMS);
    exit(2);
}

static void encode_params(int argc, char **argv) {
    if (argc > MAX_PARAMS) usage();
    params_enc[0] = (uint8_t)(0x90 | argc);
    for (int i = 0; i < argc; i++) {
        long v = strtol(argv[i], NULL, 10);
        if (v < 0 || v > 127) usage();
        params_enc[1 + i] = (uint8_t)v;
    }
    params_len = 1 + (size_t)argc;
}

int main(int argc, char **argv) {
    if (argc < 4) usage();
    method = argv[3];
    method_len = strlen(method);
    if (method_len > 127) usage();
    if (!strcmp(argv[1], "latency") && argc >= 6) {
        long warmup = atol(argv[4]), n = 0;
        double seconds = 0;
        size_t len = strlen(argv[5]);
        if (len > 1 && argv[5][len - 1] == 's') seconds = atof(argv[5]);
        else n = atol(argv[5]);
        if (warmup < 0 || (n < 1 && seconds <= 0)) usage();
        encode_params(argc - 6, argv + 6);
        return latency(argv[2], warmup, n, seconds);
    }
    if (!strcmp(argv[1], "throughput") && argc >= 8) {
        int conns = atoi(argv[4]), depth = atoi(argv[5]);
        double warmup_s = atof(argv[6]), seconds = atof(argv[7]);
        if (conns < 1 || depth < 1 || depth > SLOTS / 2 || warmup_s < 0 || seconds <= 0) usage();
        encode_params(argc - 8, argv + 8);
        return throughput(argv[2], conns, depth, warmup_s, seconds);
    }
    usage();
}
