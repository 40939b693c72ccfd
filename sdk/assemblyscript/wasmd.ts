// wasmd guest helpers for AssemblyScript 0.28: the msgpack ABI (DESIGN.md section 3).
//
// Use from a plug-in's entry file:
//
//   import { call, stringParam, Value } from "../../../sdk/assemblyscript/wasmd";
//   export { wasmd_alloc } from "../../../sdk/assemblyscript/wasmd";
//
//   function helloImpl(params: Value[]): Value {
//     return Value.fromString("hello, " + stringParam(params, 0));
//   }
//   export function hello(ptr: usize, len: usize): i64 {
//     return call(ptr, len, helloImpl);
//   }
//
// and build with the minimal runtime, sending aborts to the host's log:
//
//   npx asc assembly/index.ts --outFile plugin.wasm --optimize --runtime minimal \
//       --use abort=../../sdk/assemblyscript/wasmd/abortHandler
//
// The `--use` value is this file's name as asc sees it, relative to the folder asc runs in
// (here a plug-in two levels below the repository root), followed by the function's name.
//
// Theory of operation. The host asks `wasmd_alloc` for a buffer, writes the msgpack
// encoding of the request's params array into it and calls the export with (ptr, len).
// `call` decodes the params into `Value`s, frees that buffer, runs the handler and encodes
// its result into one buffer kept for the whole instance; it returns ptr << 32 | len and the
// host copies the bytes out before the next call can overwrite them.
//
// Memory. Host-facing buffers are unmanaged (`heap.alloc`), so the garbage collector never
// sees them. Everything else is managed. With `--runtime minimal` nothing collects by itself,
// so `call` collects first thing: at that point no managed object is on the stack and all
// garbage from earlier calls goes. (`incremental` works too but is larger; `stub` never
// frees, so a long-lived plug-in would grow until it hits its memory ceiling.)
//
// Errors. AssemblyScript has no exceptions to catch, so a handler reports failure with
// `fail(message)`: the message goes to the host at once, and whatever the handler then
// returns is discarded. The `*Param` helpers call `fail` themselves on a missing or
// mistyped param and return a neutral value, so a handler can use their results without
// checking. Handlers are passed as plain functions: AssemblyScript has no closures.

// --- host imports (only the ones a module calls end up in its import section) ---------------

@external("wasmd", "log")
declare function hostLog(level: i32, ptr: usize, len: usize): void;

@external("wasmd", "emit")
declare function hostEmit(ptr: usize, len: usize): void;

@external("wasmd", "error")
declare function hostError(ptr: usize, len: usize): void;

@external("wasmd", "config_get")
declare function hostConfigGet(keyPtr: usize, keyLen: usize): i64;

@external("wasmd", "caller_uid")
declare function hostCallerUid(): i64;

@external("wasmd", "caller_gid")
declare function hostCallerGid(): i64;

@external("wasmd", "caller_pid")
declare function hostCallerPid(): i64;
@external("wasmd", "send")
declare function hostSend(ptr: usize, len: usize): i32;

@external("wasmd", "recv")
declare function hostRecv(ptr: usize, cap: usize): i32;

// --- memory shared with the host -------------------------------------------------------------

/** Called by the host to place a call's input (or a config value) in guest memory. */
export function wasmd_alloc(len: usize): usize {
  // at least one byte, so that even an empty config value gets a block we can free
  return heap.alloc(len > 0 ? len : 1);
}

function packPtrLen(ptr: usize, len: usize): i64 {
  return (<i64>ptr << 32) | <i64>len;
}

// --- the call wrapper -------------------------------------------------------------------------

let failed = false;

/** Run one msgpack-ABI call: decode the params array at `ptr`, run `handler`, return its
 *  result to the host, or nothing once `fail` has been called. */
