//! The ecoset HDF5 layout: `f[split]['data']` uint8 (N, H, W, 3) and `f[split]['labels']`,
//! optionally one group deeper (`f[subset][split][…]`).
//!
//! Images are read one row at a time (ecoset is ~100 GB); only the labels are read at open.

use std::path::{Path, PathBuf};

use hdf5_reader::group::Group;
use hdf5_reader::{Dataset, Datatype, H5Type, Hdf5File, SliceInfo, SliceInfoElem};

use super::labels::{self, ElementKind, LabelLayout};
use super::{RawImage, Source, Split};
use crate::error::{Result, TrainError};

/// One-hot labels are reduced to indices this many rows at a time, so that ecoset's
/// (1.4 M × 565) float rows never sit in memory at once.
const ONE_HOT_ROWS_PER_READ: usize = 4096;

pub(crate) struct H5Source {
    path: PathBuf,
    /// The split's group path inside the file, e.g. "train" or "subset/train".
    group: String,
    data: Dataset,
    height: usize,
    width: usize,
    channels: usize,
    labels: Vec<u32>,
    classes: usize,
}

/// Opens `split` of the ecoset-layout file at `path`, inside group `subset` when given.
pub(crate) fn open(path: &Path, subset: Option<&str>, split: Split) -> Result<H5Source> {
    let file = Hdf5File::open(path)
        .map_err(|e| TrainError::data(path, format!("cannot open as HDF5: {e}")))?;
    let root = file
        .root_group()
        .map_err(|e| TrainError::data(path, format!("cannot read the root group: {e}")))?;
    let base = match subset {
        Some(name) => child_group(&root, name, "subset", path)?,
        None => root,
    };
    let prefix = subset
        .map(|s| format!("{}/", s.trim_matches('/')))
        .unwrap_or_default();
    let group = format!("{prefix}{}", split.name());
    let split_group = child_group(&base, split.name(), "split", path)?;
    let data = child_dataset(&split_group, "data", &group, path)?;
    let (height, width, channels) = image_shape(&data, &group, path)?;
    let images = data.shape()[0] as usize;
    let labels_set = child_dataset(&split_group, "labels", &group, path)?;
    let what = format!("{group}/labels");
    let layout = label_layout(&labels_set, images, path, &what)?;
    let classes = classes_over_splits(&base, &prefix, path)?;
    let labels = match layout {
        LabelLayout::Indices => labels::check_indices(
            &read_indices(&labels_set, path, &what)?,
            classes,
            path,
            &what,
        )?,
        LabelLayout::OneHot { classes: width } => {
            read_one_hot(&labels_set, images, width, path, &what)?
        }
    };
    Ok(H5Source {
        path: path.to_path_buf(),
        group,
        data,
        height,
        width,
        channels,
        labels,
        classes,
    })
}

/// Child group `name`, or an error listing the groups that are there.
fn child_group(parent: &Group, name: &str, kind: &str, path: &Path) -> Result<Group> {
    parent.group(name).map_err(|_| {
        let (groups, _) = parent.member_names().unwrap_or_default();
        TrainError::data(
            path,
            format!(
                "missing {kind} '{name}' in group '{}': groups present: {}",
                parent.name(),
                listing(&groups)
            ),
        )
    })
}

/// Child dataset `name` of the split group, or an error listing the members that are there.
fn child_dataset(parent: &Group, name: &str, group: &str, path: &Path) -> Result<Dataset> {
    parent.dataset(name).map_err(|_| {
        let (groups, datasets) = parent.member_names().unwrap_or_default();
        let members: Vec<String> = datasets.into_iter().chain(groups).collect();
        TrainError::data(
            path,
            format!(
                "missing dataset '{group}/{name}': members present: {}",
                listing(&members)
            ),
        )
    })
}

