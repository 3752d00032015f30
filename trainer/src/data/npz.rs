//! NumPy `.npz` archives: `images` (uint8 NHWC, or NHW grey) and `labels` (integer indices or
//! one-hot float rows), or per-split `train_images`/`train_labels`, `val_…`, `test_…`.
//!
//! Archive members are compressed streams without random access, so the split's images are
//! read into memory at open: meant for small sets.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use npyz::npz::NpzArchive;
use npyz::{DType, NpyFile, Order, TypeChar};

use super::labels::{self, ElementKind, LabelLayout};
use super::{RawImage, Source, Split};
use crate::error::{Result, TrainError};

type Archive = NpzArchive<BufReader<File>>;

pub(crate) struct NpzSource {
    path: PathBuf,
    /// The array the images came from, e.g. "train_images".
    key: String,
    height: usize,
    width: usize,
    channels: usize,
    pixels: Vec<u8>,
    labels: Vec<u32>,
    classes: usize,
}

/// Opens `split` of the archive at `path`.
pub(crate) fn open(path: &Path, split: Split) -> Result<NpzSource> {
    let mut archive = NpzArchive::open(path)
        .map_err(|e| TrainError::data(path, format!("cannot open as .npz: {e}")))?;
    let names: Vec<String> = archive.array_names().map(str::to_string).collect();
    let prefixes = split_prefixes(&names);
    let prefix = if prefixes.is_empty() {
        String::new()
    } else if prefixes.contains(&split) {
        format!("{}_", split.name())
    } else {
        let present: Vec<&str> = prefixes.iter().map(|s| s.name()).collect();
        return Err(TrainError::data(
            path,
            format!(
                "missing split '{}': splits present: {}",
                split.name(),
                present.join(", ")
            ),
        ));
    };
    let key = format!("{prefix}images");
    let labels_key = format!("{prefix}labels");
    let (shape, pixels) = read_images(&mut archive, &key, &names, path)?;
    let (height, width, channels) = match shape[..] {
        [_, h, w] => (h, w, 1),
        [_, h, w, c] if c == 1 || c == 3 => (h, w, c),
        _ => {
            return Err(TrainError::data(
                path,
                format!("{key}: expected shape (N, H, W, 1 or 3) or (N, H, W), found {shape:?}"),
            ))
        }
    };
    let images = shape[0];
    let classes = classes_over_splits(&mut archive, &names, &prefixes, path)?;
    let labels = read_labels(&mut archive, &labels_key, &names, Some(images), path)?.check(
        classes,
        path,
        &labels_key,
    )?;
    Ok(NpzSource {
        path: path.to_path_buf(),
        key,
        height,
        width,
        channels,
        pixels,
        labels,
        classes,
    })
}

/// The splits that have a `<split>_images` array.
fn split_prefixes(names: &[String]) -> Vec<Split> {
    Split::ALL
        .into_iter()
        .filter(|s| names.contains(&format!("{}_images", s.name())))
        .collect()
}

fn member<'a>(
    archive: &'a mut Archive,
    key: &str,
    names: &[String],
    path: &Path,
) -> Result<NpyFile<npyz::zip::read::ZipFile<'a>>> {
    let missing = || {
        TrainError::data(
            path,
            format!(
                "missing array '{key}': arrays present: {}",
                names.join(", ")
            ),
        )
    };
    let file = archive
        .by_name(key)
        .map_err(|e| TrainError::data(path, format!("cannot read array '{key}': {e}")))?
        .ok_or_else(missing)?;
    if file.order() == Order::Fortran {
        return Err(TrainError::data(
            path,
            format!("{key}: Fortran-ordered arrays are not supported"),
        ));
    }
    Ok(file)
}

fn type_of(file: &NpyFile<impl Read>) -> Option<(TypeChar, usize)> {
    match file.dtype() {
        DType::Plain(t) => Some((t.type_char(), t.num_bytes()?)),
        _ => None,
    }
}

