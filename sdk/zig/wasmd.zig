//! wasmd.zig - the Zig SDK for wasmd plug-ins (the msgpack ABI). Zig 0.17.
//!
//! wasmd writes each call's params (a msgpack array) into memory it obtains from our
//! `wasmd_alloc`, calls the export with (ptr, len), and reads one msgpack value back from
//! the (ptr << 32 | len) the export returns. This file hides all of that:
//!
//!     const wasmd = @import("wasmd"); // the module given by -Mwasmd=..., below
//!     pub const panic = wasmd.panic; // panics reach the daemon log, then trap
//!
//!     comptime {
//!         wasmd.exportCall("double", double); // callable as PLUGIN.double
//!     }
//!
//!     fn double(call: *wasmd.Call) !void {
//!         if ((try call.params.readArray()) != 1) return call.fail("double takes [x: int]");
//!         const x = call.params.readInt(i64) catch return call.fail("double takes [x: int]");
//!         try call.result.writeInt(2 * @as(i128, x));
//!     }
//!
//! Build a reactor (no _start; exports only):
//!
//!     python -m ziglang build-exe -target wasm32-wasi -fno-entry -rdynamic \
//!         -O ReleaseSmall --stack 65536 --dep wasmd -Mroot=plugin.zig \
//!         -Mwasmd=path/to/sdk/zig/wasmd.zig -femit-bin=plugin.wasm
//!
//! (`--stack`: Zig's default 16 MiB stack would be every instance's minimum memory.)
//!
//! Memory: one arena per call. Everything a call allocates (its params, `call.arena`, its
//! result, config values) lives until the next call begins, so plug-in code frees nothing.

const std = @import("std");

// ---- host imports (module "wasmd"); a module imports only those it references ----------

pub const host = struct {
    pub extern "wasmd" fn log(level: i32, ptr: [*]const u8, len: usize) void;
    pub extern "wasmd" fn emit(ptr: [*]const u8, len: usize) void;
    pub extern "wasmd" fn @"error"(ptr: [*]const u8, len: usize) void;
    pub extern "wasmd" fn config_get(kptr: [*]const u8, klen: usize) i64;
    pub extern "wasmd" fn caller_uid() i64;
    pub extern "wasmd" fn caller_gid() i64;
    pub extern "wasmd" fn caller_pid() i64;
    pub extern "wasmd" fn send(ptr: [*]const u8, len: usize) i32;
    pub extern "wasmd" fn recv(ptr: [*]u8, cap: usize) i32;
};

pub const Level = enum(i32) { debug = 0, info = 1, warning = 2, @"error" = 3 };

// ---- memory ------------------------------------------------------------------------------

var arena_state = std.heap.ArenaAllocator.init(std.heap.wasm_allocator);
var in_call = false;

/// Kept by the arena across calls, so that a steady load does not go back to the
/// allocator every call; anything above it (one huge call) is returned to the allocator
/// for reuse (a wasm memory itself never shrinks).
const arena_keep = 64 * 1024;

/// The host calls this for a call's params just before the export, and during a call
/// for the values that `config_get` returns. Only the former happens outside a call, and
/// by then the host has copied the previous result out: the arena can start afresh.
export fn wasmd_alloc(len: i32) i32 {
    if (!in_call) _ = arena_state.reset(.{ .retain_with_limit = arena_keep });
    // No way to tell the host "no memory" from here: a trap fails the call cleanly.
    const buf = arena_state.allocator().alloc(u8, @as(u32, @bitCast(len))) catch @trap();
    return @bitCast(@as(u32, @intCast(@intFromPtr(buf.ptr))));
}

// ---- calls -----------------------------------------------------------------------------

