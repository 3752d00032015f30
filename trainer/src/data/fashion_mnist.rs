//! Fashion-MNIST from gzip IDX files: the 10k test split embedded in the binary, or the full
//! set of the Debian package `dataset-fashion-mnist` when it is installed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::labels::check_indices;
use super::{RawImage, Source, Split};
use crate::error::{Result, TrainError};

/// Where the Debian package `dataset-fashion-mnist` puts the full set.
pub(crate) const DEBIAN_ROOT: &str = "/usr/share/datasets/fashion-mnist";

/// The dataset's class names, by label.
pub(crate) const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const CLASSES: usize = 10;
const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;
/// With only the embedded 10k split, its first 8000 images train and the last 2000 validate/test.
const EMBEDDED_TRAIN: usize = 8000;

const EMBEDDED_IMAGES_NAME: &str = "<embedded>/t10k-images-idx3-ubyte.gz";
const EMBEDDED_LABELS_NAME: &str = "<embedded>/t10k-labels-idx1-ubyte.gz";
static EMBEDDED_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist/t10k-images-idx3-ubyte.gz");
static EMBEDDED_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz");

/// A decoded image/label file pair.
#[derive(Debug)]
pub(crate) struct IdxSet {
    rows: usize,
    cols: usize,
    images: Vec<u8>,
    labels: Vec<u32>,
}

/// A contiguous range of an [`IdxSet`].
pub(crate) struct FashionMnist {
    set: Arc<IdxSet>,
    first: usize,
    len: usize,
    origin: String,
}

/// Opens a split: from `debian_root` when that folder exists, else from the embedded split.
pub(crate) fn open(split: Split, debian_root: &Path) -> Result<FashionMnist> {
    if debian_root.is_dir() {
        open_debian(split, debian_root)
    } else {
        open_embedded(split)
    }
}

/// Train = the package's 60k train split; val and test = its 10k test split.
fn open_debian(split: Split, root: &Path) -> Result<FashionMnist> {
    let prefix = if split == Split::Train {
        "train"
    } else {
        "t10k"
    };
    let images_path = root.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let labels_path = root.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let read = |path: &PathBuf| std::fs::read(path).map_err(|e| TrainError::io(path, e));
    let set = parse_set(
        &read(&images_path)?,
        &read(&labels_path)?,
        &images_path,
        &labels_path,
    )?;
    let len = set.labels.len();
    let origin = format!(
        "fashion-mnist ({}, {} split, {len} images)",
        root.display(),
        if split == Split::Train {
            "train"
        } else {
            "test"
        }
    );
    Ok(FashionMnist {
        set: Arc::new(set),
        first: 0,
        len,
        origin,
    })
}

/// The embedded 10k test split: train = its first 8000 images, val and test = the last 2000.
pub(crate) fn open_embedded(split: Split) -> Result<FashionMnist> {
    let set = embedded()?;
    let total = set.labels.len();
    let train = EMBEDDED_TRAIN.min(total);
    let (first, len, part) = match split {
        Split::Train => (0, train, format!("train = its first {train}")),
        Split::Val | Split::Test => (
            train,
            total - train,
            format!("{} = its last {}", split.name(), total - train),
        ),
    };
    let origin = format!("fashion-mnist (embedded test split of {total} images; {part} images)");
    Ok(FashionMnist {
        set,
        first,
        len,
        origin,
    })
}

/// Decompresses and parses the embedded files once, on first use.
fn embedded() -> Result<Arc<IdxSet>> {
    static SET: OnceLock<std::result::Result<Arc<IdxSet>, String>> = OnceLock::new();
    let parsed = SET.get_or_init(|| {
        parse_set(
            EMBEDDED_IMAGES,
            EMBEDDED_LABELS,
            Path::new(EMBEDDED_IMAGES_NAME),
            Path::new(EMBEDDED_LABELS_NAME),
        )
        .map(Arc::new)
        .map_err(|e| e.to_string())
    });
    parsed
        .clone()
        .map_err(|message| TrainError::data(EMBEDDED_IMAGES_NAME, message))
}

/// Parses a gzip IDX image file and its label file, checking they agree.
pub(crate) fn parse_set(
    images_gz: &[u8],
    labels_gz: &[u8],
    images_path: &Path,
    labels_path: &Path,
) -> Result<IdxSet> {
    let images = gunzip(images_gz, images_path)?;
    let labels = gunzip(labels_gz, labels_path)?;
    let (image_dims, pixels) = parse_idx(&images, IMAGES_MAGIC, images_path)?;
    let (label_dims, label_bytes) = parse_idx(&labels, LABELS_MAGIC, labels_path)?;
    if image_dims[0] != label_dims[0] {
        return Err(TrainError::data(
            labels_path,
            format!(
                "{} labels for {} images in {}",
                label_dims[0],
                image_dims[0],
                images_path.display()
            ),
        ));
    }
    let values: Vec<i128> = label_bytes.iter().map(|&b| i128::from(b)).collect();
    Ok(IdxSet {
        rows: image_dims[1],
        cols: image_dims[2],
        images: pixels.to_vec(),
        labels: check_indices(&values, CLASSES, labels_path, "labels")?,
    })
}

fn gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| TrainError::data(path, format!("not a valid gzip file: {e}")))?;
    Ok(out)
}

