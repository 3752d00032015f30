//! The C API (feature `capi`), declared in `runtime/include/alltnn.h`; `ffi/` links it into a
//! `no_std` static library.
//!
//! Every function but [`alltnn_last_error`] returns an `int`: [`ALLTNN_OK`] or a negative
//! `ALLTNN_ERR_*` code, with a one-line message for [`alltnn_last_error`]. Pointers, alignments
//! and lengths are checked before use, so bad arguments are errors, not crashes. A model
//! borrows the caller's bytes without copying them (they must be 64-byte aligned and outlive
//! it); a session borrows its model and the caller's arena. Opening a model and creating a
//! session allocate their metadata (spec, tensor table, layer bookkeeping: a few kB) from the
//! global allocator; running allocates nothing.

use alloc::boxed::Box;
use core::ffi::{c_char, c_int, c_void};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::energy;
use crate::engine::{Engine, Model};
use crate::format::{TnnFile, ALIGN};

pub const ALLTNN_OK: c_int = 0;
/// A required pointer is null.
pub const ALLTNN_ERR_NULL: c_int = -1;
/// Model bytes not 64-byte aligned, or a float buffer not aligned for its type.
pub const ALLTNN_ERR_MISALIGNED: c_int = -2;
/// The model bytes are not a valid `.tnn` file (truncated, corrupt, inconsistent).
pub const ALLTNN_ERR_FORMAT: c_int = -3;
/// A batch size of 0, or sizes too large to address.
pub const ALLTNN_ERR_ARGUMENT: c_int = -4;
/// The arena is smaller than `alltnn_arena_size` reports.
pub const ALLTNN_ERR_ARENA: c_int = -5;
/// The input does not hold 1 to `batch` whole images.
pub const ALLTNN_ERR_INPUT: c_int = -6;
/// An output buffer does not have the length the call produces.
pub const ALLTNN_ERR_OUTPUT: c_int = -7;
/// A call out of order: energy before any run, a heap registered twice.
pub const ALLTNN_ERR_STATE: c_int = -8;

/// An opened model (C: `alltnn_model`).
pub struct AlltnnModel {
    model: Model<'static>,
}

/// A model with its buffers for one batch size (C: `alltnn_session`).
pub struct AlltnnSession {
    engine: Engine<'static, 'static>,
}

/// What a caller needs to size its buffers (C: `alltnn_model_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlltnnModelInfo {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// Floats per image: `height × width × channels`.
    pub input_len: usize,
    pub classes: usize,
    pub layers: usize,
}

const MESSAGE_LEN: usize = 256;

/// The last error message, NUL-terminated. Bytes are atomics so that concurrent failures can
/// garble a message but never race in the Rust sense; C callers read it from one thread.
static LAST_ERROR: [AtomicU8; MESSAGE_LEN] = [const { AtomicU8::new(0) }; MESSAGE_LEN];

struct MessageWriter {
    len: usize,
}

impl Write for MessageWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len + 1 >= MESSAGE_LEN {
                break;
            }
            LAST_ERROR[self.len].store(b, Ordering::Relaxed);
            self.len += 1;
        }
        Ok(())
    }
}

/// Records `message` for [`alltnn_last_error`] (truncated to 255 bytes) and returns `code`.
pub fn fail(code: c_int, message: fmt::Arguments<'_>) -> c_int {
    let mut w = MessageWriter { len: 0 };
    // The writer truncates instead of failing; an error could only come from a Display impl.
    let _ = w.write_fmt(message);
    LAST_ERROR[w.len].store(0, Ordering::Relaxed);
    code
}

macro_rules! fail {
    ($code:expr, $($arg:tt)*) => {
        return fail($code, format_args!($($arg)*))
    };
}

/// The message of the last failed call (empty if none failed): a NUL-terminated string in one
/// static buffer, overwritten by the next failure; not synchronised between threads.
#[no_mangle]
pub extern "C" fn alltnn_last_error() -> *const c_char {
    LAST_ERROR.as_ptr().cast()
}

