//! Image folders: `root/<class>/*.png|jpg|jpeg`, or `root/<split>/<class>/…` when `root` has
//! train/val/test subfolders. Classes are folder names sorted by name; images are decoded on
//! demand.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{RawImage, Source, Split};
use crate::error::{Result, TrainError};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

pub(crate) struct FolderSource {
    /// The folder the images were listed from (the split folder in the split layout).
    dir: PathBuf,
    files: Vec<PathBuf>,
    labels: Vec<u32>,
    classes: usize,
}

/// Lists the images of `split` under `root`.
pub(crate) fn open(root: &Path, split: Split) -> Result<FolderSource> {
    let names = class_names(root)?;
    let dir = split_dir(root, split)?;
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (label, name) in names.iter().enumerate() {
        let class_dir = dir.join(name);
        // In the split layout a split may lack some classes; they just contribute no images.
        if !class_dir.is_dir() {
            continue;
        }
        let images = image_files(&class_dir)?;
        labels.extend(std::iter::repeat_n(label as u32, images.len()));
        files.extend(images);
    }
    if files.is_empty() {
        return Err(TrainError::data(
            &dir,
            format!("no images ({}) in its class folders", EXTENSIONS.join(", ")),
        ));
    }
    Ok(FolderSource {
        dir,
        files,
        labels,
        classes: names.len(),
    })
}

/// The class folder names, sorted; in the split layout the union over all splits, so that
/// every split numbers the classes alike.
pub(crate) fn class_names(root: &Path) -> Result<Vec<String>> {
    let splits = present_splits(root);
    let dirs: Vec<PathBuf> = if splits.is_empty() {
        vec![root.to_path_buf()]
    } else {
        splits.iter().map(|s| root.join(s.name())).collect()
    };
    let mut names = BTreeSet::new();
    for dir in &dirs {
        names.extend(subfolders(dir)?);
    }
    if names.is_empty() {
        return Err(TrainError::data(root, "no class folders"));
    }
    Ok(names.into_iter().collect())
}

fn present_splits(root: &Path) -> Vec<Split> {
    Split::ALL
        .into_iter()
        .filter(|s| root.join(s.name()).is_dir())
        .collect()
}

/// The folder holding `split`'s class folders: `root` itself unless it has split folders.
fn split_dir(root: &Path, split: Split) -> Result<PathBuf> {
    let present = present_splits(root);
    if present.is_empty() {
        return Ok(root.to_path_buf());
    }
    if present.contains(&split) {
        return Ok(root.join(split.name()));
    }
    let names: Vec<&str> = present.iter().map(|s| s.name()).collect();
    Err(TrainError::data(
        root,
        format!(
            "missing split '{}': split folders present: {}",
            split.name(),
            names.join(", ")
        ),
    ))
}

/// Names of the visible subfolders of `dir`.
fn subfolders(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let entry = entry.map_err(|e| TrainError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            names.push(name);
        }
    }
    Ok(names)
}

/// The image files of a class folder, sorted by name so the order is the same everywhere.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let path = entry.map_err(|e| TrainError::io(dir, e))?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Decodes an image file to 8-bit grey (1 channel) or RGB (3 channels; alpha dropped).
fn decode(path: &Path) -> Result<RawImage> {
    let image = image::ImageReader::open(path)
        .map_err(|e| TrainError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| TrainError::io(path, e))?
        .decode()
        .map_err(|e| TrainError::data(path, format!("cannot decode image: {e}")))?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (channels, pixels) = if image.color().has_color() {
        (3, image.into_rgb8().into_raw())
    } else {
        (1, image.into_luma8().into_raw())
    };
    Ok(RawImage {
        height,
        width,
        channels,
        pixels,
    })
}

impl Source for FolderSource {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn image(&self, index: usize) -> Result<RawImage> {
        let path = self.files.get(index).ok_or_else(|| {
            TrainError::data(
                &self.dir,
                format!("image index {index} out of range (len {})", self.len()),
            )
        })?;
        decode(path)
    }

    fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} images, {} classes)",
            self.dir.display(),
            self.len(),
            self.classes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_rgb(path: &Path, width: u32, height: u32, value: u8) {
        image::RgbImage::from_pixel(width, height, image::Rgb([value, 0, 255 - value]))
            .save(path)
            .unwrap();
    }

    /// root/cat/{a,b}.png (colour), root/dog/c.PNG (grey), a text file and a hidden folder.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for class in ["dog", "cat", ".hidden"] {
            std::fs::create_dir(root.join(class)).unwrap();
        }
        write_rgb(&root.join("cat/b.png"), 5, 4, 20);
        write_rgb(&root.join("cat/a.png"), 6, 3, 10);
        image::GrayImage::from_pixel(7, 2, image::Luma([99]))
            .save(root.join("dog/c.PNG"))
            .unwrap();
        std::fs::write(root.join("dog/notes.txt"), "not an image").unwrap();
        dir
    }

    #[test]
    fn classes_sorted_by_name_and_images_decoded() {
        let dir = tree();
        let source = open(dir.path(), Split::Train).unwrap();
        assert_eq!(class_names(dir.path()).unwrap(), ["cat", "dog"]);
        assert_eq!((source.len(), source.classes()), (3, 2));
        assert_eq!(
            (0..3).map(|i| source.label(i)).collect::<Vec<_>>(),
            [0, 0, 1]
        );
        let a = source.image(0).unwrap();
        assert_eq!((a.height, a.width, a.channels), (3, 6, 3));
        assert_eq!(&a.pixels[..3], &[10, 0, 245]);
        let grey = source.image(2).unwrap();
        assert_eq!((grey.height, grey.width, grey.channels), (2, 7, 1));
        assert!(grey.pixels.iter().all(|&p| p == 99));
        // Without split folders every split is the whole tree.
        assert_eq!(open(dir.path(), Split::Val).unwrap().len(), 3);
    }

    #[test]
    fn unreadable_image_is_named() {
        let dir = tree();
        std::fs::write(dir.path().join("dog/broken.png"), b"definitely not a png").unwrap();
        let source = open(dir.path(), Split::Train).unwrap();
        let err = source.image(2).unwrap_err().to_string();
        assert!(err.contains("broken.png"), "{err}");
    }

    #[test]
    fn split_folders_share_the_class_list() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for class in ["train/ant", "train/bee", "test/bee", "test/cow"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
        }
        write_rgb(&root.join("train/ant/1.jpg"), 4, 4, 1);
        write_rgb(&root.join("train/bee/1.png"), 4, 4, 2);
        write_rgb(&root.join("test/cow/1.jpeg"), 4, 4, 3);
        let test = open(root, Split::Test).unwrap();
        assert_eq!((test.len(), test.classes(), test.label(0)), (1, 3, 2));
        assert_eq!(test.image(0).unwrap().channels, 3);
        assert_eq!(class_names(root).unwrap(), ["ant", "bee", "cow"]);
        let err = open(root, Split::Val).err().unwrap().to_string();
        assert!(
            err.contains("missing split 'val'") && err.contains("train, test"),
            "{err}"
        );
    }

    #[test]
    fn empty_tree_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open(dir.path(), Split::Train)
            .err()
            .unwrap()
            .to_string()
            .contains("no class folders"));
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(open(dir.path(), Split::Train)
            .err()
            .unwrap()
            .to_string()
            .contains("no images"));
    }
}
