//! `--data` specs: which source a string names, and opening it.

use std::path::Path;

use super::{fashion_mnist, folder, h5, npz, Source, Split};
use crate::error::{Result, TrainError};

/// What a `--data` spec names.
#[derive(Debug, PartialEq, Eq)]
enum Spec<'a> {
    FashionMnist,
    H5 {
        path: &'a Path,
        subset: Option<&'a str>,
    },
    Npz(&'a Path),
    Folder(&'a Path),
}

fn is_h5(path: &str) -> bool {
    path.ends_with(".h5") || path.ends_with(".hdf5")
}

fn parse(spec: &str) -> Result<Spec<'_>> {
    if spec == "fashion-mnist" {
        return Ok(Spec::FashionMnist);
    }
    if let Some((path, subset)) = spec.rsplit_once(':') {
        if is_h5(path) && !subset.is_empty() {
            return Ok(Spec::H5 {
                path: Path::new(path),
                subset: Some(subset),
            });
        }
    }
    if is_h5(spec) {
        return Ok(Spec::H5 {
            path: Path::new(spec),
            subset: None,
        });
    }
    if spec.ends_with(".npz") {
        return Ok(Spec::Npz(Path::new(spec)));
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(Spec::Folder(path));
    }
    let problem = if path.exists() {
        "not a dataset"
    } else {
        "no such file or directory"
    };
    Err(TrainError::data(
        path,
        format!(
            "{problem} (expected 'fashion-mnist', a PATH.h5[:SUBSET], a PATH.npz \
             or an image folder)"
        ),
    ))
}

/// Opens `--data` for a split:
/// * "fashion-mnist": the Debian package's full set when /usr/share/datasets/fashion-mnist
///   exists (train = its 60k train split; val and test = its 10k test split), else the
///   embedded 10k test split (train = its first 8000 images, val and test = the last 2000);
/// * "PATH.h5" or "PATH.h5:SUBSET": the ecoset layout `f[split]['data']` uint8 (N, H, W, 3)
///   and `f[split]['labels']`, integer (N,) or one-hot float (N, classes); or `f[SUBSET][split]`;
/// * a directory: `root/<class>/*.png|jpg|jpeg`, classes sorted by name, or
///   `root/<split>/<class>/…` when root has train/val/test folders;
/// * "PATH.npz": arrays `images` (uint8 NHWC or NHW) and `labels`, or `<split>_images` and
///   `<split>_labels` per split when present.
///
/// Errors name the file and what is missing or wrong.
pub fn open(spec: &str, split: Split) -> Result<Box<dyn Source>> {
    Ok(match parse(spec)? {
        Spec::FashionMnist => Box::new(fashion_mnist::open(
            split,
            Path::new(fashion_mnist::DEBIAN_ROOT),
        )?),
        Spec::H5 { path, subset } => Box::new(h5::open(path, subset, split)?),
        Spec::Npz(path) => Box::new(npz::open(path, split)?),
        Spec::Folder(path) => Box::new(folder::open(path, split)?),
    })
}

/// Class names by label: the folder names of an image folder, Fashion-MNIST's ten names;
/// None when the dataset does not store them (HDF5, npz) or cannot be read.
pub fn class_names(spec: &str) -> Option<Vec<String>> {
    match parse(spec).ok()? {
        Spec::FashionMnist => Some(
            fashion_mnist::CLASS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        Spec::Folder(path) => folder::class_names(path).ok(),
        Spec::H5 { .. } | Spec::Npz(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_their_source() {
        assert_eq!(parse("fashion-mnist").unwrap(), Spec::FashionMnist);
        assert_eq!(
            parse("a/eco.h5").unwrap(),
            Spec::H5 {
                path: Path::new("a/eco.h5"),
                subset: None
            }
        );
        assert_eq!(
            parse("a/eco.hdf5:sub/x").unwrap(),
            Spec::H5 {
                path: Path::new("a/eco.hdf5"),
                subset: Some("sub/x")
            }
        );
        assert_eq!(parse("x.npz").unwrap(), Spec::Npz(Path::new("x.npz")));
        assert_eq!(parse(".").unwrap(), Spec::Folder(Path::new(".")));
        let err = parse("/nonexistent/data").unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/data") && err.contains("no such file"),
            "{err}"
        );
    }

    #[test]
    fn fashion_mnist_class_names() {
        let names = class_names("fashion-mnist").unwrap();
        assert_eq!((names.len(), names[9].as_str()), (10, "Ankle boot"));
        assert_eq!(class_names("x.h5"), None);
    }
}