export function call(ptr: usize, len: usize, handler: (params: Value[]) => Value): i64 {
  failed = false;
  __collect();
  const reader = new Reader(ptr, len);
  const params = reader.readAll();
  heap.free(ptr);
  const problem = reader.error;
  if (problem !== null) {
    fail("cannot decode the params: " + problem);
    return 0;
  }
  if (params.kind != Kind.Array) {
    fail("params must be an array, got " + params.kindName());
    return 0;
  }
  const result = handler(params.asArray());
  if (failed) return 0;
  out.reset();
  out.value(result, 0);
  return packPtrLen(out.ptr, out.len);
}

/** Report this call as failed with `message` (the client gets a guest error, code 4).
 *  Only the first message of a call is kept; returns nil for `return fail(...)`. */
export function fail(message: string): Value {
  if (!failed) {
    failed = true;
    const bytes = String.UTF8.encode(message, false, String.UTF8.ErrorMode.REPLACE);
    hostError(changetype<usize>(bytes), <usize>bytes.byteLength);
  }
  return Value.nil();
}

/** Whether `fail` has been called during this call. */
export function hasFailed(): bool {
  return failed;
}

/** The runtime's `abort` (failed assertions, out-of-bounds array access...): log why, then
 *  trap. Wire it with `--use abort=<path>/abortHandler`; otherwise the module imports
 *  `env.abort`, which wasmd links as a trap that cannot say where the abort came from. */
export function abortHandler(
  message: string | null,
  fileName: string | null,
  line: u32,
  column: u32,
): void {
  const what = message !== null ? message : "abort";
  const where = fileName !== null ? fileName : "?";
  log(Level.Error, what + " at " + where + ":" + line.toString() + ":" + column.toString());
  unreachable();
}

// --- host services ----------------------------------------------------------------------------

/** The level of a `log` line, as the host numbers them. */
export enum Level {
  Debug = 0,
  Info = 1,
  Warning = 2,
  Error = 3,
}

/** Write one line to the daemon's log, tagged with the plug-in's name. */
export function log(level: Level, message: string): void {
  const bytes = String.UTF8.encode(message, false, String.UTF8.ErrorMode.REPLACE);
  hostLog(<i32>level, changetype<usize>(bytes), <usize>bytes.byteLength);
}

/** Publish a `plugin.custom` event; `fields` must be a map (see `Value.map`). */
export function emit(fields: Value): void {
  // the result buffer is free to borrow: the result is encoded only after the handler
  out.reset();
  out.value(fields, 0);
  hostEmit(out.ptr, out.len);
}

/** The value of `key` in the manifest's `[config]` table, or null. */
/**
 * Who made the request a call serves: its connection's peer credentials (a call made through
 * another plug-in sees the request's caller); -1 each without a socket peer.
 */
export class Caller {
  constructor(public uid: i64, public gid: i64, public pid: i64) {}
}

/** The caller of the request the running call serves. */
export function caller(): Caller {
  return new Caller(hostCallerUid(), hostCallerGid(), hostCallerPid());
}

export function configGet(key: string): string | null {
  const bytes = String.UTF8.encode(key, false, String.UTF8.ErrorMode.REPLACE);
  const packed = hostConfigGet(changetype<usize>(bytes), <usize>bytes.byteLength);
  if (packed == -1) return null;
  const ptr = <usize>(<u64>packed >> 32);
  const len = <usize>(<u64>packed & 0xffffffff);
  const value = String.UTF8.decodeUnsafe(ptr, len);
  heap.free(ptr); // the host placed it through wasmd_alloc: it is ours now
  return value;
}

/** Streaming calls (docs/abi.md, "send and recv"): send `value` as the call's next chunk.
 *  Waits while the client's window is used up. False when the call is not a stream (a
 *  plain call: the value is dropped) or has ended (cancelled, or past its deadline: stop). */
export function send(value: Value): bool {
  // the result buffer is free to borrow: the result is encoded only after the handler
  out.reset();
  out.value(value, 0);
  return hostSend(out.ptr, out.len) == 0;
}

