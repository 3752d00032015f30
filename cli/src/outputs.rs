//! Output files that appear only when complete: each is written under a hidden temporary name
//! and renamed when the whole run has succeeded. If the run fails, the temporaries are removed
//! and earlier results in the directory are left as they were.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub struct OutputDir {
    dir: PathBuf,
    /// (temporary, final) paths of the files written so far.
    pending: Vec<(PathBuf, PathBuf)>,
}

impl OutputDir {
    pub fn create(dir: &Path) -> Result<OutputDir> {
        fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create output directory", dir.display()))?;
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            pending: Vec::new(),
        })
    }

    /// A buffered writer for `name`, to be published by [`OutputDir::commit`].
    pub fn file(&mut self, name: &str) -> Result<BufWriter<File>> {
        let target = self.dir.join(name);
        let tmp = self
            .dir
            .join(format!(".{name}.{}.partial", std::process::id()));
        let file = File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
        self.pending.push((tmp, target));
        Ok(BufWriter::with_capacity(1 << 20, file))
    }

    /// Writes a whole file (flushed here, so a write error is not lost in a drop).
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut file = self.file(name)?;
        file.write_all(bytes)?;
        file.flush()?;
        Ok(())
    }

    /// Publishes every file under its final name.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, target) in std::mem::take(&mut self.pending) {
            fs::rename(&tmp, &target).with_context(|| format!("{}", target.display()))?;
        }
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        for (tmp, _) in &self.pending {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Streams a float32 `.npy` array of known shape, row by row.
pub struct NpyStream<W: Write> {
    writer: npyz::NpyWriter<f32, W>,
}

impl<W: Write> NpyStream<W> {
    pub fn new(out: W, shape: &[usize]) -> Result<Self> {
        use npyz::WriterBuilder;
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(out)
            .begin_nd()?;
        Ok(NpyStream { writer })
    }

    pub fn push(&mut self, values: &[f32]) -> Result<()> {
        self.writer.extend(values.iter().copied())?;
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        self.writer.finish()?;
        Ok(())
    }
}