fn aligned<T>(ptr: *const T) -> bool {
    (ptr as usize).is_multiple_of(core::mem::align_of::<T>())
}

/// Opens a `.tnn` model held in memory: checks the header, metadata and every tensor checksum.
///
/// # Safety
/// `bytes` must point to `len` readable bytes that stay alive and unchanged until
/// [`alltnn_model_free`]; `out` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn alltnn_model_open_bytes(
    bytes: *const u8,
    len: usize,
    out: *mut *mut AlltnnModel,
) -> c_int {
    if out.is_null() || bytes.is_null() {
        fail!(ALLTNN_ERR_NULL, "alltnn_model_open_bytes: null pointer");
    }
    // SAFETY: `out` is non-null and writable (caller's promise).
    unsafe { out.write(core::ptr::null_mut()) };
    if !(bytes as usize).is_multiple_of(ALIGN) {
        fail!(
            ALLTNN_ERR_MISALIGNED,
            "model bytes at {bytes:p} are not 64-byte aligned (use _Alignas(64))"
        );
    }
    if len > isize::MAX as usize {
        fail!(ALLTNN_ERR_ARGUMENT, "model length {len} is too large");
    }
    // SAFETY: `len` readable bytes that outlive the model (caller's promise); size checked.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(bytes, len) };
    let model = TnnFile::parse_verified(bytes).and_then(|file| Model::from_file(&file));
    match model {
        Ok(model) => {
            // SAFETY: as above.
            unsafe { out.write(Box::into_raw(Box::new(AlltnnModel { model }))) };
            ALLTNN_OK
        }
        Err(e) => fail!(ALLTNN_ERR_FORMAT, "{e}"),
    }
}

/// Fills `info` with the model's input size, class count and layer count.
///
/// # Safety
/// `model` must be null or from [`alltnn_model_open_bytes`] and not freed; `info` null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn alltnn_model_get_info(
    model: *const AlltnnModel,
    info: *mut AlltnnModelInfo,
) -> c_int {
    // SAFETY: a live model or null (caller's promise).
    let Some(handle) = (unsafe { model.as_ref() }) else {
        fail!(ALLTNN_ERR_NULL, "alltnn_model_get_info: null model");
    };
    if info.is_null() || !aligned(info) {
        fail!(
            ALLTNN_ERR_NULL,
            "alltnn_model_get_info: null or misaligned info"
        );
    }
    let spec = handle.model.spec();
    let value = AlltnnModelInfo {
        height: spec.input.height as usize,
        width: spec.input.width as usize,
        channels: spec.input.channels as usize,
        input_len: spec.input_len(),
        classes: spec.readout.classes as usize,
        layers: spec.layers.len(),
    };
    // SAFETY: non-null, aligned and writable (caller's promise).
    unsafe { info.write(value) };
    ALLTNN_OK
}

/// Arena length in floats for `batch` images, or an error message (the length is linear in
/// the batch, so the product cannot overflow unnoticed).
fn arena_floats(model: &Model<'_>, batch: usize) -> Result<usize, c_int> {
    if batch == 0 {
        return Err(fail(ALLTNN_ERR_ARGUMENT, format_args!("batch size is 0")));
    }
    Engine::arena_len(model, 1)
        .checked_mul(batch)
        .filter(|n| n.checked_mul(4).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| {
            fail(
                ALLTNN_ERR_ARGUMENT,
                format_args!("batch size {batch} needs more memory than can be addressed"),
            )
        })
}

