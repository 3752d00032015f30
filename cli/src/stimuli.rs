//! Stimuli for inference: image files, directories of images, `.npy` arrays and HDF5 datasets.
//!
//! Everything is checked when the set is opened — unreadable paths, arrays of the wrong shape,
//! dtype or size — so a run fails before it writes anything. Stimuli are read as batches are
//! filled (images decoded in parallel, array rows read a run of consecutive rows at a time), on
//! a worker thread that stays at most two batches ahead of the model, so memory does not grow
//! with the number of stimuli.

use std::fs::File;
use std::io::BufReader;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use alltnn_runtime::spec::{ModelSpec, Preprocess};
use anyhow::{anyhow, bail, Context, Result};
use hdf5_reader::{Dataset, Datatype, Hdf5File, SliceInfo, SliceInfoElem};
use image::imageops::FilterType;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use npyz::{TypeChar, TypeStr};
use rayon::prelude::*;

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
const H5_EXTENSIONS: [&str; 2] = ["h5", "hdf5"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pixels {
    /// Raw 8-bit pixels, preprocessed on load.
    Raw,
    /// Little-endian float32 values already in the network's input range.
    Preprocessed,
}

impl Pixels {
    fn bytes(self) -> usize {
        match self {
            Pixels::Raw => 1,
            Pixels::Preprocessed => 4,
        }
    }
}

enum Store {
    Npy {
        file: File,
        /// Byte offset of the first value.
        data_start: u64,
    },
    H5(Box<Dataset>),
}

/// An array of stimuli in a file: an `.npy` file or an HDF5 dataset.
struct Array {
    /// `file.npy` or `file.h5:dataset`, as stimuli are named.
    label: String,
    store: Store,
    pixels: Pixels,
    count: usize,
}

enum Item {
    Image(PathBuf),
    Row { array: usize, index: usize },
}

/// An ordered set of stimuli for one model.
pub struct Stimuli {
    items: Vec<Item>,
    arrays: Vec<Array>,
    shape: [usize; 3],
    preprocess: Preprocess,
}

impl Stimuli {
    pub fn open(inputs: &[PathBuf], spec: &ModelSpec) -> Result<Stimuli> {
        let shape = [
            spec.input.height as usize,
            spec.input.width as usize,
            spec.input.channels as usize,
        ];
        if shape[2] != 1 && shape[2] != 3 {
            bail!("models with {} input channels cannot take images", shape[2]);
        }
        let mut set = Stimuli {
            items: Vec::new(),
            arrays: Vec::new(),
            shape,
            preprocess: spec.input.preprocess,
        };
        for path in inputs {
            let array = if let Some((file, dataset)) = h5_dataset_arg(path) {
                Some(open_h5(&file, dataset, shape)?)
            } else if path.is_dir() {
                let images = list_images(path)?;
                if images.is_empty() {
                    bail!(
                        "{}: no .png or .jpg images in this directory",
                        path.display()
                    );
                }
                set.items.extend(images.into_iter().map(Item::Image));
                None
            } else if has_extension(path, &["npy"]) {
                Some(open_npy(path, shape)?)
            } else if has_extension(path, &H5_EXTENSIONS) {
                bail!(
                    "{}: name the dataset to read as {}:DATASET ({})",
                    path.display(),
                    path.display(),
                    h5_members(path)
                );
            } else {
                std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
                set.items.push(Item::Image(path.clone()));
                None
            };
            if let Some(array) = array {
                let a = set.arrays.len();
                set.items
                    .extend((0..array.count).map(|index| Item::Row { array: a, index }));
                set.arrays.push(array);
            }
        }
        if set.items.is_empty() {
            bail!("no stimuli given");
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// A name for stimulus `i`: its path, `file.npy[index]` or `file.h5:dataset[index]`.
    pub fn name(&self, i: usize) -> String {
        match &self.items[i] {
            Item::Image(p) => p.display().to_string(),
            Item::Row { array, index } => format!("{}[{index}]", self.arrays[*array].label),
        }
    }

    /// Writes stimuli `first..`, preprocessed, into `out` (whole images, NHWC).
    pub fn load_batch(&self, first: usize, out: &mut [f32]) -> Result<()> {
        let n = self.image_len();
        let count = out.len() / n;
        // Collected in order, so that of several bad images the first is reported.
        let decoded: Vec<Result<()>> = out
            .par_chunks_mut(n)
            .enumerate()
            .map(|(i, slot)| match &self.items[first + i] {
                Item::Image(path) => {
                    let pixels = decode_image(path, self.shape)?;
                    for (o, p) in slot.iter_mut().zip(pixels) {
                        *o = self.preprocess.apply(p as f32);
                    }
                    Ok(())
                }
                Item::Row { .. } => Ok(()),
            })
            .collect();
        decoded.into_iter().collect::<Result<()>>()?;
        let mut i = 0;
        while i < count {
            let Item::Row { array, index } = self.items[first + i] else {
                i += 1;
                continue;
            };
            let mut rows = 1;
            while i + rows < count
                && matches!(self.items[first + i + rows],
                    Item::Row { array: a, index: j } if a == array && j == index + rows)
            {
                rows += 1;
            }
            self.arrays[array].read(
                index..index + rows,
                self.shape,
                self.preprocess,
                &mut out[i * n..(i + rows) * n],
            )?;
            i += rows;
        }
        Ok(())
    }

    /// Calls `f(first, images)` on consecutive batches of at most `batch` stimuli of `range`,
    /// in order, while a worker thread reads the next ones. At most three batches are in memory.
    pub fn for_each_batch(
        &self,
        range: Range<usize>,
        batch: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let n = self.image_len();
        std::thread::scope(|scope| {
            // One batch waits in the channel while the reader fills the next and `f` runs.
            let (full, batches) = mpsc::sync_channel::<Result<(usize, Vec<f32>)>>(1);
            let (used, spare) = mpsc::channel::<Vec<f32>>();
            scope.spawn(move || {
                for first in range.clone().step_by(batch) {
                    let mut images = spare.try_recv().unwrap_or_default();
                    images.resize(batch.min(range.end - first) * n, 0.0);
                    let read = self
                        .load_batch(first, &mut images)
                        .map(|()| (first, images));
                    let failed = read.is_err();
                    // A closed channel means the caller stopped early.
                    if full.send(read).is_err() || failed {
                        break;
                    }
                }
            });
            for read in batches {
                let (first, images) = read?;
                f(first, &images)?;
                // The reader may be done and gone; the buffer is then simply freed.
                let _ = used.send(images);
            }
            Ok(())
        })
    }
}

/// A progress bar over `n` stimuli showing their rate; `{msg}` comes first.
pub fn progress_bar(n: usize) -> ProgressBar {
    let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.1} images/s", state.per_sec());
    };
    ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{msg}{bar:40} {pos}/{len} stimuli, {rate}, eta {eta}")
            .expect("valid progress template")
            .with_key("rate", rate),
    )
}