/** The next value the client pushed (`wasmd.push`); null at the end of the input, or when
 *  the call is not a stream or has ended. Waits for a push. */
export function recv(): Value | null {
  // recv answers -2 while the value needs more room (it stays queued): grow, ask again.
  for (let cap: usize = 256; cap <= (<usize>4 << 20); cap *= 4) {
    const buffer = heap.alloc(cap);
    const n = hostRecv(buffer, cap);
    if (n >= 0) {
      const reader = new Reader(buffer, <usize>n);
      const value = reader.readAll();
      heap.free(buffer);
      return reader.error === null ? value : null;
    }
    heap.free(buffer);
    if (n != -2) return null;
  }
  return null;
}

// --- durable state (docs/abi.md, "State") ---------------------------------------------------
//
// The plug-in's own keys and values, kept by the daemon across traps, reloads and restarts.
// A call's writes are committed together when it answers a result, and dropped when it
// fails (`fail`) or traps; calls that use state run one at a time, so a get then a set in
// one call is atomic. A refusal never traps: `kvStatus()` says what the last kv function
// got (0, or one of the KV_ codes). Keys are strings here (UTF-8); the imports take bytes.

@external("wasmd", "kv_get")
declare function hostKvGet(kptr: usize, klen: usize, vptr: usize, vcap: usize): i32;
@external("wasmd", "kv_set")
declare function hostKvSet(kptr: usize, klen: usize, vptr: usize, vlen: usize): i32;
@external("wasmd", "kv_delete")
declare function hostKvDelete(kptr: usize, klen: usize): i32;
@external("wasmd", "kv_next")
declare function hostKvNext(pptr: usize, plen: usize, aptr: usize, alen: usize, kptr: usize, kcap: usize): i32;

export const KV_ABSENT: i32 = -1; // no such key
export const KV_QUOTA: i32 = -2; // over [state] max_bytes or max_keys
export const KV_UNAVAILABLE: i32 = -3; // no store ([state] enabled = false), or outside a call
export const KV_TOO_LARGE: i32 = -4; // a key over KV_MAX_KEY, a value over KV_MAX_VALUE bytes
export const KV_FAILED: i32 = -5; // the store failed (a full disk): the call fails anyway
export const KV_BUSY: i32 = -6; // waiting would deadlock (plug-ins calling each other)
export const KV_MAX_KEY: i32 = 1024;
export const KV_MAX_VALUE: i32 = 1024 * 1024;

let kvLast: i32 = 0;

/** What the last kv function got: 0, or a KV_ code. */
export function kvStatus(): i32 {
  return kvLast;
}

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s, false, String.UTF8.ErrorMode.REPLACE);
}

/** The value of `key`, or null (absent: kvStatus() is KV_ABSENT; or refused). */
export function kvGet(key: string): Uint8Array | null {
  const k = utf8(key);
  const small = new Uint8Array(64);
  const n = hostKvGet(changetype<usize>(k), <usize>k.byteLength, small.dataStart, 64);
  kvLast = n < 0 ? n : 0;
  if (n < 0) return null;
  if (n <= 64) return small.subarray(0, n);
  const value = new Uint8Array(n);
  const again = hostKvGet(changetype<usize>(k), <usize>k.byteLength, value.dataStart, <usize>n);
  if (again != n) {
    kvLast = again < 0 ? again : KV_FAILED;
    return null;
  }
  return value;
}

/** Set `key`; 0 or a KV_ code. */
export function kvSet(key: string, value: Uint8Array): i32 {
  const k = utf8(key);
  kvLast = hostKvSet(changetype<usize>(k), <usize>k.byteLength, value.dataStart, <usize>value.length);
  return kvLast;
}

/** 1 if `key` was deleted, 0 if it was absent, or a KV_ code. */
export function kvDelete(key: string): i32 {
  const k = utf8(key);
  const n = hostKvDelete(changetype<usize>(k), <usize>k.byteLength);
  kvLast = n < 0 ? n : 0;
  return n;
}