pub const Call = struct {
    /// A cursor over the params array; start with `readArray` for the count.
    params: Reader,
    /// Freed when the next call begins.
    arena: std.mem.Allocator,
    /// The call's result: write exactly one value, or none for nil.
    result: Writer,
    failure: ?[]const u8 = null,

    /// Fail the call with `message` (the client sees error 4, kind guest_error):
    /// `return call.fail("...")`. The message must outlive the call's body.
    pub fn fail(call: *Call, message: []const u8) error{GuestError} {
        call.failure = message;
        return error.GuestError;
    }

    /// Streaming calls (docs/abi.md, "send and recv"): send `w`'s bytes, exactly one msgpack
    /// value, as the call's next chunk, then empty `w` for the next one. Waits while the
    /// client's window is used up. False when the call is not a stream (a plain call: the
    /// value is dropped) or has ended (cancelled, or past its deadline: stop).
    pub fn send(call: *Call, w: *Writer) bool {
        _ = call;
        const items = w.list.items;
        const sent = items.len > 0 and host.send(items.ptr, items.len) == 0;
        w.list.clearRetainingCapacity();
        return sent;
    }

    /// The next value the client pushed (wasmd.push), as a Reader over its msgpack bytes
    /// (in the call's arena); null at the end of the input, or when the call is not a
    /// stream or has ended. Waits for a push.
    pub fn recv(call: *Call) error{OutOfMemory}!?Reader {
        // recv answers -2 while the value needs more room (it stays queued): grow, ask again.
        var cap: usize = 256;
        while (cap <= 4 << 20) : (cap *= 4) {
            const buf = try call.arena.alloc(u8, cap);
            const n = host.recv(buf.ptr, cap);
            if (n >= 0) return .{ .bytes = buf[0..@intCast(n)] };
            if (n != -2) return null;
        }
        return null;
    }

    /// As `fail`, with a formatted message.
    pub fn failFmt(call: *Call, comptime fmt: []const u8, args: anytype) error{GuestError} {
        return call.fail(std.fmt.allocPrint(call.arena, fmt, args) catch "out of memory");
    }
};

/// Export `body` as `name`, of the ABI's type (ptr: i32, len: i32) -> i64. Call it in a
/// `comptime` block. An error out of `body` fails the call: `call.fail`'s message, or
/// "NAME failed: ERROR" (OutOfMemory, TypeMismatch ...) for any other.
pub fn exportCall(comptime name: []const u8, comptime body: fn (*Call) anyerror!void) void {
    const wrapper = struct {
        fn run(ptr: i32, len: i32) callconv(.c) i64 {
            in_call = true;
            defer in_call = false;
            const base: [*]const u8 = @ptrFromInt(@as(u32, @bitCast(ptr)));
            const arena = arena_state.allocator();
            var call: Call = .{
                .params = .{ .bytes = base[0..@as(u32, @bitCast(len))] },
                .arena = arena,
                .result = .{ .gpa = arena },
            };
            body(&call) catch |err| {
                if (call.failure) |message| return fail(message);
                // Concatenated by hand: std.fmt would add kilobytes to every plug-in.
                const prefix = name ++ " failed: ";
                var buf: [prefix.len + 64]u8 = undefined;
                const error_name = @errorName(err);
                const n = @min(error_name.len, buf.len - prefix.len);
                @memcpy(buf[0..prefix.len], prefix);
                @memcpy(buf[prefix.len..][0..n], error_name[0..n]);
                return fail(buf[0 .. prefix.len + n]);
            };
            return returnBytes(call.result.bytes());
        }
    };
    @export(&wrapper.run, .{ .name = name });
}

/// The export's return value for msgpack `bytes`, which must stay put until the next
/// call (arena memory does): the host copies them out after the export returns.
pub fn returnBytes(bytes: []const u8) i64 {
    if (bytes.len == 0) return 0; // nil
    const ptr: u64 = @intFromPtr(bytes.ptr);
    return @bitCast(ptr << 32 | @as(u32, @intCast(bytes.len)));
}

/// Report `message` as the call's error; returns 0, the export's return value.
pub fn fail(message: []const u8) i64 {
    host.@"error"(message.ptr, message.len);
    return 0;
}

/// A formatted line to the daemon log, tagged with the plug-in's name. Long lines are cut.
pub fn log(level: Level, comptime fmt: []const u8, args: anytype) void {
    var buf: [512]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, fmt, args) catch buf[0..];
    host.log(@backingInt(level), line.ptr, line.len);
}

