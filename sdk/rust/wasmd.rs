//! wasmd guest helpers for Rust: the msgpack ABI (DESIGN.md section 3) in one file, std only.
//!
//! Include it from a plug-in and build a reactor (a `cdylib`, so no `_start`):
//!
//! ```text
//! #[path = "../../sdk/rust/wasmd.rs"]
//! mod wasmd;
//!
//! #[no_mangle]
//! pub extern "C" fn hello(ptr: *mut u8, len: usize) -> i64 {
//!     wasmd::call(ptr, len, |params| {
//!         let name = wasmd::str_param(&params, 0)?;
//!         Ok(format!("hello, {}", name).into())
//!     })
//! }
//! ```
//!
//! ```text
//! rustc --edition 2021 --target wasm32-wasi --crate-type=cdylib -O -C strip=symbols \
//!     plugin.rs -o plugin.wasm
//! ```
//!
//! Theory of operation. The host asks `wasmd_alloc` for a buffer, writes the msgpack
//! encoding of the request's params array into it and calls the export with `(ptr, len)`.
//! `call` decodes the params, frees that buffer, runs the handler and encodes its result
//! into one buffer kept for the whole instance; it returns `ptr << 32 | len` and the host
//! copies the bytes out before the next call can overwrite them. A handler's `Err` goes to
//! the host through `wasmd.error` and the client receives a guest error (code 4). A panic
//! is logged through `wasmd.log` and then traps: the client receives a trap.
//!
//! Written for Rust 1.63 (Debian's rustc): no let-else, no newer std APIs.

#![allow(dead_code)] // a plug-in uses only some of these helpers

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::fmt;
use std::sync::Once;

/// The imports of module `wasmd`; a module only imports the ones its code reaches.
mod host {
    #[link(wasm_import_module = "wasmd")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn emit(ptr: *const u8, len: usize);
        pub fn error(ptr: *const u8, len: usize);
        pub fn config_get(key_ptr: *const u8, key_len: usize) -> i64;
        pub fn caller_uid() -> i64;
        pub fn caller_gid() -> i64;
        pub fn caller_pid() -> i64;
        pub fn send(ptr: *const u8, len: usize) -> i32;
        pub fn recv(ptr: *mut u8, cap: usize) -> i32;
    }
}

// --- durable state (docs/abi.md, "State") --------------------------------------------------

/// The plug-in's own keys and values, kept by the daemon across traps, reloads and restarts.
/// A call's writes are committed together when its handler returns `Ok`, and dropped when it
/// returns `Err` or traps; calls that use state run one at a time, so a `get` then a `set`
/// in one call is atomic. A refusal is a `Refused`, never a trap; `?` turns it into the
/// handler's `Err(String)`.
pub mod kv {
    use super::Value;
    use std::fmt;

    mod imports {
        #[link(wasm_import_module = "wasmd")]
        extern "C" {
            pub fn kv_get(kptr: *const u8, klen: usize, vptr: *mut u8, vcap: usize) -> i32;
            pub fn kv_set(kptr: *const u8, klen: usize, vptr: *const u8, vlen: usize) -> i32;
            pub fn kv_delete(kptr: *const u8, klen: usize) -> i32;
            pub fn kv_next(
                pptr: *const u8,
                plen: usize,
                aptr: *const u8,
                alen: usize,
                kptr: *mut u8,
                kcap: usize,
            ) -> i32;
        }
    }

    pub const MAX_KEY: usize = 1024;
    pub const MAX_VALUE: usize = 1024 * 1024;

