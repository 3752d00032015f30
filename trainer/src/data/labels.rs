//! Label handling shared by the sources: class indices or one-hot rows, checked once at open.

use std::path::Path;

use crate::error::{Result, TrainError};

/// How a file stores its labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LabelLayout {
    /// Integer class indices, shape (N,) or (N, 1).
    Indices,
    /// Float rows of width `classes`; the label is the largest entry's column.
    OneHot { classes: usize },
}

/// The element kind of a stored label array, as far as the layout cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElementKind {
    Integer,
    Float,
    Other,
}

/// Decides the layout from the element kind and shape, and checks there is one label per image.
pub(crate) fn layout(
    kind: ElementKind,
    shape: &[u64],
    images: usize,
    path: &Path,
    what: &str,
) -> Result<LabelLayout> {
    let found = || {
        format!(
            "{what}: expected integer class indices (N,) or one-hot float rows (N, classes), \
             found {kind:?} {shape:?}"
        )
    };
    let layout = match (kind, shape) {
        (ElementKind::Integer, [_]) | (ElementKind::Integer, [_, 1]) => LabelLayout::Indices,
        (ElementKind::Float, [_, width]) if *width >= 2 => LabelLayout::OneHot {
            classes: *width as usize,
        },
        _ => return Err(TrainError::data(path, found())),
    };
    if shape[0] != images as u64 {
        return Err(TrainError::data(
            path,
            format!("{what}: {} labels for {images} images", shape[0]),
        ));
    }
    Ok(layout)
}

/// Number of classes implied by integer labels: the largest + 1 (0 when there are none).
pub(crate) fn classes_of_indices(values: &[i128], path: &Path, what: &str) -> Result<usize> {
    let Some(&max) = values.iter().max() else {
        return Ok(0);
    };
    // Labels travel as u32 in batches; a larger index is a corrupt file, not a real class.
    if max >= i128::from(u32::MAX) {
        return Err(TrainError::data(
            path,
            format!("{what}: label {max} is implausibly large"),
        ));
    }
    // All-negative labels imply no class; check_indices reports them.
    Ok(usize::try_from(max + 1).unwrap_or(0))
}

/// Checks that every label lies in `0..classes`; the error names the first bad index.
pub(crate) fn check_indices(
    values: &[i128],
    classes: usize,
    path: &Path,
    what: &str,
) -> Result<Vec<u32>> {
    values
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            u32::try_from(value)
                .ok()
                .filter(|&label| (label as usize) < classes)
                .ok_or_else(|| {
                    TrainError::data(
                        path,
                        format!(
                            "{what}: label {value} at index {index} is out of range 0..{classes}"
                        ),
                    )
                })
        })
        .collect()
}

/// Reduces one-hot (or soft) rows to their argmax; a row without a positive entry (all zero,
/// or NaN) holds no class and is an error naming its index (`first` + row).
pub(crate) fn argmax_rows<T: Copy + Into<f64>>(
    values: &[T],
    classes: usize,
    first: usize,
    path: &Path,
    what: &str,
) -> Result<Vec<u32>> {
    values
        .chunks_exact(classes)
        .enumerate()
        .map(|(row, entries)| {
            let (best, value) = entries.iter().map(|&v| v.into()).enumerate().fold(
                (0, f64::NEG_INFINITY),
                |acc, (i, v)| if v > acc.1 { (i, v) } else { acc },
            );
            if value > 0.0 {
                Ok(best as u32)
            } else {
                Err(TrainError::data(
                    path,
                    format!(
                        "{what}: label row {} is not one-hot (no positive entry)",
                        first + row
                    ),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_out_of_range_name_the_index() {
        let path = Path::new("x.h5");
        assert_eq!(
            check_indices(&[0, 2, 1], 3, path, "labels").unwrap(),
            vec![0, 2, 1]
        );
        let err = check_indices(&[0, 3], 3, path, "labels")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.h5") && err.contains("index 1") && err.contains("label 3"),
            "{err}"
        );
        let err = check_indices(&[-1], 3, path, "labels")
            .unwrap_err()
            .to_string();
        assert!(err.contains("index 0") && err.contains("label -1"), "{err}");
    }

    #[test]
    fn classes_are_largest_label_plus_one() {
        let path = Path::new("x");
        assert_eq!(classes_of_indices(&[3, 0, 7], path, "l").unwrap(), 8);
        assert_eq!(classes_of_indices(&[], path, "l").unwrap(), 0);
        assert!(classes_of_indices(&[1 << 40], path, "l").is_err());
    }

    #[test]
    fn one_hot_rows_reduce_to_argmax() {
        let path = Path::new("x");
        let rows = [0.0f32, 1.0, 0.0, 0.9, 0.05, 0.05];
        assert_eq!(argmax_rows(&rows, 3, 0, path, "l").unwrap(), vec![1, 0]);
        let err = argmax_rows(&[0.0f64, 0.0], 2, 5, path, "l")
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 5"), "{err}");
    }

    #[test]
    fn layout_from_kind_and_shape() {
        let path = Path::new("x");
        assert_eq!(
            layout(ElementKind::Integer, &[4], 4, path, "l").unwrap(),
            LabelLayout::Indices
        );
        assert_eq!(
            layout(ElementKind::Integer, &[4, 1], 4, path, "l").unwrap(),
            LabelLayout::Indices
        );
        assert_eq!(
            layout(ElementKind::Float, &[4, 7], 4, path, "l").unwrap(),
            LabelLayout::OneHot { classes: 7 }
        );
        assert!(layout(ElementKind::Float, &[4], 4, path, "l").is_err());
        assert!(layout(ElementKind::Other, &[4], 4, path, "l").is_err());
        let err = layout(ElementKind::Integer, &[3], 4, path, "l")
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 labels for 4 images"), "{err}");
    }
}
