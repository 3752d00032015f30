//! Typed errors of the runtime. Every message is one line that says what is wrong.

use alloc::string::String;
use alloc::vec::Vec;

/// A model spec that cannot describe a working network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model spec: {0}")]
pub struct SpecError(String);

impl SpecError {
    pub fn new(message: String) -> Self {
        SpecError(message)
    }
}

/// A `.tnn` byte buffer that cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("file is truncated: {expected} bytes expected, {found} present")]
    Truncated { expected: u64, found: u64 },
    #[error("not a .tnn model (bad magic bytes)")]
    BadMagic,
    #[error("unsupported .tnn version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("header checksum mismatch: the file is corrupt")]
    HeaderChecksum,
    #[error("metadata checksum mismatch: the file is corrupt")]
    MetadataChecksum,
    #[error("checksum mismatch in tensor `{0}`: the file is corrupt")]
    TensorChecksum(String),
    #[error("malformed metadata: {0}")]
    Malformed(String),
    #[error("tensor `{name}` has shape {found:?}, the spec requires {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{0}` required by the spec is missing")]
    MissingTensor(String),
    #[error("tensor `{0}` is not part of the spec")]
    UnexpectedTensor(String),
    #[error("tensor `{name}` is stored as {found}; {allowed}")]
    WrongDtype {
        name: String,
        found: &'static str,
        allowed: &'static str,
    },
    #[error("model bytes must start at a 64-byte aligned address for zero-copy use (see `AlignedBytes`)")]
    Misaligned,
    #[error("{0}")]
    Spec(#[from] SpecError),
}

/// Inference called with buffers that do not fit the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("input holds {found} values, {expected} expected ({batch} images of {per_image})")]
    InputLength {
        expected: usize,
        found: usize,
        batch: usize,
        per_image: usize,
    },
    #[error("batch of {found} images is larger than the engine's batch size {capacity}")]
    BatchTooLarge { found: usize, capacity: usize },
    #[error("batch size must be at least 1")]
    EmptyBatch,
    #[error("arena of {found} values is too small: the engine needs {needed}")]
    ArenaTooSmall { needed: usize, found: usize },
    #[error("int8 activations need int8 weights, but the {kernel} kernel is {dtype} (convert with --dtype int8)")]
    Int8ActivationsNeedInt8 { kernel: String, dtype: &'static str },
    #[error("int8 activations: the {kernel} kernel sums {rows} inputs per unit, more than the {max} whose integer sums fit 32 bits")]
    BlockTooLong {
        kernel: String,
        rows: usize,
        max: usize,
    },
}
