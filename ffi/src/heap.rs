//! The global allocator: a bump allocator over the caller's buffer. Opening a model and creating
//! a session allocate a few kB, mostly short-lived temporaries freed in reverse order, so
//! reclaiming (and growing in place) only the most recent allocation keeps the heap small
//! without the bookkeeping of a general allocator. Nothing else is ever returned.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

use alltnn_runtime::capi::{fail, ALLTNN_ERR_NULL, ALLTNN_ERR_STATE, ALLTNN_OK};

struct Bump {
    /// Start address of the heap; 0 until one is registered.
    base: AtomicUsize,
    len: AtomicUsize,
    /// Bytes from `base` to the end of the most recent allocation.
    used: AtomicUsize,
}

#[global_allocator]
static HEAP: Bump = Bump {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    used: AtomicUsize::new(0),
};

// SAFETY: blocks are handed out from disjoint ranges of the registered buffer, claimed by
// compare-and-swap on `used`, so no two live allocations overlap.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.base.load(Ordering::Acquire);
        let len = self.len.load(Ordering::Acquire);
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + used)
                .checked_next_multiple_of(layout.align())
                .map(|a| a - base)
            else {
                return core::ptr::null_mut();
            };
            let end = match start.checked_add(layout.size()) {
                Some(end) if base != 0 && end <= len => end,
                _ => return core::ptr::null_mut(),
            };
            match self
                .used
                .compare_exchange_weak(used, end, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let start = ptr as usize - self.base.load(Ordering::Acquire);
        // Fails, leaving the block in place, unless it is the most recent one.
        let _ = self.used.compare_exchange(
            start + layout.size(),
            start,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize - self.base.load(Ordering::Acquire);
        let end = start + layout.size();
        let fits = start
            .checked_add(new_size)
            .filter(|&e| e <= self.len.load(Ordering::Acquire));
        if let Some(new_end) = fits {
            if self
                .used
                .compare_exchange(end, new_end, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return ptr;
            }
        }
        // SAFETY: the layout of the new block is valid: `GlobalAlloc::realloc`'s contract.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for any allocation.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and disjoint; the old one holds `layout.size()` bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// Registers `len` bytes at `heap` as the library's heap. Call once, before any other call;
/// the buffer must stay alive and untouched for the life of the program.
///
/// # Safety
/// `heap` must be null or point to `len` writable bytes that nothing else uses afterwards.
#[no_mangle]
pub unsafe extern "C" fn alltnn_set_heap(heap: *mut c_void, len: usize) -> c_int {
    if heap.is_null() {
        return fail(ALLTNN_ERR_NULL, format_args!("alltnn_set_heap: null heap"));
    }
    if HEAP
        .base
        .compare_exchange(0, heap as usize, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return fail(
            ALLTNN_ERR_STATE,
            format_args!("alltnn_set_heap: a heap is already registered"),
        );
    }
    HEAP.len.store(len, Ordering::Release);
    ALLTNN_OK
}

/// Bytes of the heap in use, up to the end of the most recent allocation: what a program
/// needs to size its heap (measure it once on the host).
///
/// # Safety
/// `used` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn alltnn_heap_used(used: *mut usize) -> c_int {
    if used.is_null() {
        return fail(
            ALLTNN_ERR_NULL,
            format_args!("alltnn_heap_used: null pointer"),
        );
    }
    // SAFETY: non-null and writable (caller's promise).
    unsafe { used.write(HEAP.used.load(Ordering::Acquire)) };
    ALLTNN_OK
}