/// Parses an IDX header (big-endian magic: 0, 0, type 0x08 = u8, number of dims; then the
/// dims) and returns the dims and the payload, which must hold exactly their product bytes.
fn parse_idx<'a>(bytes: &'a [u8], magic: u32, path: &Path) -> Result<(Vec<usize>, &'a [u8])> {
    let corrupt = |message: String| TrainError::data(path, format!("corrupt IDX file: {message}"));
    let ndims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    let word = |i: usize| {
        u32::from_be_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    if bytes.len() < header_len {
        return Err(corrupt(format!(
            "{} bytes, shorter than its header",
            bytes.len()
        )));
    }
    if word(0) != magic {
        return Err(corrupt(format!(
            "magic number {} (expected {magic})",
            word(0)
        )));
    }
    let dims: Vec<usize> = (1..=ndims).map(|i| word(i) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let payload = &bytes[header_len..];
    if expected != Some(payload.len()) {
        return Err(corrupt(format!(
            "dims {dims:?} but {} data bytes",
            payload.len()
        )));
    }
    Ok((dims, payload))
}

impl Source for FashionMnist {
    fn len(&self) -> usize {
        self.len
    }

    fn classes(&self) -> usize {
        CLASSES
    }

    fn image(&self, index: usize) -> Result<RawImage> {
        if index >= self.len {
            return Err(TrainError::data(
                &self.origin,
                format!("image index {index} out of range (len {})", self.len),
            ));
        }
        let size = self.set.rows * self.set.cols;
        let start = (self.first + index) * size;
        Ok(RawImage {
            height: self.set.rows,
            width: self.set.cols,
            channels: 1,
            pixels: self.set.images[start..start + size].to_vec(),
        })
    }

    fn label(&self, index: usize) -> usize {
        assert!(
            index < self.len,
            "label index {index} out of range (len {})",
            self.len
        );
        self.set.labels[self.first + index] as usize
    }

    fn describe(&self) -> String {
        self.origin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(payload);
        gz(&bytes)
    }

    fn parse(images: &[u8], labels: &[u8]) -> Result<IdxSet> {
        parse_set(images, labels, Path::new("img.gz"), Path::new("lab.gz"))
    }

    #[test]
    fn embedded_split_has_10000_images_and_known_first_label() {
        let train = open_embedded(Split::Train).unwrap();
        let test = open_embedded(Split::Test).unwrap();
        let val = open_embedded(Split::Val).unwrap();
        assert_eq!((train.len(), val.len(), test.len()), (8000, 2000, 2000));
        assert_eq!(train.classes(), 10);
        // The first image of Fashion-MNIST's test split is an ankle boot (label 9).
        assert_eq!(train.label(0), 9);
        let image = train.image(0).unwrap();
        assert_eq!(
            (
                image.height,
                image.width,
                image.channels,
                image.pixels.len()
            ),
            (28, 28, 1, 784)
        );
        assert!(image.pixels.iter().any(|&p| p > 0));
        assert!((0..train.len()).all(|i| train.label(i) < 10));
        assert!((0..test.len()).all(|i| test.label(i) < 10));
        // val/test continue where train ends.
        assert_eq!(
            test.image(0).unwrap().pixels,
            embedded().unwrap().images[8000 * 784..8001 * 784]
        );
        assert!(train.describe().contains("embedded") && train.describe().contains("first 8000"));
        assert!(test.describe().contains("last 2000"));
        assert!(train.image(8000).is_err());
    }

    #[test]
    fn debian_set_when_installed() {
        let root = Path::new(DEBIAN_ROOT);
        if !root.is_dir() {
            eprintln!("SKIPPED: {DEBIAN_ROOT} not installed");
            return;
        }
        let train = open(Split::Train, root).unwrap();
        let val = open(Split::Val, root).unwrap();
        assert_eq!((train.len(), val.len()), (60000, 10000));
        assert_eq!(val.label(0), 9);
        assert!(train.describe().contains("60000"));
    }

    #[test]
    fn missing_debian_root_falls_back_to_embedded() {
        let source = open(Split::Val, Path::new("/nonexistent/fashion-mnist")).unwrap();
        assert_eq!(source.len(), 2000);
    }

    #[test]
    fn parses_small_idx_pair() {
        let set = parse(&idx(2051, &[2, 2, 3], &[1; 12]), &idx(2049, &[2], &[3, 9])).unwrap();
        assert_eq!((set.rows, set.cols, set.labels.clone()), (2, 3, vec![3, 9]));
    }

    #[test]
    fn refuses_corrupt_files() {
        let labels = idx(2049, &[2], &[0, 1]);
        let cases = [
            (idx(2049, &[2, 2, 3], &[0; 12]), "magic number"),
            (idx(2051, &[2, 2, 3], &[0; 11]), "data bytes"),
            (gz(&[0, 0, 8]), "shorter than its header"),
            (b"not gzip".to_vec(), "gzip"),
        ];
        for (images, expected) in cases {
            let err = parse(&images, &labels).unwrap_err().to_string();
            assert!(err.contains("img.gz") && err.contains(expected), "{err}");
        }
        let err = parse(&idx(2051, &[3, 1, 1], &[0; 3]), &labels)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 labels for 3 images"), "{err}");
    }

    #[test]
    fn label_out_of_range_names_file_and_index() {
        let err = parse(&idx(2051, &[2, 1, 1], &[0; 2]), &idx(2049, &[2], &[1, 10]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lab.gz") && err.contains("index 1") && err.contains("label 10"),
            "{err}"
        );
    }
}
