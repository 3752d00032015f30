//! Datasets, the original's preprocessing and augmentation, and a background batch loader.
//!
//! * [`open`] turns a `--data` spec into a [`Source`]: the Fashion-MNIST set (embedded or the
//!   Debian package's), an ecoset-layout HDF5 file, an image-folder tree or an `.npz` archive;
//! * [`preprocess`] is the original's crop, resize, augmentation and scaling to [-1, 1];
//! * [`Loader`] makes an epoch's batches on background threads, deterministically from a seed.

mod fashion_mnist;
mod folder;
mod h5;
mod labels;
mod loader;
mod npz;
mod preprocess;
mod sources;

pub use loader::{example_rng, shuffled, Batch, Loader};
pub use preprocess::{preprocess, resize_triangle, Preprocess};
pub use sources::{class_names, open};

/// One stored image: 8-bit, HWC, 1 or 3 channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawImage {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

/// Which part of a dataset to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// The name used for the split in files and folders: "train", "val", "test".
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];
}

/// A labelled image set. Send + Sync: the loader reads it from background threads.
///
/// Labels are read and checked when a source is opened, so [`Source::label`] cannot fail;
/// images are read on demand by [`Source::image`].
pub trait Source: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes: as stored (Fashion-MNIST's 10, one-hot width, class folders) or
    /// the largest label over all of the file's splits + 1, so every split agrees.
    fn classes(&self) -> usize;
    /// The image at `index`; an error (naming the file and index) when it cannot be read.
    fn image(&self, index: usize) -> crate::error::Result<RawImage>;
    /// The label at `index`, in `0..classes()`.
    ///
    /// # Panics
    /// When `index >= len()`.
    fn label(&self, index: usize) -> usize;
    /// A one-line description for logs, e.g. "fashion-mnist (embedded test split, …)".
    fn describe(&self) -> String;
}