impl Array {
    /// Writes rows `rows` of the array, preprocessed, into `out`.
    fn read(
        &self,
        rows: Range<usize>,
        [h, w, c]: [usize; 3],
        preprocess: Preprocess,
        out: &mut [f32],
    ) -> Result<()> {
        let what = || match rows.len() {
            1 => format!("{}: cannot read stimulus {}", self.label, rows.start),
            _ => format!(
                "{}: cannot read stimuli {}..{}",
                self.label, rows.start, rows.end
            ),
        };
        let raw = |o: &mut f32, p: u8| *o = preprocess.apply(p as f32);
        match &self.store {
            Store::Npy { file, data_start } => {
                let row_bytes = h * w * c * self.pixels.bytes();
                let mut bytes = vec![0u8; rows.len() * row_bytes];
                let offset = data_start + (rows.start * row_bytes) as u64;
                read_exact_at(file, &mut bytes, offset).with_context(what)?;
                match self.pixels {
                    Pixels::Raw => out.iter_mut().zip(bytes).for_each(|(o, p)| raw(o, p)),
                    Pixels::Preprocessed => {
                        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        }
                    }
                }
            }
            Store::H5(dataset) => {
                let all = |len: usize| SliceInfoElem::Slice {
                    start: 0,
                    end: len as u64,
                    step: 1,
                };
                let mut selections = vec![all(h), all(w), all(c)];
                if dataset.ndim() == 4 {
                    let rows = SliceInfoElem::Slice {
                        start: rows.start as u64,
                        end: rows.end as u64,
                        step: 1,
                    };
                    selections.insert(0, rows);
                }
                let selection = SliceInfo { selections };
                match self.pixels {
                    Pixels::Raw => {
                        let values = dataset
                            .read_slice::<u8>(&selection)
                            .map_err(|e| anyhow!("{}: {e}", what()))?;
                        out.iter_mut().zip(&values).for_each(|(o, &p)| raw(o, p));
                    }
                    Pixels::Preprocessed => {
                        let values = dataset
                            .read_slice::<f32>(&selection)
                            .map_err(|e| anyhow!("{}: {e}", what()))?;
                        out.iter_mut().zip(&values).for_each(|(o, &v)| *o = v);
                    }
                }
            }
        }
        Ok(())
    }
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry.with_context(|| format!("{}", dir.display()))?.path();
        if path.is_file() && has_extension(&path, &IMAGE_EXTENSIONS) {
            images.push(path);
        }
    }
    images.sort();
    Ok(images)
}

