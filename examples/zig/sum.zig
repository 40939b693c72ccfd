//! sum.zig - a wasmd plug-in in Zig, on the msgpack ABI through sdk/zig/wasmd.zig.
//!
//! Build from the repository root (Zig 0.17 from PyPI: `pip install ziglang`), or with
//! `python examples/zig/build.py OUT_DIR`:
//!
//!     python -m ziglang build-exe -target wasm32-wasi -fno-entry -rdynamic \
//!         -O ReleaseSmall --stack 65536 --dep wasmd -Mroot=examples/zig/sum.zig \
//!         -Mwasmd=sdk/zig/wasmd.zig -femit-bin=sum.wasm
//!
//! Then drop sum.wasm into a plug-in directory:
//!
//!     wasmd call sum.sum '[1, 2, 3.5]'   # 6.5
//!     wasmd call sum.reverse 'héllo'    # "olléh"
//!     wasmd call sum.fail               # error 4: as asked
//!     wasmd call --stream sum.running '[1, 2, 3]'   # 1, 3, 6, then 6

const std = @import("std");
const wasmd = @import("wasmd");

pub const panic = wasmd.panic;

comptime {
    wasmd.exportCall("sum", sum);
    wasmd.exportCall("reverse", reverse);
    wasmd.exportCall("fail", fail);
    wasmd.exportCall("running", running);
    wasmd.exportCall("lengths", lengths);
}

/// sum [[number, ...]] -> number: an int while every item is one (exact, in 128 bits,
/// refused only if the total leaves msgpack's 64-bit ranges), else a float.
fn sum(call: *wasmd.Call) !void {
    const usage = "sum takes [array of numbers]";
    const p = &call.params;
    if ((p.readArray() catch 0) != 1) return call.fail(usage);
    const n = p.readArray() catch return call.fail(usage);
    var ints: i128 = 0;
    var floats: f64 = 0;
    var any_float = false;
    for (0..n) |_| switch (p.peek()) {
        .int => ints += try p.readInt(i128),
        .float => {
            floats += try p.readFloat();
            any_float = true;
        },
        else => return call.fail(usage),
    };
    if (any_float) return call.result.writeFloat(floats + @as(f64, @floatFromInt(ints)));
    call.result.writeInt(ints) catch |err| switch (err) {
        error.OutOfRange => return call.fail("sum is outside the 64-bit range"),
        else => return err,
    };
}

/// reverse [str] -> str, reversed by code point so that UTF-8 stays UTF-8.
fn reverse(call: *wasmd.Call) !void {
    const usage = "reverse takes [str]";
    const p = &call.params;
    if ((p.readArray() catch 0) != 1) return call.fail(usage);
    const text = p.readStr() catch return call.fail(usage);
    const out = try call.arena.alloc(u8, text.len);
    var view = std.unicode.Utf8View.init(text) catch return call.fail("reverse: invalid UTF-8");
    var it = view.iterator();
    var end = out.len;
    while (it.nextCodepointSlice()) |cp| {
        end -= cp.len;
        @memcpy(out[end..][0..cp.len], cp);
    }
    try call.result.writeStr(out);
}

/// fail [] -> always a guest error.
fn fail(call: *wasmd.Call) !void {
    return call.fail("as asked");
}

/// running [[int, ...]] -> int: called with wasmd.stream, sends each running total as a
/// chunk as it goes; returns the total.
fn running(call: *wasmd.Call) !void {
    const usage = "running takes [array of ints]";
    const p = &call.params;
    if ((p.readArray() catch 0) != 1) return call.fail(usage);
    const n = p.readArray() catch return call.fail(usage);
    var total: i64 = 0;
    var chunk: wasmd.Writer = .{ .gpa = call.arena };
    for (0..n) |_| {
        total +%= p.readInt(i64) catch return call.fail(usage);
        try chunk.writeInt(total);
        _ = call.send(&chunk); // false for a plain call: only the total is answered
    }
    try call.result.writeInt(total);
}

/// lengths [] -> int: for each string pushed to it (wasmd.push), sends its length in bytes,
/// until the client ends its input; returns how many.
fn lengths(call: *wasmd.Call) !void {
    var chunk: wasmd.Writer = .{ .gpa = call.arena };
    var count: i64 = 0;
    while (try call.recv()) |value| {
        var r = value;
        const text = r.readStr() catch return call.fail("lengths takes pushed strings");
        try chunk.writeInt(text.len);
        if (!call.send(&chunk)) break;
        count += 1;
    }
    try call.result.writeInt(count);
}