/// The manifest's [config] value for `key`, or null. Valid until the next call.
pub fn configGet(key: []const u8) ?[]const u8 {
    const packed_value = host.config_get(key.ptr, key.len);
    if (packed_value == -1) return null;
    const bits: u64 = @bitCast(packed_value);
    const len: u32 = @truncate(bits);
    // An empty value comes back as 0, without an allocation: no pointer to make.
    if (len == 0) return "";
    const ptr: [*]const u8 = @ptrFromInt(@as(u32, @truncate(bits >> 32)));
    return ptr[0..len];
}

/// Who made the request this call serves: the credentials of its connection's peer (a call
/// made through another plug-in sees the request's caller); -1 each without a socket peer.
pub const Caller = struct { uid: i64, gid: i64, pid: i64 };

pub fn caller() Caller {
    return .{ .uid = host.caller_uid(), .gid = host.caller_gid(), .pid = host.caller_pid() };
}

/// Send the writer's bytes, which must be one msgpack map, as a plugin.custom event.
pub fn emit(w: *const Writer) void {
    host.emit(w.list.items.ptr, w.list.items.len);
}

/// Use as the root's `pub const panic`: the message goes to the daemon log, then the call
/// traps (error 4) and wasmd replaces the instance.
pub const panic = std.debug.FullPanic(panicToLog);

fn panicToLog(message: []const u8, _: ?usize) noreturn {
    @branchHint(.cold);
    host.log(@backingInt(Level.@"error"), message.ptr, message.len);
    @trap();
}

// ---- durable state (docs/abi.md, "State") -----------------------------------------------

/// The plug-in's own keys and values, kept by the daemon across traps, reloads and
/// restarts. A call's writes are committed together when it answers a result, and dropped
/// when it fails or traps; calls that use state run one at a time, so a get then a set in
/// one call is atomic. A refusal is an error here, never a trap.
pub const kv = struct {
    extern "wasmd" fn kv_get(kptr: [*]const u8, klen: usize, vptr: [*]u8, vcap: usize) i32;
    extern "wasmd" fn kv_set(kptr: [*]const u8, klen: usize, vptr: [*]const u8, vlen: usize) i32;
    extern "wasmd" fn kv_delete(kptr: [*]const u8, klen: usize) i32;
    extern "wasmd" fn kv_next(
        pptr: [*]const u8,
        plen: usize,
        aptr: [*]const u8,
        alen: usize,
        kptr: [*]u8,
        kcap: usize,
    ) i32;

    pub const max_key = 1024;
    pub const max_value = 1024 * 1024;
    /// Quota: over [state] max_bytes or max_keys; Unavailable: no store ([state] enabled =
    /// false) or outside a call; TooLarge: a key over max_key, a value over max_value;
    /// Failed: the store failed (a full disk; the call fails anyway); Busy: waiting would
    /// deadlock (plug-ins calling each other through wasmd.call while holding state).
    pub const Error = error{ Quota, Unavailable, TooLarge, Failed, Busy, OutOfMemory };

    fn check(code: i32) Error!usize {
        return switch (code) {
            -2 => error.Quota,
            -3 => error.Unavailable,
            -4 => error.TooLarge,
            -6 => error.Busy,
            else => if (code < 0) error.Failed else @intCast(code),
        };
    }

    /// The value of `key` (allocated from `gpa`, e.g. `call.arena`), or null if absent.
    pub fn get(gpa: std.mem.Allocator, key: []const u8) Error!?[]u8 {
        var small: [64]u8 = undefined;
        const first = kv_get(key.ptr, key.len, &small, small.len);
        if (first == -1) return null;
        const len = try check(first);
        const value = try gpa.alloc(u8, len);
        if (len <= small.len) {
            @memcpy(value, small[0..len]);
        } else if (try check(kv_get(key.ptr, key.len, value.ptr, value.len)) != len) {
            return error.Failed;
        }
        return value;
    }

    pub fn set(key: []const u8, value: []const u8) Error!void {
        _ = try check(kv_set(key.ptr, key.len, value.ptr, value.len));
    }

    /// Whether `key` was there.
    pub fn delete(key: []const u8) Error!bool {
        return try check(kv_delete(key.ptr, key.len)) == 1;
    }

    /// A counter kept as 8 bytes little-endian: adds `delta` (absent counts as 0) and
    /// returns the sum (wrapping, as i64 arithmetic in two's complement would).
    pub fn add(key: []const u8, delta: i64) Error!i64 {
        var bytes: [8]u8 = @splat(0);
        const got = kv_get(key.ptr, key.len, &bytes, bytes.len);
        if (got != -1) _ = try check(got);
        const total = std.mem.readInt(i64, &bytes, .little) +% delta;
        std.mem.writeInt(i64, &bytes, total, .little);
        try set(key, &bytes);
        return total;
    }

    /// A msgpack value (the writer's bytes) kept under `key`.
    pub fn setValue(key: []const u8, w: *const Writer) Error!void {
        try set(key, w.bytes());
    }

    /// The msgpack value kept under `key`, as a reader over a copy in `gpa`, or null.
    pub fn getValue(gpa: std.mem.Allocator, key: []const u8) Error!?Reader {
        const value = (try get(gpa, key)) orelse return null;
        return .{ .bytes = value };
    }

    /// The first key after `after` (empty: from the start) that starts with `prefix`, in
    /// byte order, copied into `out`; null when there is none left. Walk with:
    ///     var buf: [wasmd.kv.max_key]u8 = undefined;
    ///     var key: []const u8 = "";
    ///     while (try wasmd.kv.next("user:", key, &buf)) |found| : (key = found) { ... }
    /// (`after` may be the previous result, in `out`: the host reads it before writing.)
    pub fn next(prefix: []const u8, after: []const u8, out: *[max_key]u8) Error!?[]const u8 {
        const n = kv_next(prefix.ptr, prefix.len, after.ptr, after.len, out, out.len);
        if (n == -1) return null;
        return out[0..try check(n)];
    }
};

