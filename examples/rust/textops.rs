//! textops: a wasmd plug-in in Rust, using the msgpack ABI through sdk/rust/wasmd.rs.
//!
//! Build (from the repository root; Debian's rustc, libstd-rust-dev-wasm32 and lld; see
//! build.py for why each flag):
//!
//! ```text
//! /usr/bin/rustc --edition 2021 --target wasm32-wasi --crate-type=cdylib -O \
//!     -C strip=symbols -o OUT_DIR/textops.wasm examples/rust/textops.rs
//! ```
//!
//! A `cdylib` is a WASI reactor: it has no `_start`, so wasmd detects the msgpack ABI from
//! the `wasmd_alloc` export. Methods: `textops.reverse`, `textops.count`, `textops.echo`,
//! `textops.greet`, `textops.fail`; two that stream (`wasmd call --stream`),
//! `textops.words` and `textops.upper`; and two that keep durable state, `textops.tally` and
//! `textops.note`.

#[path = "../../sdk/rust/wasmd.rs"]
mod wasmd;

use wasmd::Value;

/// `[text]` -> `text` reversed by Unicode scalar value (not by byte, which would split
/// multi-byte characters into invalid UTF-8).
#[no_mangle]
pub extern "C" fn reverse(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| {
        let text = wasmd::str_param(&params, 0)?;
        Ok(text.chars().rev().collect::<String>().into())
    })
}

/// `[text]` -> `{"chars": n, "words": n}`; words are runs of non-whitespace.
#[no_mangle]
pub extern "C" fn count(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| {
        let text = wasmd::str_param(&params, 0)?;
        Ok(Value::map(vec![
            ("chars", text.chars().count().into()),
            ("words", text.split_whitespace().count().into()),
        ]))
    })
}

/// Returns its params array unchanged: a round trip through the SDK's decoder and encoder.
#[no_mangle]
pub extern "C" fn echo(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| Ok(Value::Array(params)))
}

/// `[name]` -> `"<greeting>, <name>!"`, the greeting read from the manifest's `[config]`
/// table (default "Hello"); also logs the call and publishes a `plugin.custom` event.
#[no_mangle]
pub extern "C" fn greet(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| {
        let name = wasmd::str_param(&params, 0)?;
        let greeting = wasmd::config_get("greeting").unwrap_or_else(|| "Hello".to_owned());
        wasmd::log(wasmd::Level::Info, &format!("greeting {}", name));
        wasmd::emit(&[("greeted", name.into())]);
        Ok(format!("{}, {}!", greeting, name).into())
    })
}

/// Always fails with a guest error: `[message]` (optional) becomes the error's message.
#[no_mangle]
pub extern "C" fn fail(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| {
        match params.first().and_then(Value::as_str) {
            Some(message) => Err(message.to_owned()),
            None => Err("textops.fail always fails".to_owned()),
        }
    })
}

/// `[text]` -> the number of words; called with `wasmd.stream`, it sends each word as a
/// chunk as it finds it (a plain call gets only the number).
#[no_mangle]
pub extern "C" fn words(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| {
        let text = wasmd::str_param(&params, 0)?;
        let mut count = 0i64;
        for word in text.split_whitespace() {
            if !wasmd::send(&word.into()) {
                break; // not a stream, or the call has ended
            }
            count += 1;
        }
        Ok(count.into())
    })
}

/// `[]` -> how many values were pushed; sends back each pushed string upper-cased, until
/// the client ends its input (`wasmd.push_end`).
#[no_mangle]
pub extern "C" fn upper(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |_params| {
        let mut count = 0i64;
        while let Some(value) = wasmd::recv() {
            let text = value.as_str().ok_or("upper takes pushed strings")?;
            if !wasmd::send(&text.to_uppercase().into()) {
                break;
            }
            count += 1;
        }
        Ok(count.into())
    })
}

/// `[]` or `[by]` -> the count kept in wasmd's durable state, after adding `by` (1): it
/// survives traps, reloads and restarts (docs/abi.md, "State").
#[no_mangle]
pub extern "C" fn tally(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| {
        let by = if params.is_empty() { 1 } else { wasmd::int_param(&params, 0)? };
        Ok(wasmd::kv::add(b"tally", by)?.into())
    })
}

/// `[key, value]` keeps any value under "note:KEY" and answers nil; `[key]` answers what is
/// kept (nil if nothing); `[]` answers the keys kept, in byte order.
#[no_mangle]
pub extern "C" fn note(ptr: *mut u8, len: usize) -> i64 {
    wasmd::call(ptr, len, |params| {
        if params.is_empty() {
            let keys = wasmd::kv::keys(b"note:")?;
            let names = keys.iter().map(|k| Value::Str(String::from_utf8_lossy(&k[5..]).into()));
            return Ok(Value::Array(names.collect()));
        }
        let key = format!("note:{}", wasmd::str_param(&params, 0)?);
        match params.get(1) {
            Some(value) => {
                wasmd::kv::set_value(key.as_bytes(), value)?;
                Ok(Value::Nil)
            }
            None => Ok(wasmd::kv::get_value(key.as_bytes())?.unwrap_or(Value::Nil)),
        }
    })
}