/// The arena a session for batches of up to `batch` images needs, in bytes.
///
/// # Safety
/// `model` must be null or a live model; `bytes` null or writable.
#[no_mangle]
pub unsafe extern "C" fn alltnn_arena_size(
    model: *const AlltnnModel,
    batch: usize,
    bytes: *mut usize,
) -> c_int {
    // SAFETY: a live model or null (caller's promise).
    let Some(handle) = (unsafe { model.as_ref() }) else {
        fail!(ALLTNN_ERR_NULL, "alltnn_arena_size: null model");
    };
    if bytes.is_null() || !aligned(bytes) {
        fail!(
            ALLTNN_ERR_NULL,
            "alltnn_arena_size: null or misaligned output"
        );
    }
    match arena_floats(&handle.model, batch) {
        Ok(n) => {
            // SAFETY: non-null, aligned and writable (caller's promise).
            unsafe { bytes.write(4 * n) };
            ALLTNN_OK
        }
        Err(code) => code,
    }
}

/// A session for batches of up to `batch` images whose buffers lie in `arena` (4-byte
/// aligned, at least [`alltnn_arena_size`] bytes).
///
/// # Safety
/// `model` must be null or a live model that outlives the session; `arena` null or
/// `arena_len` writable bytes that nothing else touches until [`alltnn_session_free`]; `out`
/// null or writable.
#[no_mangle]
pub unsafe extern "C" fn alltnn_session_new(
    model: *const AlltnnModel,
    batch: usize,
    arena: *mut c_void,
    arena_len: usize,
    out: *mut *mut AlltnnSession,
) -> c_int {
    if out.is_null() || arena.is_null() {
        fail!(ALLTNN_ERR_NULL, "alltnn_session_new: null pointer");
    }
    // SAFETY: `out` is non-null and writable (caller's promise).
    unsafe { out.write(core::ptr::null_mut()) };
    // SAFETY: a live model that outlives the session, or null (caller's promise).
    let Some(handle) = (unsafe { model.as_ref() }) else {
        fail!(ALLTNN_ERR_NULL, "alltnn_session_new: null model");
    };
    let needed = match arena_floats(&handle.model, batch) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let arena = arena.cast::<f32>();
    if !aligned(arena) {
        fail!(
            ALLTNN_ERR_MISALIGNED,
            "arena at {arena:p} is not 4-byte aligned"
        );
    }
    if arena_len / 4 < needed {
        fail!(
            ALLTNN_ERR_ARENA,
            "arena of {arena_len} bytes is too small: batch {batch} needs {}",
            4 * needed
        );
    }
    // SAFETY: `needed` floats of the caller's arena, aligned, exclusively ours until freed.
    let arena: &'static mut [f32] = unsafe { core::slice::from_raw_parts_mut(arena, needed) };
    match Engine::in_arena(&handle.model, batch, arena) {
        Ok(engine) => {
            // SAFETY: as above.
            unsafe { out.write(Box::into_raw(Box::new(AlltnnSession { engine }))) };
            ALLTNN_OK
        }
        Err(e) => fail!(ALLTNN_ERR_ARENA, "{e}"),
    }
}

/// Runs `input` (NHWC floats, preprocessed: `n × input_len` for 1 to `batch` images) and
/// writes the `n × classes` probabilities (or linear outputs) to `probs_out`.
///
/// # Safety
/// `session` must be null or live; `input` null or `len` readable floats; `probs_out` null or
/// `probs_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn alltnn_run(
    session: *mut AlltnnSession,
    input: *const f32,
    len: usize,
    probs_out: *mut f32,
    probs_len: usize,
) -> c_int {
    // SAFETY: a live session or null (caller's promise).
    let Some(session) = (unsafe { session.as_mut() }) else {
        fail!(ALLTNN_ERR_NULL, "alltnn_run: null session");
    };
    if input.is_null() || probs_out.is_null() {
        fail!(ALLTNN_ERR_NULL, "alltnn_run: null buffer");
    }
    if !aligned(input) || !aligned(probs_out) {
        fail!(
            ALLTNN_ERR_MISALIGNED,
            "alltnn_run: float buffers must be 4-byte aligned"
        );
    }
    let engine = &mut session.engine;
    let spec = engine.model().spec();
    let (per, classes, capacity) = (
        spec.input_len(),
        spec.readout.classes as usize,
        engine.capacity(),
    );
    let batch = len / per.max(1);
    if batch == 0 || batch * per != len || batch > capacity {
        fail!(
            ALLTNN_ERR_INPUT,
            "input holds {len} floats; 1 to {capacity} images of {per} expected"
        );
    }
    if probs_len != batch * classes {
        fail!(
            ALLTNN_ERR_OUTPUT,
            "probs_out holds {probs_len} floats; {batch} images of {classes} classes need {}",
            batch * classes
        );
    }
    // SAFETY: `len` readable floats (caller's promise), at most an arena's worth.
    let input = unsafe { core::slice::from_raw_parts(input, len) };
    // SAFETY: `probs_len` writable floats (caller's promise), as many as the batch's outputs.
    let out = unsafe { core::slice::from_raw_parts_mut(probs_out, probs_len) };
    match engine.run(input) {
        Ok(probs) => {
            out.copy_from_slice(probs);
            ALLTNN_OK
        }
        Err(e) => fail!(ALLTNN_ERR_INPUT, "{e}"),
    }
}