fn listing(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// (H, W, C) of a uint8 image dataset shaped (N, H, W, C ∈ {1, 3}) or grey (N, H, W).
fn image_shape(data: &Dataset, group: &str, path: &Path) -> Result<(usize, usize, usize)> {
    let bad = |message: String| TrainError::data(path, format!("{group}/data: {message}"));
    if !matches!(
        data.dtype(),
        Datatype::FixedPoint {
            size: 1,
            signed: false,
            ..
        }
    ) {
        return Err(bad(format!(
            "expected uint8 pixels, found {:?}",
            data.dtype()
        )));
    }
    match *data.shape() {
        [_, h, w] => Ok((h as usize, w as usize, 1)),
        [_, h, w, c] if c == 1 || c == 3 => Ok((h as usize, w as usize, c as usize)),
        ref shape => Err(bad(format!(
            "expected shape (N, H, W, 1 or 3) or (N, H, W), found {shape:?}"
        ))),
    }
}

fn label_layout(labels: &Dataset, images: usize, path: &Path, what: &str) -> Result<LabelLayout> {
    let kind = match labels.dtype() {
        Datatype::FixedPoint { .. } => ElementKind::Integer,
        Datatype::FloatingPoint { .. } => ElementKind::Float,
        _ => ElementKind::Other,
    };
    labels::layout(kind, labels.shape(), images, path, what)
}

/// The class count every split of the file shares: the widest one-hot row or the largest
/// integer label + 1 over all splits present, so train and val agree even when val lacks
/// the last classes. One-hot splits only need their shape, not their data.
fn classes_over_splits(base: &Group, prefix: &str, path: &Path) -> Result<usize> {
    let mut classes = 0;
    for split in Split::ALL {
        let Ok(group) = base.group(split.name()) else {
            continue;
        };
        let Ok(labels_set) = group.dataset("labels") else {
            continue;
        };
        let what = format!("{prefix}{}/labels", split.name());
        let count = match label_layout(
            &labels_set,
            labels_set.shape().first().copied().unwrap_or(0) as usize,
            path,
            &what,
        )? {
            LabelLayout::OneHot { classes } => classes,
            LabelLayout::Indices => {
                labels::classes_of_indices(&read_indices(&labels_set, path, &what)?, path, &what)?
            }
        };
        classes = classes.max(count);
    }
    Ok(classes)
}

/// Integer labels of any stored width and signedness, widened to i128.
fn read_indices(labels: &Dataset, path: &Path, what: &str) -> Result<Vec<i128>> {
    fn widen<T: H5Type + Copy + Into<i128>>(
        labels: &Dataset,
    ) -> hdf5_reader::error::Result<Vec<i128>> {
        Ok(labels
            .read_array::<T>()?
            .iter()
            .map(|&v| v.into())
            .collect())
    }
    let values = match labels.dtype() {
        Datatype::FixedPoint {
            size: 1,
            signed: true,
            ..
        } => widen::<i8>(labels),
        Datatype::FixedPoint {
            size: 1,
            signed: false,
            ..
        } => widen::<u8>(labels),
        Datatype::FixedPoint {
            size: 2,
            signed: true,
            ..
        } => widen::<i16>(labels),
        Datatype::FixedPoint {
            size: 2,
            signed: false,
            ..
        } => widen::<u16>(labels),
        Datatype::FixedPoint {
            size: 4,
            signed: true,
            ..
        } => widen::<i32>(labels),
        Datatype::FixedPoint {
            size: 4,
            signed: false,
            ..
        } => widen::<u32>(labels),
        Datatype::FixedPoint {
            size: 8,
            signed: true,
            ..
        } => widen::<i64>(labels),
        Datatype::FixedPoint {
            size: 8,
            signed: false,
            ..
        } => widen::<u64>(labels),
        other => {
            return Err(TrainError::data(
                path,
                format!("{what}: unsupported integer type {other:?}"),
            ))
        }
    };
    values.map_err(|e| TrainError::data(path, format!("cannot read {what}: {e}")))
}

/// One-hot float rows reduced to their argmax, a block of rows at a time.
fn read_one_hot(
    labels: &Dataset,
    images: usize,
    classes: usize,
    path: &Path,
    what: &str,
) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(images);
    for first in (0..images).step_by(ONE_HOT_ROWS_PER_READ) {
        let end = (first + ONE_HOT_ROWS_PER_READ).min(images);
        let rows = SliceInfo {
            selections: vec![range(first, end), range(0, classes)],
        };
        let read_error = |e: hdf5_reader::error::Error| {
            TrainError::data(path, format!("cannot read {what}: {e}"))
        };
        let block = match labels.dtype() {
            Datatype::FloatingPoint { size: 4, .. } => {
                let values: Vec<f32> = labels
                    .read_slice::<f32>(&rows)
                    .map_err(read_error)?
                    .iter()
                    .copied()
                    .collect();
                labels::argmax_rows(&values, classes, first, path, what)?
            }
            Datatype::FloatingPoint { size: 8, .. } => {
                let values: Vec<f64> = labels
                    .read_slice::<f64>(&rows)
                    .map_err(read_error)?
                    .iter()
                    .copied()
                    .collect();
                labels::argmax_rows(&values, classes, first, path, what)?
            }
            other => {
                return Err(TrainError::data(
                    path,
                    format!("{what}: unsupported float type {other:?}"),
                ))
            }
        };
        out.extend(block);
    }
    Ok(out)
}