/// The raw uint8 pixels and the shape of an image array.
fn read_images(
    archive: &mut Archive,
    key: &str,
    names: &[String],
    path: &Path,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = member(archive, key, names, path)?;
    if type_of(&file) != Some((TypeChar::Uint, 1)) {
        return Err(TrainError::data(
            path,
            format!(
                "{key}: expected uint8 pixels, found {}",
                file.dtype().descr()
            ),
        ));
    }
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let expected = shape.iter().product::<usize>();
    // uint8 needs no decoding, so the payload is read in one go rather than element by element.
    let mut pixels = Vec::with_capacity(expected);
    file.into_inner()
        .read_to_end(&mut pixels)
        .map_err(|e| TrainError::data(path, format!("cannot read array '{key}': {e}")))?;
    if pixels.len() != expected {
        return Err(TrainError::data(
            path,
            format!("{key}: {} bytes for shape {shape:?}", pixels.len()),
        ));
    }
    Ok((shape, pixels))
}

/// Stored label values: widened integer indices, or float rows of width `classes`.
enum Labels {
    Indices(Vec<i128>),
    OneHot { classes: usize, rows: Vec<f64> },
}

impl Labels {
    /// The number of classes these labels imply.
    fn classes(&self, path: &Path, key: &str) -> Result<usize> {
        match self {
            Labels::Indices(values) => labels::classes_of_indices(values, path, key),
            Labels::OneHot { classes, .. } => Ok(*classes),
        }
    }

    /// Checked class indices, given the class count of the whole archive.
    fn check(&self, classes: usize, path: &Path, key: &str) -> Result<Vec<u32>> {
        match self {
            Labels::Indices(values) => labels::check_indices(values, classes, path, key),
            Labels::OneHot { classes, rows } => labels::argmax_rows(rows, *classes, 0, path, key),
        }
    }
}

fn read_labels(
    archive: &mut Archive,
    key: &str,
    names: &[String],
    images: Option<usize>,
    path: &Path,
) -> Result<Labels> {
    let file = member(archive, key, names, path)?;
    let kind = match type_of(&file) {
        Some((TypeChar::Int | TypeChar::Uint, _)) => ElementKind::Integer,
        Some((TypeChar::Float, _)) => ElementKind::Float,
        _ => ElementKind::Other,
    };
    // Without an image count (other splits, read for their class count) any length will do.
    let images = images.unwrap_or(file.shape().first().copied().unwrap_or(0) as usize);
    let fail =
        |e: std::io::Error| TrainError::data(path, format!("cannot read array '{key}': {e}"));
    let unsupported = |file: &NpyFile<_>| {
        TrainError::data(
            path,
            format!("{key}: unsupported label type {}", file.dtype().descr()),
        )
    };
    Ok(
        match labels::layout(kind, file.shape(), images, path, key)? {
            LabelLayout::Indices => Labels::Indices(match type_of(&file) {
                Some((TypeChar::Int, 1)) => widen(file.into_vec::<i8>().map_err(fail)?),
                Some((TypeChar::Int, 2)) => widen(file.into_vec::<i16>().map_err(fail)?),
                Some((TypeChar::Int, 4)) => widen(file.into_vec::<i32>().map_err(fail)?),
                Some((TypeChar::Int, 8)) => widen(file.into_vec::<i64>().map_err(fail)?),
                Some((TypeChar::Uint, 1)) => widen(file.into_vec::<u8>().map_err(fail)?),
                Some((TypeChar::Uint, 2)) => widen(file.into_vec::<u16>().map_err(fail)?),
                Some((TypeChar::Uint, 4)) => widen(file.into_vec::<u32>().map_err(fail)?),
                Some((TypeChar::Uint, 8)) => widen(file.into_vec::<u64>().map_err(fail)?),
                _ => return Err(unsupported(&file)),
            }),
            LabelLayout::OneHot { classes } => Labels::OneHot {
                classes,
                rows: match type_of(&file) {
                    Some((TypeChar::Float, 4)) => file
                        .into_vec::<f32>()
                        .map_err(fail)?
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                    Some((TypeChar::Float, 8)) => file.into_vec::<f64>().map_err(fail)?,
                    _ => return Err(unsupported(&file)),
                },
            },
        },
    )
}