// ---- msgpack writer --------------------------------------------------------------------

pub const Writer = struct {
    gpa: std.mem.Allocator,
    list: std.ArrayList(u8) = .empty,

    pub const Error = error{ OutOfMemory, OutOfRange };

    pub fn bytes(w: *const Writer) []const u8 {
        return w.list.items;
    }

    fn put(w: *Writer, data: []const u8) error{OutOfMemory}!void {
        try w.list.appendSlice(w.gpa, data);
    }

    /// A type byte, then `value` big-endian in `size` bytes, as msgpack wants.
    fn putBig(w: *Writer, tag: u8, value: u64, comptime size: usize) error{OutOfMemory}!void {
        var buf: [1 + size]u8 = undefined;
        buf[0] = tag;
        std.mem.writeInt(@Int(.unsigned, 8 * size), buf[1..], @truncate(value), .big);
        try w.put(&buf);
    }

    /// The smallest header form whose length field holds `n`; `fix` 0 means none.
    fn header(w: *Writer, fix: u8, fix_max: u32, t8: u8, t16: u8, t32: u8, n: usize) Error!void {
        if (n > std.math.maxInt(u32)) return error.OutOfRange;
        if (fix != 0 and n <= fix_max) return w.put(&.{fix | @as(u8, @intCast(n))});
        if (t8 != 0 and n <= 0xff) return w.putBig(t8, n, 1);
        if (n <= 0xffff) return w.putBig(t16, n, 2);
        return w.putBig(t32, n, 4);
    }

    pub fn writeNil(w: *Writer) Error!void {
        try w.put(&.{0xc0});
    }

    pub fn writeBool(w: *Writer, value: bool) Error!void {
        try w.put(&.{if (value) 0xc3 else 0xc2});
    }

    /// Any integer type; OutOfRange unless it fits int64 or uint64, msgpack's ranges.
    pub fn writeInt(w: *Writer, value: anytype) Error!void {
        const v: i128 = value;
        if (v >= 0) {
            if (v <= 0x7f) return w.put(&.{@intCast(v)});
            if (v <= 0xff) return w.putBig(0xcc, @intCast(v), 1);
            if (v <= 0xffff) return w.putBig(0xcd, @intCast(v), 2);
            if (v <= 0xffff_ffff) return w.putBig(0xce, @intCast(v), 4);
            if (v <= std.math.maxInt(u64)) return w.putBig(0xcf, @intCast(v), 8);
            return error.OutOfRange;
        }
        const bits: u64 = @bitCast(std.math.cast(i64, v) orelse return error.OutOfRange);
        if (v >= -32) return w.put(&.{@truncate(bits)});
        if (v >= std.math.minInt(i8)) return w.putBig(0xd0, bits, 1);
        if (v >= std.math.minInt(i16)) return w.putBig(0xd1, bits, 2);
        if (v >= std.math.minInt(i32)) return w.putBig(0xd2, bits, 4);
        return w.putBig(0xd3, bits, 8);
    }

    pub fn writeFloat(w: *Writer, value: f64) Error!void {
        try w.putBig(0xcb, @bitCast(value), 8);
    }

    pub fn writeStr(w: *Writer, s: []const u8) Error!void {
        try w.header(0xa0, 31, 0xd9, 0xda, 0xdb, s.len);
        try w.put(s);
    }

    pub fn writeBin(w: *Writer, data: []const u8) Error!void {
        try w.header(0, 0, 0xc4, 0xc5, 0xc6, data.len);
        try w.put(data);
    }

    /// Then `count` values.
    pub fn writeArray(w: *Writer, count: usize) Error!void {
        try w.header(0x90, 15, 0, 0xdc, 0xdd, count);
    }

    /// Then `count` key, value pairs.
    pub fn writeMap(w: *Writer, count: usize) Error!void {
        try w.header(0x80, 15, 0, 0xde, 0xdf, count);
    }
};