    /// Why the host refused: over `[state] max_bytes`/`max_keys` (Quota); no store, or
    /// outside a call (Unavailable); a key over MAX_KEY or a value over MAX_VALUE
    /// (TooLarge); the store failed, a full disk, and the call fails anyway (Failed); waiting
    /// would deadlock, plug-ins calling each other while holding state (Busy).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Refused {
        Quota,
        Unavailable,
        TooLarge,
        Failed,
        Busy,
    }

    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            let text = match self {
                Refused::Quota => "over the state quota",
                Refused::Unavailable => "no state here",
                Refused::TooLarge => "a key or value over the size limit",
                Refused::Failed => "the state store failed",
                Refused::Busy => "waiting for the state would deadlock",
            };
            f.write_str(text)
        }
    }

    impl From<Refused> for String {
        fn from(refused: Refused) -> String {
            refused.to_string()
        }
    }

    fn check(code: i32) -> Result<usize, Refused> {
        match code {
            -2 => Err(Refused::Quota),
            -3 => Err(Refused::Unavailable),
            -4 => Err(Refused::TooLarge),
            -6 => Err(Refused::Busy),
            n if n < 0 => Err(Refused::Failed),
            n => Ok(n as usize),
        }
    }

    /// The value of `key`, or None if absent.
    pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>, Refused> {
        let mut value = vec![0u8; 64];
        // SAFETY: the host writes at most `value.len()` bytes into `value`.
        let first = unsafe { imports::kv_get(key.as_ptr(), key.len(), value.as_mut_ptr(), 64) };
        if first == -1 {
            return Ok(None);
        }
        let len = check(first)?;
        if len > value.len() {
            value.resize(len, 0);
            let again =
                unsafe { imports::kv_get(key.as_ptr(), key.len(), value.as_mut_ptr(), len) };
            if check(again)? != len {
                return Err(Refused::Failed);
            }
        }
        value.truncate(len);
        Ok(Some(value))
    }

    pub fn set(key: &[u8], value: &[u8]) -> Result<(), Refused> {
        // SAFETY: both slices are valid for their lengths during the call.
        check(unsafe { imports::kv_set(key.as_ptr(), key.len(), value.as_ptr(), value.len()) })?;
        Ok(())
    }

    /// Whether `key` was there.
    pub fn delete(key: &[u8]) -> Result<bool, Refused> {
        Ok(check(unsafe { imports::kv_delete(key.as_ptr(), key.len()) })? == 1)
    }

    /// A counter kept as 8 bytes little-endian: adds `delta` (absent counts as 0) and
    /// returns the sum (wrapping, as i64 arithmetic in two's complement would).
    pub fn add(key: &[u8], delta: i64) -> Result<i64, Refused> {
        let mut bytes = [0u8; 8];
        let got = unsafe { imports::kv_get(key.as_ptr(), key.len(), bytes.as_mut_ptr(), 8) };
        if got != -1 {
            check(got)?;
        }
        let total = i64::from_le_bytes(bytes).wrapping_add(delta);
        set(key, &total.to_le_bytes())?;
        Ok(total)
    }

    /// The first key after `after` (empty: from the start) that starts with `prefix`, in
    /// byte order; None when there is none left.
    pub fn next(prefix: &[u8], after: &[u8]) -> Result<Option<Vec<u8>>, Refused> {
        let mut key = vec![0u8; MAX_KEY];
        let n = unsafe {
            imports::kv_next(
                prefix.as_ptr(),
                prefix.len(),
                after.as_ptr(),
                after.len(),
                key.as_mut_ptr(),
                MAX_KEY,
            )
        };
        if n == -1 {
            return Ok(None);
        }
        key.truncate(check(n)?);
        Ok(Some(key))
    }

    /// Every key that starts with `prefix`, in byte order.
    pub fn keys(prefix: &[u8]) -> Result<Vec<Vec<u8>>, Refused> {
        let mut found: Vec<Vec<u8>> = Vec::new();
        loop {
            let after = found.last().map(|k| k.as_slice()).unwrap_or(&[]);
            match next(prefix, after)? {
                Some(key) => found.push(key),
                None => return Ok(found),
            }
        }
    }

    /// A msgpack value kept under `key` (the msgpack ABI's own values).
    pub fn set_value(key: &[u8], value: &Value) -> Result<(), Refused> {
        set(key, &value.to_msgpack())
    }

    /// The msgpack value kept under `key`, or None if absent.
    pub fn get_value(key: &[u8]) -> Result<Option<Value>, String> {
        match get(key)? {
            Some(bytes) => Value::from_msgpack(&bytes)
                .map(Some)
                .map_err(|err| format!("the value of a key is not msgpack: {}", err)),
            None => Ok(None),
        }
    }
}