/// Per-layer energy `Σ E_post / 3 + 2·Σ E_pre / 3` over the units and images of the last run
/// (the original's definition, see `alltnn energy`), into `energy_out[layers]`. `input` must
/// be the input of that run: the session keeps activations, not the image.
///
/// # Safety
/// `session` must be null or live; `input` null or `len` readable floats; `energy_out` null or
/// `layers` writable doubles.
#[no_mangle]
pub unsafe extern "C" fn alltnn_energy(
    session: *const AlltnnSession,
    input: *const f32,
    len: usize,
    energy_out: *mut f64,
    layers: usize,
) -> c_int {
    // SAFETY: a live session or null (caller's promise).
    let Some(session) = (unsafe { session.as_ref() }) else {
        fail!(ALLTNN_ERR_NULL, "alltnn_energy: null session");
    };
    if input.is_null() || energy_out.is_null() {
        fail!(ALLTNN_ERR_NULL, "alltnn_energy: null buffer");
    }
    if !aligned(input) || !aligned(energy_out) {
        fail!(ALLTNN_ERR_MISALIGNED, "alltnn_energy: misaligned buffer");
    }
    let engine = &session.engine;
    let spec = engine.model().spec();
    let batch = engine.batch();
    if batch == 0 {
        fail!(ALLTNN_ERR_STATE, "alltnn_energy: no run yet");
    }
    if len != batch * spec.input_len() {
        fail!(
            ALLTNN_ERR_INPUT,
            "input holds {len} floats; the last run had {batch} images of {}",
            spec.input_len()
        );
    }
    if layers != spec.layers.len() {
        fail!(
            ALLTNN_ERR_OUTPUT,
            "energy_out holds {layers} values; the model has {} layers",
            spec.layers.len()
        );
    }
    // SAFETY: `len` readable floats and `layers` writable doubles (caller's promise).
    let (input, out) = unsafe {
        (
            core::slice::from_raw_parts(input, len),
            core::slice::from_raw_parts_mut(energy_out, layers),
        )
    };
    energy::batch_totals(engine, input, out);
    ALLTNN_OK
}

/// Frees a session (null is ignored); its arena is the caller's again.
///
/// # Safety
/// `session` must be null or a live session, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn alltnn_session_free(session: *mut AlltnnSession) -> c_int {
    if !session.is_null() {
        // SAFETY: from `Box::into_raw` in `alltnn_session_new`, freed once (caller's promise).
        drop(unsafe { Box::from_raw(session) });
    }
    ALLTNN_OK
}

/// Frees a model (null is ignored); its bytes are the caller's again.
///
/// # Safety
/// `model` must be null or a live model without live sessions, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn alltnn_model_free(model: *mut AlltnnModel) -> c_int {
    if !model.is_null() {
        // SAFETY: from `Box::into_raw` in `alltnn_model_open_bytes`, freed once.
        drop(unsafe { Box::from_raw(model) });
    }
    ALLTNN_OK
}
