//! Memory-mapped model files: the file's pages are read only as the engine touches them.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::FormatError;
use crate::format::TnnFile;

/// A `.tnn` file mapped read-only into memory.
pub struct MappedModel {
    map: memmap2::Mmap,
}

impl MappedModel {
    pub fn open(path: impl AsRef<Path>) -> io::Result<MappedModel> {
        let file = File::open(path)?;
        // SAFETY: the map is read-only; like every reader of a memory-mapped file we rely on no
        // other process truncating or rewriting the model while it is in use (the converter
        // replaces files by rename, which leaves existing maps intact).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(MappedModel { map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Parses header and metadata (touching only the first pages).
    pub fn parse(&self) -> Result<TnnFile<'_>, FormatError> {
        TnnFile::parse(&self.map)
    }
}