// --- memory shared with the host ------------------------------------------------------------

// A zero-sized request is legal (an empty config value) but a zero-sized Layout is not, so
// every buffer is at least one byte; `free_host_buffer` recomputes the same layout.
fn host_buffer_layout(len: usize) -> Layout {
    match Layout::from_size_align(len.max(1), 1) {
        Ok(layout) => layout,
        Err(_) => std::process::abort(),
    }
}

/// Called by the host to place a call's input (or a config value) in guest memory.
#[no_mangle]
pub extern "C" fn wasmd_alloc(len: usize) -> *mut u8 {
    let layout = host_buffer_layout(len);
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc(layout) };
    if ptr.is_null() {
        handle_alloc_error(layout); // traps: the host reports the call as failed
    }
    ptr
}

/// Release a buffer that the host filled through `wasmd_alloc`.
///
/// SAFETY: `ptr` must come from `wasmd_alloc(len)`, not be freed yet, and not be borrowed.
unsafe fn free_host_buffer(ptr: *mut u8, len: usize) {
    dealloc(ptr, host_buffer_layout(len));
}

thread_local! {
    // The last result, kept until the next call: the host reads it after the export
    // returns, so it cannot live on the stack. (A wasm instance has one thread.)
    static RESULT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn pack_ptr_len(ptr: *const u8, len: usize) -> i64 {
    (((ptr as usize as u64) << 32) | len as u64) as i64
}

// --- the call wrapper -----------------------------------------------------------------------

static PANIC_HOOK: Once = Once::new();

/// Run one msgpack-ABI call: decode the params array at `ptr`, run `handler`, return its
/// result to the host, or report its `Err` as a guest error.
pub fn call<F>(ptr: *mut u8, len: usize, handler: F) -> i64
where
    F: FnOnce(Vec<Value>) -> Result<Value, String>,
{
    PANIC_HOOK.call_once(|| {
        // Without a hook the message goes to stderr, which WASI denies by default.
        std::panic::set_hook(Box::new(|info| {
            log(Level::Error, &format!("panic: {}", info))
        }));
    });
    // SAFETY: the ABI says the host obtained `ptr` from `wasmd_alloc(len)` for this call
    // and wrote `len` bytes there. Decoded values own their data, so the buffer can go.
    let decoded = Value::from_msgpack(unsafe { std::slice::from_raw_parts(ptr, len) });
    unsafe { free_host_buffer(ptr, len) };
    let outcome = match decoded {
        Ok(Value::Array(params)) => handler(params),
        Ok(other) => Err(format!("params must be an array, got {}", other.kind())),
        Err(err) => Err(format!("cannot decode the params: {}", err)),
    };
    match outcome {
        Ok(value) => RESULT.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            value.encode(&mut buffer);
            pack_ptr_len(buffer.as_ptr(), buffer.len())
        }),
        Err(message) => {
            // SAFETY: the host reads `message` before this returns.
            unsafe { host::error(message.as_ptr(), message.len()) };
            0
        }
    }
}

// --- host services --------------------------------------------------------------------------

/// The level of a `log` line, as the host numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

/// Write one line to the daemon's log, tagged with the plug-in's name.
pub fn log(level: Level, message: &str) {
    // SAFETY: the host only reads `message` during the call.
    unsafe { host::log(level as i32, message.as_ptr(), message.len()) }
}