/// Decodes an image, resizes it to the model input (bilinear, as the original's
/// `tf.image.resize`) and returns HWC 8-bit pixels; grey images are repeated to 3 channels.
fn decode_image(path: &Path, [h, w, c]: [usize; 3]) -> Result<Vec<u8>> {
    let image = image::ImageReader::open(path)
        .with_context(|| format!("{}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("{}", path.display()))?
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: not a readable image ({e})", path.display()))?;
    let (w32, h32) = (w as u32, h as u32);
    let resize = |img: image::DynamicImage| {
        if img.width() == w32 && img.height() == h32 {
            img
        } else {
            img.resize_exact(w32, h32, FilterType::Triangle)
        }
    };
    Ok(if c == 1 {
        resize(image).into_luma8().into_raw()
    } else {
        resize(image).into_rgb8().into_raw()
    })
}

/// Checks an `.npy` file's header against the model input and locates its data; the values
/// themselves are read per stimulus.
fn open_npy(path: &Path, [h, w, c]: [usize; 3]) -> Result<Array> {
    let file = File::open(path).with_context(|| format!("{}", path.display()))?;
    let npy = npyz::NpyFile::new(BufReader::new(&file))
        .map_err(|e| anyhow::anyhow!("{}: not a valid .npy file ({e})", path.display()))?;
    if npy.order() == npyz::Order::Fortran {
        bail!(
            "{}: Fortran-ordered arrays are not supported; save with C order",
            path.display()
        );
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let count = match shape.as_slice() {
        [n, hh, ww, cc] if [*hh, *ww, *cc] == [h, w, c] => *n,
        [hh, ww, cc] if [*hh, *ww, *cc] == [h, w, c] => 1,
        _ => bail!(
            "{}: array of shape {shape:?} does not match the model input (N, {h}, {w}, {c}) or ({h}, {w}, {c})",
            path.display()
        ),
    };
    let unsupported = |dtype: &str| {
        anyhow::anyhow!(
            "{}: dtype {dtype} is not supported: expected uint8 pixels or float32 preprocessed values",
            path.display()
        )
    };
    let pixels = match npy.dtype() {
        npyz::DType::Plain(t) if is(&t, TypeChar::Uint, 1) => Pixels::Raw,
        npyz::DType::Plain(t)
            if is(&t, TypeChar::Float, 4) && t.endianness() != npyz::Endianness::Big =>
        {
            Pixels::Preprocessed
        }
        other => return Err(unsupported(&other.descr())),
    };
    let data_len = (count * h * w * c * pixels.bytes()) as u64;
    let file_len = file
        .metadata()
        .with_context(|| format!("{}", path.display()))?
        .len();
    let data_start = npy_data_start(&file).with_context(|| format!("{}", path.display()))?;
    if data_start + data_len != file_len {
        bail!(
            "{}: file holds {} data bytes, its header announces {data_len} (truncated?)",
            path.display(),
            file_len.saturating_sub(data_start)
        );
    }
    Ok(Array {
        label: path.display().to_string(),
        store: Store::Npy { file, data_start },
        pixels,
        count,
    })
}

/// `FILE.h5:DATASET` (or `.hdf5`): the file and the dataset's path inside it. A file that
/// exists under the whole name is a file.
fn h5_dataset_arg(arg: &Path) -> Option<(PathBuf, &str)> {
    let (file, dataset) = arg.to_str()?.rsplit_once(':')?;
    let file = PathBuf::from(file);
    (has_extension(&file, &H5_EXTENSIONS) && !arg.exists()).then_some((file, dataset))
}

/// What an HDF5 file holds at the top level, for error messages.
fn h5_members(path: &Path) -> String {
    let members = Hdf5File::open(path)
        .and_then(|f| f.root_group())
        .and_then(|g| g.member_names());
    match members {
        Ok((groups, datasets)) if groups.len() + datasets.len() > 0 => {
            let names: Vec<String> = datasets
                .into_iter()
                .chain(groups.into_iter().map(|g| g + "/"))
                .collect();
            format!("top level: {}", names.join(", "))
        }
        Ok(_) => "the file is empty".to_string(),
        Err(e) => format!("cannot read it as HDF5: {e}"),
    }
}

/// Opens an HDF5 dataset of stimuli and checks its shape and type against the model input;
/// rows are read per batch, touching only the chunks that hold them.
fn open_h5(path: &Path, dataset: &str, [h, w, c]: [usize; 3]) -> Result<Array> {
    let label = format!("{}:{dataset}", path.display());
    if dataset.is_empty() {
        bail!(
            "{label}: name the dataset after the colon ({})",
            h5_members(path)
        );
    }
    let file = Hdf5File::open(path)
        .map_err(|e| anyhow!("{}: cannot open as HDF5 ({e})", path.display()))?;
    let data = file
        .dataset(dataset)
        .map_err(|_| anyhow!("{label}: no such dataset ({})", h5_members(path)))?;
    let shape: Vec<usize> = data.shape().iter().map(|&d| d as usize).collect();
    let count = match shape.as_slice() {
        [n, hh, ww, cc] if [*hh, *ww, *cc] == [h, w, c] => *n,
        [hh, ww, cc] if [*hh, *ww, *cc] == [h, w, c] => 1,
        _ => bail!(
            "{label}: dataset of shape {shape:?} does not match the model input (N, {h}, {w}, {c}) or ({h}, {w}, {c})"
        ),
    };
    let pixels = match data.dtype() {
        Datatype::FixedPoint {
            size: 1,
            signed: false,
            ..
        } => Pixels::Raw,
        Datatype::FloatingPoint { size: 4, .. } => Pixels::Preprocessed,
        other => bail!(
            "{label}: dtype {} is not supported: expected uint8 pixels or float32 preprocessed values",
            h5_type_name(other)
        ),
    };
    Ok(Array {
        label,
        store: Store::H5(Box::new(data)),
        pixels,
        count,
    })
}

fn h5_type_name(dtype: &Datatype) -> String {
    match dtype {
        Datatype::FixedPoint { size, signed, .. } => {
            format!("{}int{}", if *signed { "" } else { "u" }, size * 8)
        }
        Datatype::FloatingPoint { size, .. } => format!("float{}", size * 8),
        other => format!("{other:?}"),
    }
}

fn is(t: &TypeStr, ch: TypeChar, size: usize) -> bool {
    t.type_char() == ch && t.num_bytes() == Some(size)
}

/// Where an `.npy` file's data begin: after the magic, version, header length and header
/// (NPY format versions 1.0 to 3.0).
fn npy_data_start(file: &File) -> std::io::Result<u64> {
    let mut head = [0u8; 12];
    read_exact_at(file, &mut head, 0)?;
    Ok(match head[6] {
        1 => 10 + u64::from(u16::from_le_bytes([head[8], head[9]])),
        _ => 12 + u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]])),
    })
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}
