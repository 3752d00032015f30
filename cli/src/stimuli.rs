//! Stimuli for inference: image files, directories of images, and `.npy` arrays.
//!
//! Everything is checked when the set is opened — unreadable paths, `.npy` files of the wrong
//! shape or dtype — so a run fails before it writes anything. Images are decoded one batch at a
//! time; `.npy` arrays are held in memory.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use alltnn_runtime::spec::{ModelSpec, Preprocess};
use anyhow::{bail, Context, Result};
use image::imageops::FilterType;
use npyz::{TypeChar, TypeStr};

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

enum Pixels {
    /// Raw 8-bit pixels, preprocessed on load.
    Raw(Vec<u8>),
    /// Values already in the network's input range.
    Preprocessed(Vec<f32>),
}

struct NpyArray {
    path: PathBuf,
    pixels: Pixels,
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
                let array = read_npy(path, shape)?;
                let count = match &array.pixels {
                    Pixels::Raw(v) => v.len(),
                    Pixels::Preprocessed(v) => v.len(),
                } / set.image_len();
                let a = set.arrays.len();
                set.arrays.push(array);
                set.items
                    .extend((0..count).map(|index| Item::Row { array: a, index }));
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
            Item::Row { array, index } => match &self.arrays[*array].pixels {
                Pixels::Raw(v) => {
                    for (o, &p) in out.iter_mut().zip(&v[index * n..(index + 1) * n]) {
                        *o = self.preprocess.apply(p as f32);
                    }
                }
                Pixels::Preprocessed(v) => out.copy_from_slice(&v[index * n..(index + 1) * n]),
            },
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

fn read_npy(path: &Path, [h, w, c]: [usize; 3]) -> Result<NpyArray> {
    let file = File::open(path).with_context(|| format!("{}", path.display()))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{}: not a valid .npy file ({e})", path.display()))?;
    if npy.order() == npyz::Order::Fortran {
        bail!(
            "{}: Fortran-ordered arrays are not supported; save with C order",
            path.display()
        );
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let fits = match shape.as_slice() {
        [_, hh, ww, cc] | [hh, ww, cc] => [*hh, *ww, *cc] == [h, w, c],
        _ => false,
    };
    if !fits {
        bail!("{}: array of shape {shape:?} does not match the model input (N, {h}, {w}, {c}) or ({h}, {w}, {c})", path.display());
    }
    let dtype = match npy.dtype() {
        npyz::DType::Plain(t) => t,
        other => bail!(
            "{}: dtype {} is not supported: expected uint8 pixels or float32 preprocessed values",
            path.display(),
            other.descr()
        ),
    };
    let is =
        |t: &TypeStr, ch: TypeChar, size: usize| t.type_char() == ch && t.num_bytes() == Some(size);
    let read_err =
        |e: std::io::Error| anyhow::anyhow!("{}: cannot read array data ({e})", path.display());
    let pixels = if is(&dtype, TypeChar::Uint, 1) {
        Pixels::Raw(npy.into_vec::<u8>().map_err(read_err)?)
    } else if is(&dtype, TypeChar::Float, 4) {
        Pixels::Preprocessed(npy.into_vec::<f32>().map_err(read_err)?)
    } else {
        bail!("{}: dtype {dtype} is not supported: expected uint8 pixels or float32 preprocessed values", path.display());
    };
    Ok(NpyArray {
        path: path.to_path_buf(),
        pixels,
    })
}
