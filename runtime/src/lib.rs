//! `alltnn-runtime`: inference for All-Topographic Neural Networks without an operating system.
//!
//! The core is `#![no_std]` + `alloc`: a [`spec::ModelSpec`], the zero-copy `.tnn` reader
//! ([`format::TnnFile`]), the kernels, the batched [`engine::Engine`] and the cortical-sheet
//! layout ([`sheet`]). With `std` (default) errors implement `std::error::Error`; `mmap` adds
//! [`mmap::MappedModel`] for memory-mapped files; `capi` the C API ([`capi`], also without
//! `std`).
//!
//! ```
//! use alltnn_runtime::{engine::{Engine, Model}, format::TnnFile};
//! # fn run(bytes: &[u8], images: &[f32]) -> Result<(), Box<dyn std::error::Error>> {
//! let file = TnnFile::parse_verified(bytes)?;     // bytes: a memory map or a static array
//! let model = Model::from_file(&file)?;
//! let mut engine = Engine::new(&model, 8)?;        // buffers for batches of up to 8 images
//! let probs = engine.run(images)?;                 // NHWC, already preprocessed
//! # let _ = probs; Ok(()) }
//! ```
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "capi")]
pub mod capi;
pub mod energy;
pub mod engine;
pub mod error;
pub mod format;
pub mod hardware;
pub mod kernels;
mod math;
#[cfg(feature = "mmap")]
pub mod mmap;
pub mod sheet;
pub mod spec;

pub use engine::{Engine, Model};
pub use error::{FormatError, RunError, SpecError};
pub use format::TnnFile;
pub use spec::ModelSpec;
