//! selftest.zig - exercises every part of wasmd.zig through the daemon
//! (tests/test_example_zig.py). Zig compiles only what is referenced, so without this
//! most of the SDK would never even be type-checked. Not an example to copy:
//! examples/zig/sum.zig is. Built like it (see examples/zig/build.py).

const std = @import("std");
const wasmd = @import("wasmd");

pub const panic = wasmd.panic;

comptime {
    wasmd.exportCall("echo", echo);
    wasmd.exportCall("second", second);
    wasmd.exportCall("emit", emit);
    wasmd.exportCall("config", config);
    wasmd.exportCall("truncated", truncated);
    wasmd.exportCall("formatted", formatted);
    wasmd.exportCall("oops", oops);
    wasmd.exportCall("crash", crash);
    wasmd.exportCall("whoami", whoami);
    wasmd.exportCall("state", state);
}

/// whoami [] -> [uid, gid, pid] of the caller
fn whoami(call: *wasmd.Call) !void {
    const who = wasmd.caller();
    try call.result.writeArray(3);
    for ([_]i64{ who.uid, who.gid, who.pid }) |id| try call.result.writeInt(id);
}

/// Re-encode one value, every msgpack type the reader knows.
fn copy(r: *wasmd.Reader, w: *wasmd.Writer, depth: u32) !void {
    if (depth > 100) return error.NestedTooDeep;
    switch (r.peek()) {
        .nil => {
            try r.readNil();
            try w.writeNil();
        },
        .bool => try w.writeBool(try r.readBool()),
        .int => try w.writeInt(try r.readInt(i128)),
        .float => try w.writeFloat(try r.readFloat()),
        .str => try w.writeStr(try r.readStr()),
        .bin => try w.writeBin(try r.readBin()),
        .array => {
            const n = try r.readArray();
            try w.writeArray(n);
            for (0..n) |_| try copy(r, w, depth + 1);
        },
        .map => {
            const n = try r.readMap();
            try w.writeMap(n);
            for (0..2 * @as(usize, n)) |_| try copy(r, w, depth + 1);
        },
        .ext => { // wasmd never sends ext; stand in nil so the shape survives
            try r.skip();
            try w.writeNil();
        },
        .end, .invalid => return error.NoValue,
    }
}

/// echo [any...] -> the same array, decoded and encoded again
fn echo(call: *wasmd.Call) !void {
    try copy(&call.params, &call.result, 0);
}

/// second [a, b] -> b, stepping over a whole
fn second(call: *wasmd.Call) !void {
    if ((call.params.readArray() catch 0) != 2) return call.fail("second takes [a, b]");
    try call.params.skip();
    try copy(&call.params, &call.result, 0);
}

/// emit [map] -> nil, the map sent as a plugin.custom event
fn emit(call: *wasmd.Call) !void {
    const p = &call.params;
    if ((p.readArray() catch 0) != 1 or p.peek() != .map) return call.fail("emit takes [map]");
    var event: wasmd.Writer = .{ .gpa = call.arena };
    try copy(p, &event, 0);
    wasmd.emit(&event);
}

/// config [key: str] -> the manifest's value, or nil; also logs it
fn config(call: *wasmd.Call) !void {
    const p = &call.params;
    if ((p.readArray() catch 0) != 1) return call.fail("config takes [key: str]");
    const key = p.readStr() catch return call.fail("config takes [key: str]");
    const value = wasmd.configGet(key);
    wasmd.log(.warning, "config {s} = {s}", .{ key, value orelse "-" });
    if (value) |v| try call.result.writeStr(v) else try call.result.writeNil();
}

/// truncated [] -> reads of cut-off and invalid input fail without moving the cursor
fn truncated(call: *wasmd.Call) !void {
    const cases = [_][]const u8{
        &.{ 0xd9, 5, 'a' }, // str8 of 5 with 1 byte
        &.{ 0xcd, 1 }, // uint16 with 1 byte
        &.{0xc1}, // never used
        &.{ 0x92, 1 }, // array of 2 with 1 item
        &.{ 0xc7, 1 }, // ext8 without its type byte
    };
    try call.result.writeArray(cases.len);
    for (cases, 0..) |bytes, k| {
        var r: wasmd.Reader = .{ .bytes = bytes };
        const outcome = switch (k) {
            0 => if (r.readStr()) |_| error.Unexpected else |err| err,
            1 => if (r.readInt(u64)) |_| error.Unexpected else |err| err,
            else => if (r.skip()) |_| error.Unexpected else |err| err,
        };
        try call.result.writeArray(2);
        try call.result.writeBool(r.pos == 0);
        try call.result.writeStr(@errorName(outcome));
    }
}

/// formatted [n: int] -> fails with a formatted message; also checks readInt's range
fn formatted(call: *wasmd.Call) !void {
    _ = try call.params.readArray();
    const n = call.params.readInt(u8) catch |err| return call.failFmt("not a u8: {s}", .{@errorName(err)});
    return call.failFmt("got {d}", .{n});
}

/// oops [] -> an error that is not call.fail: the SDK names it
fn oops(call: *wasmd.Call) !void {
    _ = call;
    return error.SomethingBroke;
}

/// crash [] -> a panic: logged, then a trap
fn crash(call: *wasmd.Call) !void {
    _ = call;
    @panic("crashed on purpose");
}

/// state [] -> [count after two adds, the value read back, whether "k" was deleted, the
/// keys starting with "k" walked with next, the error of a key over max_key]
fn state(call: *wasmd.Call) !void {
    _ = try wasmd.kv.add("count", 1);
    const count = try wasmd.kv.add("count", 1);
    try wasmd.kv.set("k", "value");
    try wasmd.kv.set("k2", "");
    try wasmd.kv.set("other", "x");
    const value = (try wasmd.kv.get(call.arena, "k")) orelse return call.fail("k is absent");
    const empty = (try wasmd.kv.get(call.arena, "k2")) orelse return call.fail("k2 is absent");
    if (empty.len != 0 or (try wasmd.kv.get(call.arena, "absent")) != null)
        return call.fail("get is wrong");
    var keys: [8][]const u8 = undefined;
    var count_keys: usize = 0;
    var buf: [wasmd.kv.max_key]u8 = undefined;
    var after: []const u8 = "";
    while (try wasmd.kv.next("k", after, &buf)) |found| : (after = found) {
        keys[count_keys] = try call.arena.dupe(u8, found);
        count_keys += 1;
    }
    const deleted = try wasmd.kv.delete("k");
    var note: wasmd.Writer = .{ .gpa = call.arena };
    try note.writeStr("kept as msgpack");
    try wasmd.kv.setValue("note", &note);
    var kept = (try wasmd.kv.getValue(call.arena, "note")) orelse return call.fail("no note");
    if (!std.mem.eql(u8, try kept.readStr(), "kept as msgpack")) return call.fail("bad note");
    _ = try wasmd.kv.delete("note");
    const too_long: [wasmd.kv.max_key + 1]u8 = @splat('x');
    const refusal = if (wasmd.kv.set(&too_long, "")) |_| "none" else |err| @errorName(err);
    try call.result.writeArray(5);
    try call.result.writeInt(count);
    try call.result.writeStr(value);
    try call.result.writeBool(deleted);
    try call.result.writeArray(count_keys);
    for (keys[0..count_keys]) |key| try call.result.writeStr(key);
    try call.result.writeStr(refusal);
}