/// Publish a `plugin.custom` event whose data is the map `fields`.
pub fn emit(fields: &[(&str, Value)]) {
    let mut out = Vec::new();
    write_len(&mut out, fields.len(), [0x80, 0xde, 0xdf], 16);
    for (key, value) in fields {
        write_str(&mut out, key);
        value.encode(&mut out);
    }
    // SAFETY: the host only reads `out` during the call.
    unsafe { host::emit(out.as_ptr(), out.len()) }
}

/// Who made the request a call serves: its connection's peer credentials (a call made
/// through another plug-in sees the request's caller); -1 each without a socket peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: i64,
    pub gid: i64,
    pub pid: i64,
}

/// The caller of the request the running call serves.
pub fn caller() -> Caller {
    // SAFETY: the imports take nothing and only read the host's state.
    unsafe {
        Caller {
            uid: host::caller_uid(),
            gid: host::caller_gid(),
            pid: host::caller_pid(),
        }
    }
}

/// The value of `key` in the manifest's `[config]` table, if it is there.
pub fn config_get(key: &str) -> Option<String> {
    // SAFETY: the host reads the key during the call and, on success, hands over a buffer
    // it obtained from `wasmd_alloc`, which becomes ours to free.
    let packed = unsafe { host::config_get(key.as_ptr(), key.len()) };
    if packed == -1 {
        return None;
    }
    let ptr = (packed as u64 >> 32) as usize as *mut u8;
    let len = (packed as u64 & 0xffff_ffff) as usize;
    let value = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len) });
    let value = value.into_owned(); // copied out before the buffer goes
    unsafe { free_host_buffer(ptr, len) };
    Some(value)
}

/// Streaming calls (docs/abi.md, "send and recv"): send `value` as the call's next chunk.
/// Waits while the client's window is used up. `false` when the call is not a stream (a
/// plain call: the value is dropped) or has ended (cancelled, or past its deadline: stop).
pub fn send(value: &Value) -> bool {
    let mut out = Vec::new();
    value.encode(&mut out);
    // SAFETY: the host only reads `out` during the call.
    unsafe { host::send(out.as_ptr(), out.len()) == 0 }
}

/// The next value the client pushed (`wasmd.push`); `None` at the end of the input, or
/// when the call is not a stream or has ended. Waits for a push.
pub fn recv() -> Option<Value> {
    // recv answers -2 while the value needs more room (it stays queued): grow, ask again.
    let mut cap = 256usize;
    while cap <= 4 << 20 {
        let mut buffer = vec![0u8; cap];
        // SAFETY: the host writes at most `cap` bytes into `buffer`.
        let n = unsafe { host::recv(buffer.as_mut_ptr(), cap) };
        if n >= 0 {
            return Value::from_msgpack(&buffer[..n as usize]).ok();
        }
        if n != -2 {
            return None;
        }
        cap *= 4;
    }
    None
}

// --- params ---------------------------------------------------------------------------------

/// Param `index`, or an error message naming what is missing.
pub fn param(params: &[Value], index: usize) -> Result<&Value, String> {
    params
        .get(index)
        .ok_or_else(|| format!("param {}: missing (got {} params)", index, params.len()))
}

fn mismatch(index: usize, wanted: &str, got: &Value) -> String {
    format!("param {}: expected {}, got {}", index, wanted, got.kind())
}

/// Param `index` as a string.
pub fn str_param(params: &[Value], index: usize) -> Result<&str, String> {
    let value = param(params, index)?;
    value
        .as_str()
        .ok_or_else(|| mismatch(index, "a string", value))
}

/// Param `index` as a signed 64-bit integer.
pub fn int_param(params: &[Value], index: usize) -> Result<i64, String> {
    let value = param(params, index)?;
    value
        .as_i64()
        .ok_or_else(|| mismatch(index, "an integer in i64 range", value))
}

