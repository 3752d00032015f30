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

/// Writes one file atomically: a temporary beside it, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = alltnn_converter::tnn::temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}", path.display()))
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        for (tmp, _) in &self.pending {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// The NPY 1.0 header numpy writes for a C-ordered little-endian float32 array of `shape`. One
/// function makes every header, so `alltnn merge` can write a concatenation byte-identical to
/// an array written in one piece.
pub fn npy_f32_header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // As numpy: room to grow the first axis to 21 digits in place, then spaces and a newline
    // up to the next multiple of 64 (a whole 64 more when already aligned).
    if let Some(first) = shape.first() {
        dict.push_str(&" ".repeat(21usize.saturating_sub(first.to_string().len())));
    }
    let unpadded = 10 + dict.len() + 1;
    let padding = 64 - unpadded % 64;
    let header_len = u16::try_from(dict.len() + padding + 1).expect("NPY header of a few dims");
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    header.extend(header_len.to_le_bytes());
    header.extend(dict.bytes());
    header.resize(header.len() + padding, b' ');
    header.push(b'\n');
    header
}

/// Streams a float32 `.npy` array of known shape, row by row.
pub struct NpyStream<W: Write> {
    out: W,
    /// Values still to come before the array is complete.
    remaining: usize,
}

impl<W: Write> NpyStream<W> {
    pub fn new(mut out: W, shape: &[usize]) -> Result<Self> {
        out.write_all(&npy_f32_header(shape))?;
        Ok(NpyStream {
            out,
            remaining: shape.iter().product(),
        })
    }

    pub fn push(&mut self, values: &[f32]) -> Result<()> {
        anyhow::ensure!(
            values.len() <= self.remaining,
            "more values than the array's shape holds"
        );
        self.remaining -= values.len();
        let mut bytes = [0u8; 4096];
        for chunk in values.chunks(bytes.len() / 4) {
            for (b, v) in bytes.chunks_exact_mut(4).zip(chunk) {
                b.copy_from_slice(&v.to_le_bytes());
            }
            self.out.write_all(&bytes[..chunk.len() * 4])?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        anyhow::ensure!(
            self.remaining == 0,
            "{} values fewer than the array's shape holds",
            self.remaining
        );
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's own headers (`np.save` of float32 arrays of these shapes, numpy 2.4).
    #[test]
    fn npy_headers_match_numpy() {
        let header = npy_f32_header(&[6, 10]);
        assert_eq!(header.len(), 128);
        assert_eq!(&header[..10], b"\x93NUMPY\x01\x00\x76\x00");
        let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (6, 10), }";
        assert_eq!(&header[10..10 + dict.len()], dict);
        assert!(header[10 + dict.len()..127].iter().all(|&b| b == b' '));
        assert_eq!(header[127], b'\n');
        let header = npy_f32_header(&[3]);
        assert!(header.starts_with(b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }   "));
        assert_eq!(header.len(), 128);
        assert_eq!(npy_f32_header(&[10_000_000_000, 3, 3, 3]).len(), 128);
    }

    #[test]
    fn npy_stream_checks_its_length() {
        let mut out = Vec::new();
        let mut npy = NpyStream::new(&mut out, &[2, 2]).unwrap();
        npy.push(&[1.0, 2.0]).unwrap();
        assert!(npy.push(&[0.0; 3]).is_err());
        npy.push(&[3.0, 4.0]).unwrap();
        npy.finish().unwrap();
        assert_eq!(out.len(), 128 + 16);
        assert_eq!(&out[128..132], &1f32.to_le_bytes());
        let short = NpyStream::new(Vec::new(), &[2]).unwrap();
        assert!(short.finish().is_err());
    }
}
