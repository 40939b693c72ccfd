//! A WebAssembly component plug-in in Rust, with no crates and no bindings generator: the
//! canonical ABI of `wit/textstats.wit` written out by hand (examples/rust-component/build.py
//! compiles it for wasm32-unknown-unknown and makes the component with wasm-tools).
//!
//! A string param arrives as (pointer, length) in memory the host got from `cabi_realloc`;
//! the function owns it. A result that flattens to more than one value (a string, a record,
//! a result) is written to a return area whose address the function returns.

use std::alloc::{alloc, dealloc, realloc, Layout};

#[link(wasm_import_module = "wasmd:host/api@0.1.0")]
extern "C" {
    /// log: func(level: level, message: string); level 1 is info.
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: usize);
}

/// Where multi-value results go: 16 bytes, aligned for an s64.
#[repr(C, align(8))]
struct ReturnArea([u8; 16]);
static mut RETURN_AREA: ReturnArea = ReturnArea([0; 16]);
/// The string returned by the last call, freed by the next one (the host has copied it).
static mut LAST_STRING: Option<String> = None;

#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    if new_size == 0 {
        return align as *mut u8;
    }
    let layout = Layout::from_size_align_unchecked(new_size, align);
    let ptr = if old.is_null() {
        alloc(layout)
    } else {
        realloc(old, Layout::from_size_align_unchecked(old_size, align), new_size)
    };
    if ptr.is_null() {
        std::process::abort();
    }
    ptr
}

/// Take ownership of a string param: copy it out and free the host's allocation.
unsafe fn take_string(ptr: *mut u8, len: usize) -> String {
    let text = String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len)).into_owned();
    if len > 0 {
        dealloc(ptr, Layout::from_size_align_unchecked(len, 1));
    }
    text
}

unsafe fn return_area() -> *mut u8 {
    std::ptr::addr_of_mut!(RETURN_AREA.0) as *mut u8
}

/// Put a string result at `offset` of the return area (pointer, then length).
unsafe fn put_string(offset: usize, text: String) {
    let area = return_area().add(offset) as *mut u32;
    *area = text.as_ptr() as u32;
    *area.add(1) = text.len() as u32;
    LAST_STRING = Some(text);
}

#[export_name = "example:textstats/text@0.1.0#word-count"]
pub unsafe extern "C" fn word_count(ptr: *mut u8, len: usize) -> u32 {
    take_string(ptr, len).split_whitespace().count() as u32
}

#[export_name = "example:textstats/text@0.1.0#shout"]
pub unsafe extern "C" fn shout(ptr: *mut u8, len: usize) -> *mut u8 {
    let loud = take_string(ptr, len).to_uppercase();
    let line = format!("shouting {} bytes", loud.len());
    host_log(1, line.as_ptr(), line.len());
    put_string(0, loud);
    return_area()
}

#[export_name = "example:textstats/text@0.1.0#stats"]
pub unsafe extern "C" fn stats(ptr: *mut u8, len: usize) -> *mut u8 {
    let text = take_string(ptr, len);
    let area = return_area() as *mut u32;
    *area = text.split_whitespace().count() as u32;
    *area.add(1) = text.chars().count() as u32;
    return_area()
}

/// result<s64, string>: the case at 0 (0 ok, 1 err), the payload at 8.
#[export_name = "example:textstats/text@0.1.0#parse-int"]
pub unsafe extern "C" fn parse_int(ptr: *mut u8, len: usize) -> *mut u8 {
    let text = take_string(ptr, len);
    let area = return_area();
    match text.trim().parse::<i64>() {
        Ok(value) => {
            *area = 0;
            *(area.add(8) as *mut i64) = value;
        }
        Err(error) => {
            *area = 1;
            put_string(8, format!("not an integer: {text:?} ({error})"));
        }
    }
    area
}