/// Param `index` as a float; integers are accepted too.
pub fn float_param(params: &[Value], index: usize) -> Result<f64, String> {
    let value = param(params, index)?;
    value
        .as_f64()
        .ok_or_else(|| mismatch(index, "a number", value))
}

// --- msgpack values -------------------------------------------------------------------------

/// One msgpack value.
///
/// Integers: `decode` yields `Int` for everything in i64 range and `UInt` only above
/// `i64::MAX`, so each integer has one spelling; `encode` accepts either and always writes
/// the shortest msgpack form. Map entries keep their wire order, and keys may be any value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// An extension type, carried through untouched.
    Ext(i8, Vec<u8>),
}

impl Value {
    /// The msgpack name of this value's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(_, _) => "ext",
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(n) => Some(n),
            Value::UInt(n) if n <= i64::MAX as u64 => Some(n as i64),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Int(n) if n >= 0 => Some(n as u64),
            Value::UInt(n) => Some(n),
            _ => None,
        }
    }

    /// A float, or an integer converted to one (possibly rounding).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(x) => Some(x),
            Value::Int(n) => Some(n as f64),
            Value::UInt(n) => Some(n as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under the string key `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let entries = self.as_map()?;
        entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A map from string keys, in the order given.
    pub fn map<K: Into<String>>(entries: Vec<(K, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Append this value's msgpack encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Nil => out.push(0xc0),
            Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Value::Int(n) if *n >= 0 => write_uint(out, *n as u64),
            Value::Int(n) => write_negative(out, *n),
            Value::UInt(n) => write_uint(out, *n),
            Value::Float(x) => {
                out.push(0xcb);
                out.extend_from_slice(&x.to_be_bytes());
            }
            Value::Str(s) => write_str(out, s),
            Value::Bin(bytes) => {
                // bin has no "fix" form: the first marker is the 8-bit one
                write_len(out, bytes.len(), [0xc4, 0xc5, 0xc6], 0);
                out.extend_from_slice(bytes);
            }
            Value::Array(items) => {
                write_len(out, items.len(), [0x90, 0xdc, 0xdd], 16);
                for item in items {
                    item.encode(out);
                }
            }
            Value::Map(entries) => {
                write_len(out, entries.len(), [0x80, 0xde, 0xdf], 16);
                for (key, value) in entries {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Value::Ext(tag, data) => {
                let fixed = match data.len() {
                    1 => Some(0xd4),
                    2 => Some(0xd5),
                    4 => Some(0xd6),
                    8 => Some(0xd7),
                    16 => Some(0xd8),
                    _ => None,
                };
                match fixed {
                    Some(marker) => out.push(marker),
                    None => write_len(out, data.len(), [0xc7, 0xc8, 0xc9], 0),
                }
                out.push(*tag as u8);
                out.extend_from_slice(data);
            }
        }
    }

    /// Decode exactly one value; trailing bytes are an error.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Value, DecodeError> {
        let mut reader = Reader { bytes, pos: 0 };
        let value = reader.value(0)?;
        if reader.pos != bytes.len() {
            return Err(reader.fail("trailing bytes after the value"));
        }
        Ok(value)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Value {
        Value::Int(n.into())
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        if n <= i64::MAX as u64 {
            Value::Int(n as i64)
        } else {
            Value::UInt(n)
        }
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::from(n as u64)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Value {
        Value::Bin(bytes)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::Array(items)
    }
}

fn write_uint(out: &mut Vec<u8>, n: u64) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xcc, n as u8]);
    } else if n <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_negative(out: &mut Vec<u8>, n: i64) {
    if n >= -32 {
        out.push(n as u8); // negative fixint: the byte is the two's complement itself
    } else if n >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, n as u8]);
    } else if n >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.len() < 32 {
        out.push(0xa0 | s.len() as u8);
    } else {
        write_len(out, s.len(), [0xd9, 0xda, 0xdb], 0);
    }
    out.extend_from_slice(s.as_bytes());
}

/// A length header: the fix form (`markers[0] | len`) below `fix_limit`, else the 8-bit form
/// when `fix_limit` is 0 (str, bin and ext have one; array and map do not), else 16 or 32
/// bits. `markers` are [fix or 8-bit, 16-bit, 32-bit].
fn write_len(out: &mut Vec<u8>, len: usize, markers: [u8; 3], fix_limit: usize) {
    if len < fix_limit {
        out.push(markers[0] | len as u8);
    } else if fix_limit == 0 && len <= 0xff {
        out.extend_from_slice(&[markers[0], len as u8]);
    } else if len <= 0xffff {
        out.push(markers[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(markers[2]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Why some bytes are not one msgpack value, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

// Deep enough for any real request, shallow enough that a hostile one of nested one-byte
// arrays cannot overflow the guest's stack (the host's msgpack packer stops at 512 too).
const MAX_DEPTH: usize = 512;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn fail(&self, reason: &'static str) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() - self.pos < n {
            return Err(self.fail("unexpected end of input"));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, width: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn int(&mut self, width: usize) -> Result<i64, DecodeError> {
        // sign-extend from `width` bytes by shifting the top byte into place and back
        let shift = 64 - 8 * width as u32;
        Ok(((self.uint(width)? << shift) as i64) >> shift)
    }

    fn len(&mut self, width: usize) -> Result<usize, DecodeError> {
        Ok(self.uint(width)? as usize)
    }

    /// Room for `count` items of at least one byte each; a bogus count cannot
    /// make us reserve gigabytes before the data runs out.
    fn capacity(&self, count: usize) -> usize {
        count.min(self.bytes.len() - self.pos)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.fail("nested too deeply"));
        }
        let marker = self.byte()?;
        let value = match marker {
            0x00..=0x7f => Value::Int(marker.into()),
            0x80..=0x8f => self.map((marker & 0x0f).into(), depth)?,
            0x90..=0x9f => self.array((marker & 0x0f).into(), depth)?,
            0xa0..=0xbf => self.str((marker & 0x1f).into())?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.len(1)?;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc5 => {
                let n = self.len(2)?;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc6 => {
                let n = self.len(4)?;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc7 => {
                let n = self.len(1)?;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.len(2)?;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len(4)?;
                self.ext(n)?
            }
            0xca => Value::Float(f32::from_bits(self.uint(4)? as u32).into()),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc => Value::Int(self.uint(1)? as i64),
            0xcd => Value::Int(self.uint(2)? as i64),
            0xce => Value::Int(self.uint(4)? as i64),
            0xcf => Value::from(self.uint(8)?),
            0xd0 => Value::Int(self.int(1)?),
            0xd1 => Value::Int(self.int(2)?),
            0xd2 => Value::Int(self.int(4)?),
            0xd3 => Value::Int(self.int(8)?),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = self.len(1)?;
                self.str(n)?
            }
            0xda => {
                let n = self.len(2)?;
                self.str(n)?
            }
            0xdb => {
                let n = self.len(4)?;
                self.str(n)?
            }
            0xdc => {
                let n = self.len(2)?;
                self.array(n, depth)?
            }
            0xdd => {
                let n = self.len(4)?;
                self.array(n, depth)?
            }
            0xde => {
                let n = self.len(2)?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len(4)?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int((marker as i8).into()),
            0xc1 => {
                self.pos -= 1;
                return Err(self.fail("0xc1 is never used in msgpack"));
            }
        };
        Ok(value)
    }

    fn str(&mut self, n: usize) -> Result<Value, DecodeError> {
        let start = self.pos;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(_) => Err(DecodeError {
                offset: start,
                reason: "str is not valid UTF-8",
            }),
        }
    }

    fn ext(&mut self, n: usize) -> Result<Value, DecodeError> {
        let tag = self.byte()? as i8;
        Ok(Value::Ext(tag, self.take(n)?.to_vec()))
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut items = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut entries = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}