fn range(start: usize, end: usize) -> SliceInfoElem {
    SliceInfoElem::Slice {
        start: start as u64,
        end: end as u64,
        step: 1,
    }
}

impl Source for H5Source {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    /// Reads only row `index` (and so only the chunks holding it) of the image dataset.
    fn image(&self, index: usize) -> Result<RawImage> {
        let fail = |message: String| {
            TrainError::data(
                &self.path,
                format!("{}/data row {index}: {message}", self.group),
            )
        };
        if index >= self.len() {
            return Err(fail(format!("out of range (len {})", self.len())));
        }
        let mut selections = vec![
            SliceInfoElem::Index(index as u64),
            range(0, self.height),
            range(0, self.width),
        ];
        if self.data.ndim() == 4 {
            selections.push(range(0, self.channels));
        }
        let row = self
            .data
            .read_slice::<u8>(&SliceInfo { selections })
            .map_err(|e| fail(e.to_string()))?;
        Ok(RawImage {
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels: row.iter().copied().collect(),
        })
    }

    fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }

    fn describe(&self) -> String {
        format!(
            "{}:{} ({} images {}x{}x{}, {} classes)",
            self.path.display(),
            self.group,
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

    /// tests/data/ecoset_small.h5, written by tests/data/make_ecoset_h5.py.
    fn file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ecoset_small.h5")
    }

    /// The generator's pixel pattern.
    fn pattern(i: usize, y: usize, x: usize, c: usize) -> u8 {
        ((i * 37 + y * 5 + x * 3 + c * 60) % 256) as u8
    }

    fn expected_image(i: usize, height: usize, width: usize, channels: usize) -> Vec<u8> {
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                pixels.extend((0..channels).map(|c| pattern(i, y, x, c)));
            }
        }
        pixels
    }

    #[test]
    fn reads_rows_of_a_chunked_gzip_dataset() {
        let train = open(&file(), None, Split::Train).unwrap();
        assert_eq!((train.len(), train.classes()), (10, 5));
        for i in [0, 5, 9] {
            let image = train.image(i).unwrap();
            assert_eq!((image.height, image.width, image.channels), (20, 24, 3));
            assert_eq!(image.pixels, expected_image(i, 20, 24, 3), "row {i}");
        }
        assert_eq!(
            (0..10).map(|i| train.label(i)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
        );
        let err = train.image(10).unwrap_err().to_string();
        assert!(
            err.contains("ecoset_small.h5") && err.contains("train/data row 10"),
            "{err}"
        );
        assert!(
            train
                .describe()
                .contains("train (10 images 20x24x3, 5 classes)"),
            "{}",
            train.describe()
        );
    }

    #[test]
    fn classes_agree_across_splits() {
        // Only test holds label 4, stored as uint8.
        let test = open(&file(), None, Split::Test).unwrap();
        assert_eq!((test.len(), test.classes()), (4, 5));
        assert_eq!(
            (0..4).map(|i| test.label(i)).collect::<Vec<_>>(),
            [4, 3, 2, 1]
        );
    }

    #[test]
    fn missing_split_lists_the_groups() {
        let err = open(&file(), None, Split::Val).err().unwrap().to_string();
        assert!(
            err.contains("ecoset_small.h5") && err.contains("missing split 'val'"),
            "{err}"
        );
        assert!(
            err.contains("groups present:") && err.contains("train") && err.contains("test"),
            "{err}"
        );
    }

    #[test]
    fn subset_with_one_hot_labels() {
        let train = open(&file(), Some("onehot"), Split::Train).unwrap();
        assert_eq!((train.len(), train.classes()), (6, 7));
        assert_eq!(
            (0..6).map(|i| train.label(i)).collect::<Vec<_>>(),
            [0, 3, 6, 2, 5, 1]
        );
        // Chunks hold two rows: row 3 is the second of its chunk.
        assert_eq!(train.image(3).unwrap().pixels, expected_image(3, 16, 16, 3));
        let val = open(&file(), Some("onehot"), Split::Val).unwrap();
        assert_eq!((val.len(), val.label(2)), (3, 6));
        assert!(val.describe().contains("onehot/val"), "{}", val.describe());
    }

    #[test]
    fn missing_subset_is_named() {
        let err = open(&file(), Some("nope"), Split::Train)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("missing subset 'nope'") && err.contains("onehot"),
            "{err}"
        );
        let err = open(&file(), Some("onehot"), Split::Test)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("missing split 'test'") && err.contains("train, val"),
            "{err}"
        );
    }

    #[test]
    fn negative_label_names_the_index() {
        let err = open(&file(), Some("negative"), Split::Train)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("ecoset_small.h5") && err.contains("negative/train/labels"),
            "{err}"
        );
        assert!(
            err.contains("label -1 at index 1") && err.contains("out of range"),
            "{err}"
        );
    }

    #[test]
    fn grey_images_without_a_channel_axis() {
        let test = open(&file(), Some("grey"), Split::Test).unwrap();
        let image = test.image(2).unwrap();
        assert_eq!((image.height, image.width, image.channels), (8, 10, 1));
        assert_eq!(image.pixels, expected_image(2, 8, 10, 1));
        assert_eq!((test.classes(), test.label(0)), (3, 2));
    }

    #[test]
    fn reads_rows_of_a_contiguous_dataset() {
        let train = open(&file(), Some("contiguous"), Split::Train).unwrap();
        assert_eq!((train.len(), train.classes(), train.label(0)), (4, 2, 1));
        assert_eq!(train.image(2).unwrap().pixels, expected_image(2, 6, 5, 3));
    }

    #[test]
    fn loader_reads_rows_from_several_threads() {
        use crate::data::{example_rng, preprocess, Loader, Preprocess};
        let source: std::sync::Arc<dyn Source> =
            std::sync::Arc::new(open(&file(), None, Split::Train).unwrap());
        let cfg = Preprocess::original(8, 8, 3, Split::Train);
        let order: Vec<usize> = (0..10).rev().collect();
        let loader = Loader::new(
            source.clone(),
            order.clone(),
            3,
            0,
            cfg.clone(),
            1,
            0,
            false,
        );
        let images: Vec<f32> = loader
            .with_workers(3)
            .flat_map(|b| b.unwrap().images)
            .collect();
        let expected: Vec<f32> = order
            .iter()
            .enumerate()
            .flat_map(|(pos, &i)| {
                preprocess(
                    &source.image(i).unwrap(),
                    &cfg,
                    &mut example_rng(1, 0, pos as u64),
                )
            })
            .collect();
        assert_eq!(images, expected);
    }

    #[test]
    fn not_an_hdf5_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/make_ecoset_h5.py");
        let err = open(&path, None, Split::Train).err().unwrap().to_string();
        assert!(
            err.contains("make_ecoset_h5.py") && err.contains("cannot open as HDF5"),
            "{err}"
        );
        let err = open(Path::new("/nonexistent.h5"), None, Split::Train)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent.h5"), "{err}");
    }
}