/** A counter kept as 8 bytes little-endian: adds `delta` (absent counts as 0) and returns
 *  the sum; 0 with kvStatus() set if refused. */
export function kvAdd(key: string, delta: i64): i64 {
  const k = utf8(key);
  const bytes = new Uint8Array(8);
  const got = hostKvGet(changetype<usize>(k), <usize>k.byteLength, bytes.dataStart, 8);
  if (got < 0 && got != KV_ABSENT) {
    kvLast = got;
    return 0;
  }
  const total = load<i64>(bytes.dataStart) + delta; // wasm memory is little-endian
  store<i64>(bytes.dataStart, total);
  return kvSet(key, bytes) == 0 ? total : 0;
}

/** Every key that starts with `prefix`, in byte order (walked with kv_next). */
export function kvKeys(prefix: string): string[] {
  const p = utf8(prefix);
  const keys: string[] = [];
  const buffer = heap.alloc(2 * KV_MAX_KEY); // the previous key, and room for the next
  let after = buffer;
  let afterLen = 0;
  kvLast = 0;
  for (;;) {
    const into = after == buffer ? buffer + KV_MAX_KEY : buffer;
    const n = hostKvNext(changetype<usize>(p), <usize>p.byteLength, after, afterLen, into, KV_MAX_KEY);
    if (n < 0) {
      if (n != KV_ABSENT) kvLast = n;
      break;
    }
    keys.push(String.UTF8.decodeUnsafe(into, n));
    after = into;
    afterLen = n;
  }
  heap.free(buffer);
  return keys;
}

/** Keep a msgpack value under `key`; 0 or a KV_ code. */
export function kvSetValue(key: string, value: Value): i32 {
  const w = new Writer();
  w.value(value, 0);
  const bytes = new Uint8Array(<i32>w.len);
  memory.copy(bytes.dataStart, w.ptr, w.len);
  heap.free(w.ptr);
  return kvSet(key, bytes);
}

/** The msgpack value kept under `key`, or null (absent, refused, or not msgpack). */
export function kvGetValue(key: string): Value | null {
  const bytes = kvGet(key);
  if (bytes === null) return null;
  const reader = new Reader(bytes.dataStart, <usize>bytes.length);
  const value = reader.readAll();
  return reader.error === null ? value : null;
}

// --- params -----------------------------------------------------------------------------------

/** Param `index`, or nil after `fail` if there is no such param. */
export function param(params: Value[], index: i32): Value {
  if (index < params.length) return params[index];
  fail("param " + index.toString() + ": missing (got " + params.length.toString() + " params)");
  return Value.nil();
}

function mismatch(index: i32, wanted: string, got: Value): void {
  fail("param " + index.toString() + ": expected " + wanted + ", got " + got.kindName());
}

/** Param `index` as a string; "" after `fail` if it is not one. */
export function stringParam(params: Value[], index: i32): string {
  const value = param(params, index);
  if (value.kind == Kind.Str) return value.asString();
  if (!failed) mismatch(index, "a string", value);
  return "";
}

/** Param `index` as a signed 64-bit integer; 0 after `fail` if it is not one. */
export function intParam(params: Value[], index: i32): i64 {
  const value = param(params, index);
  if (value.kind == Kind.Int) return value.asI64();
  if (!failed) mismatch(index, "an integer in i64 range", value);
  return 0;
}

/** Param `index` as a float, integers included; 0 after `fail` if it is not a number. */
export function numberParam(params: Value[], index: i32): f64 {
  const value = param(params, index);
  if (value.isNumber()) return value.asF64();
  if (!failed) mismatch(index, "a number", value);
  return 0;
}

// --- msgpack values ---------------------------------------------------------------------------

export enum Kind {
  Nil,
  Bool,
  /** an integer in i64 range */
  Int,
  /** an integer above i64's range (decoding yields Int whenever it fits) */
  UInt,
  Float,
  Str,
  Bin,
  Array,
  Map,
  Ext,
}

