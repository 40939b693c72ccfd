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

const std = @import("std");
const wasmd = @import("wasmd");

pub const panic = wasmd.panic;

comptime {
    wasmd.exportCall("sum", sum);
    wasmd.exportCall("reverse", reverse);
    wasmd.exportCall("fail", fail);
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