// ---- msgpack reader --------------------------------------------------------------------

pub const Type = enum { end, nil, bool, int, float, str, bin, array, map, ext, invalid };

/// A cursor over msgpack bytes. A read that fails leaves the cursor where it was, so the
/// caller may try another reading of the same value. Strings and bins are views into the
/// params: valid for the call.
pub const Reader = struct {
    bytes: []const u8,
    pos: usize = 0,

    pub const Error = error{ Truncated, TypeMismatch, OutOfRange, InvalidMsgpack };

    pub fn peek(r: *const Reader) Type {
        if (r.pos >= r.bytes.len) return .end;
        return switch (r.bytes[r.pos]) {
            0x00...0x7f, 0xcc...0xd3, 0xe0...0xff => .int,
            0x80...0x8f, 0xde, 0xdf => .map,
            0x90...0x9f, 0xdc, 0xdd => .array,
            0xa0...0xbf, 0xd9...0xdb => .str,
            0xc0 => .nil,
            0xc1 => .invalid,
            0xc2, 0xc3 => .bool,
            0xc4...0xc6 => .bin,
            0xc7...0xc9, 0xd4...0xd8 => .ext,
            0xca, 0xcb => .float,
        };
    }

    /// The value at the cursor, decoded without moving: its type, its inline value (ints,
    /// bools, float bits) or payload length (str, bin, ext) or item count, and header size.
    const Header = struct { type: Type, value: i128, size: usize };

    fn header(r: *const Reader) Error!Header {
        const t = r.peek();
        if (t == .end) return error.Truncated;
        if (t == .invalid) return error.InvalidMsgpack;
        const b = r.bytes[r.pos];
        const n: usize = switch (b) {
            0xc4, 0xc7, 0xcc, 0xd0, 0xd9 => 1,
            0xc5, 0xc8, 0xcd, 0xd1, 0xda, 0xdc, 0xde => 2,
            0xc6, 0xc9, 0xca, 0xce, 0xd2, 0xdb, 0xdd, 0xdf => 4,
            0xcb, 0xcf, 0xd3 => 8,
            else => 0,
        };
        // ext headers carry a type byte after the length
        const size = 1 + n + @intFromBool(t == .ext);
        if (r.bytes.len - r.pos < size) return error.Truncated;
        const field = r.bytes[r.pos + 1 ..][0..n];
        var raw: u64 = 0;
        for (field) |byte| raw = raw << 8 | byte;
        const value: i128 = switch (b) {
            0x00...0x7f => b,
            0xe0...0xff => @as(i8, @bitCast(b)),
            0x80...0x9f => b & 0x0f,
            0xa0...0xbf => b & 0x1f,
            0xc3 => 1,
            0xd0 => @as(i8, @bitCast(@as(u8, @truncate(raw)))),
            0xd1 => @as(i16, @bitCast(@as(u16, @truncate(raw)))),
            0xd2 => @as(i32, @bitCast(@as(u32, @truncate(raw)))),
            0xd3 => @as(i64, @bitCast(raw)),
            0xd4...0xd8 => @as(u32, 1) << @intCast(b - 0xd4), // fixext payload size
            else => raw,
        };
        return .{ .type = t, .value = value, .size = size };
    }

    fn expect(r: *const Reader, want: Type) Error!Header {
        const h = try r.header();
        return if (h.type == want) h else error.TypeMismatch;
    }

    pub fn readNil(r: *Reader) Error!void {
        r.pos += (try r.expect(.nil)).size;
    }

    pub fn readBool(r: *Reader) Error!bool {
        const h = try r.expect(.bool);
        r.pos += h.size;
        return h.value != 0;
    }

    /// Any msgpack integer as `T` (i64, u64, i128, u8 ...); OutOfRange if it does not fit.
    pub fn readInt(r: *Reader, comptime T: type) Error!T {
        const h = try r.expect(.int);
        const v = std.math.cast(T, h.value) orelse return error.OutOfRange;
        r.pos += h.size;
        return v;
    }

    /// A float, or an int converted.
    pub fn readFloat(r: *Reader) Error!f64 {
        const h = try r.header();
        const v: f64 = switch (h.type) {
            .int => @floatFromInt(h.value),
            .float => if (h.size == 9)
                @bitCast(@as(u64, @intCast(h.value)))
            else
                @as(f32, @bitCast(@as(u32, @intCast(h.value)))),
            else => return error.TypeMismatch,
        };
        r.pos += h.size;
        return v;
    }

    fn payload(r: *Reader, want: Type) Error![]const u8 {
        const h = try r.expect(want);
        const len: usize = @intCast(h.value);
        if (r.bytes.len - r.pos - h.size < len) return error.Truncated;
        const start = r.pos + h.size;
        r.pos = start + len;
        return r.bytes[start..][0..len];
    }

    pub fn readStr(r: *Reader) Error![]const u8 {
        return r.payload(.str);
    }

    pub fn readBin(r: *Reader) Error![]const u8 {
        return r.payload(.bin);
    }

    /// The item count; the items follow.
    pub fn readArray(r: *Reader) Error!u32 {
        const h = try r.expect(.array);
        r.pos += h.size;
        return @intCast(h.value);
    }

    /// The pair count; keys and values follow, alternating.
    pub fn readMap(r: *Reader) Error!u32 {
        const h = try r.expect(.map);
        r.pos += h.size;
        return @intCast(h.value);
    }

    /// Step over one whole value, containers included.
    pub fn skip(r: *Reader) Error!void {
        // A count of values still to skip instead of recursion: hostile nesting cannot
        // overflow the wasm stack.
        const start = r.pos;
        errdefer r.pos = start;
        var pending: u64 = 1;
        while (pending > 0) : (pending -= 1) {
            const h = try r.header();
            switch (h.type) {
                .array => pending += @intCast(h.value),
                .map => pending += 2 * @as(u64, @intCast(h.value)),
                .str, .bin, .ext => {
                    if (r.bytes.len - r.pos - h.size < h.value) return error.Truncated;
                    r.pos += @intCast(h.value);
                },
                else => {},
            }
            r.pos += h.size;
        }
    }
};