/** One msgpack value: `kind` says which of the fields holds it. */
export class Value {
  kind: Kind = Kind.Nil;
  private bits: i64 = 0; // Bool (0/1), Int, UInt (as bits), Ext's type
  private float: f64 = 0;
  private text: string = "";
  private bytes: Uint8Array | null = null; // Bin, Ext
  private items: Value[] | null = null; // Array, Map keys
  private values: Value[] | null = null; // Map values, parallel to items

  static nil(): Value {
    return new Value();
  }

  static fromBool(b: bool): Value {
    const v = new Value();
    v.kind = Kind.Bool;
    v.bits = b ? 1 : 0;
    return v;
  }

  static fromI64(n: i64): Value {
    const v = new Value();
    v.kind = Kind.Int;
    v.bits = n;
    return v;
  }

  static fromU64(n: u64): Value {
    if (n <= <u64>i64.MAX_VALUE) return Value.fromI64(<i64>n);
    const v = new Value();
    v.kind = Kind.UInt;
    v.bits = <i64>n;
    return v;
  }

  static fromF64(x: f64): Value {
    const v = new Value();
    v.kind = Kind.Float;
    v.float = x;
    return v;
  }

  static fromString(s: string): Value {
    const v = new Value();
    v.kind = Kind.Str;
    v.text = s;
    return v;
  }

  static fromBytes(bytes: Uint8Array): Value {
    const v = new Value();
    v.kind = Kind.Bin;
    v.bytes = bytes;
    return v;
  }

  static array(items: Value[]): Value {
    const v = new Value();
    v.kind = Kind.Array;
    v.items = items;
    return v;
  }

  /** An empty map; add entries with `set`. */
  static map(): Value {
    const v = new Value();
    v.kind = Kind.Map;
    v.items = [];
    v.values = [];
    return v;
  }

  static ext(tag: i8, data: Uint8Array): Value {
    const v = new Value();
    v.kind = Kind.Ext;
    v.bits = tag;
    v.bytes = data;
    return v;
  }

  /** Append an entry to this map (keys keep their order); returns this for chaining. */
  set(key: string, value: Value): Value {
    return this.setEntry(Value.fromString(key), value);
  }

  setEntry(key: Value, value: Value): Value {
    assert(this.kind == Kind.Map, "set on a value that is not a map");
    this.items!.push(key);
    this.values!.push(value);
    return this;
  }

  /** The value under string key `key` if this is a map that has it, else null. */
  get(key: string): Value | null {
    if (this.kind != Kind.Map) return null;
    const keys = this.items!;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i].kind == Kind.Str && keys[i].text == key) return this.values![i];
    }
    return null;
  }

  isNumber(): bool {
    return this.kind == Kind.Int || this.kind == Kind.UInt || this.kind == Kind.Float;
  }

  // The accessors return a neutral value for the wrong kind: check `kind` first.

  asBool(): bool {
    return this.kind == Kind.Bool && this.bits != 0;
  }

  asI64(): i64 {
    return this.kind == Kind.Int ? this.bits : 0;
  }

  asU64(): u64 {
    return this.kind == Kind.UInt || (this.kind == Kind.Int && this.bits >= 0) ? <u64>this.bits : 0;
  }

  /** A float, or an integer converted to one (possibly rounding). */
  asF64(): f64 {
    if (this.kind == Kind.Float) return this.float;
    if (this.kind == Kind.Int) return <f64>this.bits;
    if (this.kind == Kind.UInt) return <f64>(<u64>this.bits);
    return 0;
  }

  asString(): string {
    return this.kind == Kind.Str ? this.text : "";
  }

  /** Bin's bytes, or Ext's payload. */
  asBytes(): Uint8Array {
    const bytes = this.bytes;
    return bytes !== null ? bytes : new Uint8Array(0);
  }

  extType(): i8 {
    return this.kind == Kind.Ext ? <i8>this.bits : 0;
  }

  /** Array's items, or Map's keys. */
  asArray(): Value[] {
    const items = this.items;
    return items !== null ? items : [];
  }

  /** Map's values, parallel to `asArray()`'s keys. */
  mapValues(): Value[] {
    const values = this.values;
    return values !== null ? values : [];
  }

  /** The msgpack name of this value's type, for error messages. */
  kindName(): string {
    switch (this.kind) {
      case Kind.Nil: return "nil";
      case Kind.Bool: return "bool";
      case Kind.Int: return "int";
      case Kind.UInt: return "int";
      case Kind.Float: return "float";
      case Kind.Str: return "str";
      case Kind.Bin: return "bin";
      case Kind.Array: return "array";
      case Kind.Map: return "map";
      default: return "ext";
    }
  }
}

