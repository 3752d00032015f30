//! Stimuli for inference: image files, directories of images, and `.npy` arrays.
//!
//! Everything is checked when the set is opened — unreadable paths, `.npy` files of the wrong
//! shape, dtype or size — so a run fails before it writes anything. Stimuli are read one at a
//! time as batches are filled (images decoded, `.npy` rows read at their offset), so memory does
//! not grow with the number of stimuli.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use alltnn_runtime::spec::{ModelSpec, Preprocess};
use anyhow::{bail, Context, Result};
use image::imageops::FilterType;
use npyz::{TypeChar, TypeStr};

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

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

struct NpyArray {
    path: PathBuf,
    file: File,
    pixels: Pixels,
    /// Byte offset of the first value.
    data_start: u64,
    count: usize,
}

enum Item {
    Image(PathBuf),
    Row { array: usize, index: usize },
}

/// An ordered set of stimuli for one model.
pub struct Stimuli {
    items: Vec<Item>,
    arrays: Vec<NpyArray>,
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
            if path.is_dir() {
                let images = list_images(path)?;
                if images.is_empty() {
                    bail!(
                        "{}: no .png or .jpg images in this directory",
                        path.display()
                    );
                }
                set.items.extend(images.into_iter().map(Item::Image));
            } else if has_extension(path, &["npy"]) {
                let array = open_npy(path, shape)?;
                let a = set.arrays.len();
                set.items
                    .extend((0..array.count).map(|index| Item::Row { array: a, index }));
                set.arrays.push(array);
            } else {
                std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
                set.items.push(Item::Image(path.clone()));
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

    /// A name for stimulus `i`: its path, or `file.npy[index]`.
    pub fn name(&self, i: usize) -> String {
        match &self.items[i] {
            Item::Image(p) => p.display().to_string(),
            Item::Row { array, index } => {
                format!("{}[{index}]", self.arrays[*array].path.display())
            }
        }
    }

    /// Writes stimulus `i`, preprocessed, into `out` (one image, HWC).
    pub fn load(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let n = self.image_len();
        match &self.items[i] {
            Item::Row { array, index } => {
                let array = &self.arrays[*array];
                let mut bytes = vec![0u8; n * array.pixels.bytes()];
                let offset = array.data_start + (index * bytes.len()) as u64;
                read_exact_at(&array.file, &mut bytes, offset).with_context(|| {
                    format!("{}: cannot read stimulus {index}", array.path.display())
                })?;
                match array.pixels {
                    Pixels::Raw => {
                        for (o, &p) in out.iter_mut().zip(&bytes) {
                            *o = self.preprocess.apply(p as f32);
                        }
                    }
                    Pixels::Preprocessed => {
                        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        }
                    }
                }
            }
            Item::Image(path) => {
                let pixels = decode_image(path, self.shape)?;
                for (o, p) in out.iter_mut().zip(pixels) {
                    *o = self.preprocess.apply(p as f32);
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
fn open_npy(path: &Path, [h, w, c]: [usize; 3]) -> Result<NpyArray> {
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
    Ok(NpyArray {
        path: path.to_path_buf(),
        file,
        pixels,
        data_start,
        count,
    })
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
