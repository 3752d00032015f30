//! `liballtnn.a`: the C API of `alltnn-runtime` (`runtime/include/alltnn.h`) without the
//! standard library, for a C program on any target with a C toolchain.
//!
//! Metadata (the model spec and tensor table, session bookkeeping) is allocated from a heap
//! the program registers with [`alltnn_set_heap`]; activations live in the arena it passes to
//! `alltnn_session_new`. Panics abort: the C API validates its arguments, so one would be a
//! bug in the runtime, or an exhausted heap.
#![no_std]

pub use alltnn_runtime::capi::*;

mod heap;
pub use heap::{alltnn_heap_used, alltnn_set_heap};

extern "C" {
    fn abort() -> !;
}

/// The precompiled `core` was built to unwind and its unwind tables name this routine; with
/// panic = "abort" nothing unwinds, so it is never called, only linked.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: C's abort takes no arguments and never returns.
    unsafe { abort() }
}