// --- encoding ---------------------------------------------------------------------------------

/** A growable unmanaged byte buffer, reused from call to call. */
class Writer {
  ptr: usize = 0;
  len: usize = 0;
  private cap: usize = 0;

  reset(): void {
    this.len = 0;
  }

  /** Room for `n` more bytes; returns where they go. */
  private reserve(n: usize): usize {
    const needed = this.len + n;
    if (needed > this.cap) {
      let cap = this.cap > 0 ? this.cap : 256;
      while (cap < needed) cap <<= 1;
      // unlike C's, AssemblyScript's realloc refuses a null pointer
      this.ptr = this.ptr == 0 ? heap.alloc(cap) : heap.realloc(this.ptr, cap);
      this.cap = cap;
    }
    const at = this.ptr + this.len;
    this.len = needed;
    return at;
  }

  u8(b: u32): void {
    store<u8>(this.reserve(1), <u8>b);
  }

  u16(marker: u32, n: u32): void {
    const at = this.reserve(3);
    store<u8>(at, <u8>marker);
    store<u16>(at + 1, bswap<u16>(<u16>n));
  }

  u32(marker: u32, n: u32): void {
    const at = this.reserve(5);
    store<u8>(at, <u8>marker);
    store<u32>(at + 1, bswap<u32>(n));
  }

  u64(marker: u32, n: u64): void {
    const at = this.reserve(9);
    store<u8>(at, <u8>marker);
    store<u64>(at + 1, bswap<u64>(n));
  }

  raw(src: usize, n: usize): void {
    memory.copy(this.reserve(n), src, n);
  }

  /** A length header: fix form below `fixLimit` (0: none), else 8 bits where msgpack has
   *  that form (`marker8` != 0), else 16 or 32 bits. */
  header(len: usize, fixMarker: u32, fixLimit: usize, marker8: u32, marker16: u32, marker32: u32): void {
    if (len < fixLimit) this.u8(fixMarker | <u32>len);
    else if (marker8 != 0 && len <= 0xff) {
      this.u8(marker8);
      this.u8(<u32>len);
    } else if (len <= 0xffff) this.u16(marker16, <u32>len);
    else this.u32(marker32, <u32>len);
  }

  uint(n: u64): void {
    if (n < 0x80) this.u8(<u32>n);
    else if (n <= 0xff) {
      this.u8(0xcc);
      this.u8(<u32>n);
    } else if (n <= 0xffff) this.u16(0xcd, <u32>n);
    else if (n <= 0xffffffff) this.u32(0xce, <u32>n);
    else this.u64(0xcf, n);
  }

  negative(n: i64): void {
    if (n >= -32) this.u8(<u32>(<u8>n)); // negative fixint: the byte is the two's complement
    else if (n >= -128) {
      this.u8(0xd0);
      this.u8(<u32>(<u8>n));
    } else if (n >= -32768) this.u16(0xd1, <u32>(<u16>n));
    else if (n >= -2147483648) this.u32(0xd2, <u32>n);
    else this.u64(0xd3, <u64>n);
  }

