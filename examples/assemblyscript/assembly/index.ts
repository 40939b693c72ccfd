// asdemo: a wasmd plug-in in AssemblyScript, using the msgpack ABI through
// sdk/assemblyscript/wasmd.ts. Methods: asdemo.upper, asdemo.add, asdemo.fail, and
// asdemo.countdown and asdemo.sizes, which stream (`wasmd call --stream`), and
// asdemo.tally and asdemo.note, which keep their data in wasmd's durable state.
//
// Build (from examples/assemblyscript, after `npm install`; see build.py for why):
//
//   npx asc assembly/index.ts --outFile OUT_DIR/asdemo.wasm --optimize --runtime minimal \
//       --use abort=../../sdk/assemblyscript/wasmd/abortHandler
//
// Each export has the ABI's (ptr, len) -> i64 shape and hands a plain function to `call`
// (AssemblyScript has no closures).

import {
  call,
  fail as failCall,
  hasFailed,
  intParam,
  kvAdd,
  kvGetValue,
  kvKeys,
  kvSetValue,
  kvStatus,
  numberParam,
  param,
  recv,
  send,
  stringParam,
  Kind,
  Value,
} from "../../../sdk/assemblyscript/wasmd";

// The host places each call's input through this export; it also marks the module as
// speaking the msgpack ABI.
export { wasmd_alloc } from "../../../sdk/assemblyscript/wasmd";

/** `[text]` -> `text` with ASCII a-z upper-cased; every other character is left alone. */
export function upper(ptr: usize, len: usize): i64 {
  return call(ptr, len, upperImpl);
}

function upperImpl(params: Value[]): Value {
  const text = stringParam(params, 0);
  // code units, not characters: a surrogate pair passes through untouched either way
  const units = new Array<i32>(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // String.toUpperCase would also map non-ASCII letters (and pull in Unicode tables)
    units[i] = c >= 0x61 && c <= 0x7a ? c - 0x20 : c;
  }
  return Value.fromString(String.fromCharCodes(units));
}

/** `[a, b]` -> `a + b`: an integer when both are integers and the sum fits in i64, else
 *  a float. */
export function add(ptr: usize, len: usize): i64 {
  return call(ptr, len, addImpl);
}

function addImpl(params: Value[]): Value {
  const a = param(params, 0);
  const b = param(params, 1);
  if (a.kind == Kind.Int && b.kind == Kind.Int) {
    const x = a.asI64();
    const y = b.asI64();
    const sum = x + y; // wraps on overflow: detect it by the sign flip
    if (((x ^ sum) & (y ^ sum)) >= 0) return Value.fromI64(sum);
  }
  const x = numberParam(params, 0);
  const y = numberParam(params, 1);
  if (hasFailed()) return Value.nil();
  return Value.fromF64(x + y);
}

/** Always fails with a guest error: `[message]` (optional) becomes the error's message. */
export function fail(ptr: usize, len: usize): i64 {
  return call(ptr, len, failImpl);
}

function failImpl(params: Value[]): Value {
  if (params.length > 0 && params[0].kind == Kind.Str) return failCall(params[0].asString());
  return failCall("asdemo.fail always fails");
}

/** `[n]` -> 0; called with `wasmd.stream`, it sends n, n-1, ..., 1 as chunks first (a
 *  plain call sends nothing). */
export function countdown(ptr: usize, len: usize): i64 {
  return call(ptr, len, countdownImpl);
}

function countdownImpl(params: Value[]): Value {
  for (let n = intParam(params, 0); n > 0; n--) {
    if (!send(Value.fromI64(n))) break; // not a stream, or the call has ended
  }
  return Value.fromI64(0);
}

/** `[]` -> how many values were pushed; sends back the length of each pushed string,
 *  until the client ends its input (`wasmd.push_end`). */
export function sizes(ptr: usize, len: usize): i64 {
  return call(ptr, len, sizesImpl);
}

function sizesImpl(params: Value[]): Value {
  let count: i64 = 0;
  while (true) {
    const value = recv();
    if (value === null) break;
    if (value.kind != Kind.Str) return failCall("sizes takes pushed strings");
    if (!send(Value.fromI64(value.asString().length))) break;
    count++;
  }
  return Value.fromI64(count);
}

/** `[]` or `[by]` -> the count kept in wasmd's durable state after adding `by` (1): it
 *  survives traps, reloads and restarts. */
export function tally(ptr: usize, len: usize): i64 {
  return call(ptr, len, tallyImpl);
}

function tallyImpl(params: Value[]): Value {
  const by = params.length > 0 ? intParam(params, 0) : 1;
  if (hasFailed()) return Value.nil();
  const total = kvAdd("tally", by);
  if (kvStatus() != 0) return failCall("state refused: " + kvStatus().toString());
  return Value.fromI64(total);
}

/** `[key, value]` keeps any value under "note:KEY" (answers nil); `[key]` answers it (nil if
 *  nothing is kept); `[]` answers the keys kept, in byte order. */
export function note(ptr: usize, len: usize): i64 {
  return call(ptr, len, noteImpl);
}

function noteImpl(params: Value[]): Value {
  if (params.length == 0) {
    const keys = kvKeys("note:");
    const names = new Array<Value>(keys.length);
    for (let i = 0; i < keys.length; i++) names[i] = Value.fromString(keys[i].substring(5));
    return Value.array(names);
  }
  const key = "note:" + stringParam(params, 0);
  if (hasFailed()) return Value.nil();
  if (params.length > 1) {
    if (kvSetValue(key, params[1]) != 0) return failCall("state refused: " + kvStatus().toString());
    return Value.nil();
  }
  const kept = kvGetValue(key);
  return kept === null ? Value.nil() : kept;
}