fn widen<T: Into<i128>>(values: Vec<T>) -> Vec<i128> {
    values.into_iter().map(Into::into).collect()
}

/// The class count all splits share: the widest one-hot row or the largest integer label + 1
/// over every label array of the archive.
fn classes_over_splits(
    archive: &mut Archive,
    names: &[String],
    prefixes: &[Split],
    path: &Path,
) -> Result<usize> {
    let keys: Vec<String> = if prefixes.is_empty() {
        vec!["labels".to_string()]
    } else {
        prefixes
            .iter()
            .map(|s| format!("{}_labels", s.name()))
            .collect()
    };
    let mut classes = 0;
    for key in keys.iter().filter(|k| names.contains(k)) {
        classes = classes.max(read_labels(archive, key, names, None, path)?.classes(path, key)?);
    }
    Ok(classes)
}

impl Source for NpzSource {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn image(&self, index: usize) -> Result<RawImage> {
        if index >= self.len() {
            return Err(TrainError::data(
                &self.path,
                format!(
                    "{}: image index {index} out of range (len {})",
                    self.key,
                    self.len()
                ),
            ));
        }
        let size = self.height * self.width * self.channels;
        Ok(RawImage {
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels: self.pixels[index * size..(index + 1) * size].to_vec(),
        })
    }

    fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }

    fn describe(&self) -> String {
        let key = if self.key == "images" {
            "images, used for every split".to_string()
        } else {
            self.key.clone()
        };
        format!(
            "{} ({key}: {} images {}x{}x{}, {} classes)",
            self.path.display(),
            self.len(),
            self.height,
            self.width,
            self.channels,
            self.classes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files written by tests/data/make_small_npz.py.
    fn file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    fn pattern(i: usize, y: usize, x: usize, c: usize) -> u8 {
        ((i * 37 + y * 5 + x * 3 + c * 60) % 256) as u8
    }

    #[test]
    fn per_split_arrays() {
        let train = open(&file("split.npz"), Split::Train).unwrap();
        // val's uint16 labels hold the largest label, 3.
        assert_eq!((train.len(), train.classes()), (6, 4));
        let image = train.image(4).unwrap();
        assert_eq!((image.height, image.width, image.channels), (10, 12, 3));
        assert_eq!(image.pixels[(2 * 12 + 5) * 3 + 1], pattern(4, 2, 5, 1));
        assert_eq!(
            (0..6).map(|i| train.label(i)).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2]
        );
        let val = open(&file("split.npz"), Split::Val).unwrap();
        let image = val.image(1).unwrap();
        assert_eq!(
            (image.channels, image.pixels[7 * 12 + 3]),
            (1, pattern(1, 7, 3, 0))
        );
        assert_eq!((val.classes(), val.label(0)), (4, 3));
        assert!(val.describe().contains("val_images"), "{}", val.describe());
    }

    #[test]
    fn missing_split_lists_the_splits() {
        let err = open(&file("split.npz"), Split::Test)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("split.npz") && err.contains("missing split 'test'"),
            "{err}"
        );
        assert!(err.contains("splits present: train, val"), "{err}");
    }

    #[test]
    fn plain_arrays_with_one_hot_labels_serve_every_split() {
        for split in Split::ALL {
            let source = open(&file("plain.npz"), split).unwrap();
            assert_eq!((source.len(), source.classes()), (4, 3));
            assert_eq!(
                (0..4).map(|i| source.label(i)).collect::<Vec<_>>(),
                [2, 0, 1, 2]
            );
            assert_eq!(
                source.image(3).unwrap().pixels[(8 * 9 + 8) * 3 + 2],
                pattern(3, 8, 8, 2)
            );
            assert!(
                source.describe().contains("every split"),
                "{}",
                source.describe()
            );
        }
    }

    #[test]
    fn not_an_npz_file() {
        let err = open(&file("make_small_npz.py"), Split::Train)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("make_small_npz.py") && err.contains("cannot open as .npz"),
            "{err}"
        );
    }
}