  string(s: string): void {
    const size = <usize>String.UTF8.byteLength(s);
    this.header(size, 0xa0, 32, 0xd9, 0xda, 0xdb);
    const at = this.reserve(size);
    // REPLACE: a lone surrogate becomes U+FFFD (still 3 bytes), so the str is valid UTF-8
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, at, false, String.UTF8.ErrorMode.REPLACE);
  }

  value(v: Value, depth: i32): void {
    // a cycle built by hand (a map holding itself) would otherwise recurse until the stack
    // overflows; MAX_DEPTH is far beyond any real result
    assert(depth <= MAX_DEPTH, "result nested too deeply (a cycle?)");
    switch (v.kind) {
      case Kind.Nil:
        this.u8(0xc0);
        break;
      case Kind.Bool:
        this.u8(v.asBool() ? 0xc3 : 0xc2);
        break;
      case Kind.Int: {
        const n = v.asI64();
        if (n >= 0) this.uint(<u64>n);
        else this.negative(n);
        break;
      }
      case Kind.UInt:
        this.uint(v.asU64());
        break;
      case Kind.Float:
        this.u64(0xcb, reinterpret<u64>(v.asF64()));
        break;
      case Kind.Str:
        this.string(v.asString());
        break;
      case Kind.Bin: {
        const bytes = v.asBytes();
        this.header(<usize>bytes.length, 0, 0, 0xc4, 0xc5, 0xc6);
        this.raw(bytes.dataStart, <usize>bytes.length);
        break;
      }
      case Kind.Array: {
        const items = v.asArray();
        this.header(<usize>items.length, 0x90, 16, 0, 0xdc, 0xdd);
        for (let i = 0; i < items.length; i++) this.value(items[i], depth + 1);
        break;
      }
      case Kind.Map: {
        const keys = v.asArray();
        const values = v.mapValues();
        this.header(<usize>keys.length, 0x80, 16, 0, 0xde, 0xdf);
        for (let i = 0; i < keys.length; i++) {
          this.value(keys[i], depth + 1);
          this.value(values[i], depth + 1);
        }
        break;
      }
      default: {
        const data = v.asBytes();
        const n = data.length;
        if (n == 1) this.u8(0xd4);
        else if (n == 2) this.u8(0xd5);
        else if (n == 4) this.u8(0xd6);
        else if (n == 8) this.u8(0xd7);
        else if (n == 16) this.u8(0xd8);
        else this.header(<usize>n, 0, 0, 0xc7, 0xc8, 0xc9);
        this.u8(<u32>(<u8>v.extType()));
        this.raw(data.dataStart, <usize>n);
      }
    }
  }
}

const out = new Writer();

// --- decoding ---------------------------------------------------------------------------------

// Deep enough for any real request, shallow enough that nested one-byte arrays cannot
// overflow the guest's stack (the host's msgpack packer stops at 512 too).
const MAX_DEPTH = 512;

/** Reads msgpack from guest memory; the first problem lands in `error` and the rest of the
 *  input is ignored (values read after it are nil). */
class Reader {
  error: string | null = null;
  private pos: usize;

  constructor(private start: usize, private len: usize) {
    this.pos = start;
  }

  /** Exactly one value; trailing bytes are an error. */
  readAll(): Value {
    const value = this.read(0);
    if (this.error === null && this.pos != this.start + this.len) this.problem("trailing bytes after the value");
    return value;
  }

  private problem(reason: string): Value {
    if (this.error === null) this.error = reason + " at byte " + (this.pos - this.start).toString();
    this.pos = this.start + this.len; // stop everything after
    return Value.nil();
  }

  /** Where the next `n` bytes are, or 0 (never a heap address) with `error` set if the
   *  input is shorter. */
  private take(n: usize): usize {
    if (this.start + this.len - this.pos < n) {
      this.problem("unexpected end of input");
      return 0;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private uint(width: usize): u64 {
    const at = this.take(width);
    if (at == 0) return 0;
    if (width == 1) return <u64>load<u8>(at);
    if (width == 2) return <u64>bswap<u16>(load<u16>(at));
    if (width == 4) return <u64>bswap<u32>(load<u32>(at));
    return bswap<u64>(load<u64>(at));
  }

  private bin(n: usize): Value {
    const at = this.take(n);
    if (at == 0) return Value.nil();
    const bytes = new Uint8Array(<i32>n);
    memory.copy(bytes.dataStart, at, n);
    return Value.fromBytes(bytes);
  }

  private str(n: usize): Value {
    const at = this.take(n);
    if (at == 0) return Value.nil();
    return Value.fromString(String.UTF8.decodeUnsafe(at, n));
  }

  private ext(n: usize): Value {
    const tag = <i8>this.uint(1);
    const data = this.bin(n);
    return this.error === null ? Value.ext(tag, data.asBytes()) : Value.nil();
  }

  private array(n: usize, depth: i32): Value {
    const items = new Array<Value>();
    for (let i: usize = 0; i < n && this.error === null; i++) items.push(this.read(depth + 1));
    return Value.array(items);
  }

  private map(n: usize, depth: i32): Value {
    const map = Value.map();
    for (let i: usize = 0; i < n && this.error === null; i++) {
      const key = this.read(depth + 1);
      map.setEntry(key, this.read(depth + 1));
    }
    return map;
  }

  read(depth: i32): Value {
    if (depth > MAX_DEPTH) return this.problem("nested too deeply");
    const at = this.take(1);
    if (at == 0) return Value.nil();
    const m = <u32>load<u8>(at);
    if (m <= 0x7f) return Value.fromI64(<i64>m);
    if (m <= 0x8f) return this.map(<usize>(m & 0x0f), depth);
    if (m <= 0x9f) return this.array(<usize>(m & 0x0f), depth);
    if (m <= 0xbf) return this.str(<usize>(m & 0x1f));
    if (m >= 0xe0) return Value.fromI64(<i64>(<i8>m));
    switch (m) {
      case 0xc0: return Value.nil();
      case 0xc2: return Value.fromBool(false);
      case 0xc3: return Value.fromBool(true);
      case 0xc4: return this.bin(<usize>this.uint(1));
      case 0xc5: return this.bin(<usize>this.uint(2));
      case 0xc6: return this.bin(<usize>this.uint(4));
      case 0xc7: return this.ext(<usize>this.uint(1));
      case 0xc8: return this.ext(<usize>this.uint(2));
      case 0xc9: return this.ext(<usize>this.uint(4));
      case 0xca: return Value.fromF64(<f64>reinterpret<f32>(<u32>this.uint(4)));
      case 0xcb: return Value.fromF64(reinterpret<f64>(this.uint(8)));
      case 0xcc: return Value.fromI64(<i64>this.uint(1));
      case 0xcd: return Value.fromI64(<i64>this.uint(2));
      case 0xce: return Value.fromI64(<i64>this.uint(4));
      case 0xcf: return Value.fromU64(this.uint(8));
      case 0xd0: return Value.fromI64(<i64>(<i8>this.uint(1)));
      case 0xd1: return Value.fromI64(<i64>(<i16>this.uint(2)));
      case 0xd2: return Value.fromI64(<i64>(<i32>this.uint(4)));
      case 0xd3: return Value.fromI64(<i64>this.uint(8));
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xd9: return this.str(<usize>this.uint(1));
      case 0xda: return this.str(<usize>this.uint(2));
      case 0xdb: return this.str(<usize>this.uint(4));
      case 0xdc: return this.array(<usize>this.uint(2), depth);
      case 0xdd: return this.array(<usize>this.uint(4), depth);
      case 0xde: return this.map(<usize>this.uint(2), depth);
      case 0xdf: return this.map(<usize>this.uint(4), depth);
      default: {
        this.pos = at; // point the error at the marker itself
        return this.problem("0xc1 is never used in msgpack");
      }
    }
  }
}
