//! Importing original model directories built from the tiny-alltnn fixture and the committed
//! `tests/data/hparams_tiny.pickle` (made by `tests/data/make_hparams.py`).

use std::path::{Path, PathBuf};

use alltnn_converter::keras::{import_h5, ImportOptions};
use alltnn_converter::model_dir::{import_model_dir, is_model_dir};
use alltnn_runtime::spec::{OutputActivation, Preprocess};
use serde_pickle::{DeOptions, HashableValue, SerOptions, Value};

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("ALLTNN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/keras"
            ))
        });
    let path = dir.join("tiny-alltnn").join(name);
    assert!(
        path.is_file(),
        "Keras fixture {} not found: set ALLTNN_FIXTURES to the fixtures/keras folder",
        path.display()
    );
    path
}

fn hparams_tiny() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hparams_tiny.pickle"
    ))
    .unwrap()
}

/// `hparams_tiny.pickle` with `key` set to `value`.
fn hparams_with(key: &str, value: Value) -> Vec<u8> {
    let Value::Dict(mut dict) =
        serde_pickle::value_from_slice(&hparams_tiny(), DeOptions::new()).unwrap()
    else {
        panic!("hparams_tiny.pickle is not a dict");
    };
    dict.insert(HashableValue::String(key.into()), value);
    serde_pickle::value_to_vec(&Value::Dict(dict), SerOptions::new()).unwrap()
}

/// A model directory: the given hparams, epoch 1 = the fixture's weights, epoch 3 = its
/// weights after one training step (so the two epochs hold different values).
fn model_dir(hparams: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hparams.pickle"), hparams).unwrap();
    let checkpoints = dir.path().join("training_checkpoints");
    std::fs::create_dir(&checkpoints).unwrap();
    std::fs::copy(fixture("weights.h5"), checkpoints.join("ckpt_ep001.h5")).unwrap();
    std::fs::copy(
        fixture("weights_after_step.h5"),
        checkpoints.join("ckpt_ep003.h5"),
    )
    .unwrap();
    dir
}

fn import_fixture(name: &str) -> alltnn_converter::ImportedModel {
    let options = ImportOptions {
        image_size: Some(48),
        ..Default::default()
    };
    import_h5(&fixture(name), &options).unwrap()
}

fn error_of(dir: &Path, epoch: Option<u32>) -> String {
    match import_model_dir(dir, epoch, &ImportOptions::default()) {
        Ok(_) => panic!("{} imported, but should have been refused", dir.display()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_latest_epoch_is_imported_by_default_and_any_on_request() {
    let dir = model_dir(&hparams_tiny());
    let latest = import_model_dir(dir.path(), None, &ImportOptions::default()).unwrap();
    assert_eq!(latest, import_fixture("weights_after_step.h5"));
    let first = import_model_dir(dir.path(), Some(1), &ImportOptions::default()).unwrap();
    assert_eq!(first, import_fixture("weights.h5"));
    assert_eq!(first.spec.input.height, 48);
    assert_eq!(first.spec.input.preprocess, Preprocess::SignedUnit);
    assert_eq!(first.spec.output, OutputActivation::Softmax);
}

#[test]
fn a_missing_epoch_lists_the_available_ones() {
    let dir = model_dir(&hparams_tiny());
    let err = error_of(dir.path(), Some(7));
    assert!(
        err.ends_with("no checkpoint for epoch 7; available epochs: 1, 3"),
        "{err}"
    );
    assert!(err.contains("training_checkpoints"), "{err}");
}

#[test]
fn model_directories_are_recognised_by_their_hparams() {
    let dir = model_dir(&hparams_tiny());
    assert!(is_model_dir(dir.path()));
    assert!(!is_model_dir(&dir.path().join("training_checkpoints")));
    assert!(!is_model_dir(&dir.path().join("hparams.pickle")));
}

#[test]
fn the_image_size_option_overrides_the_hparams() {
    let dir = model_dir(&hparams_tiny());
    let options = ImportOptions {
        image_size: Some(64),
        ..Default::default()
    };
    let err = import_model_dir(dir.path(), None, &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no stride assignment fits image size 64"),
        "{err}"
    );
}

#[test]
fn an_embedding_model_has_a_linear_output() {
    let hparams = hparams_with(
        "model_output_activation",
        Value::String("no_model_output_activation".into()),
    );
    let dir = model_dir(&hparams);
    let model = import_model_dir(dir.path(), None, &ImportOptions::default()).unwrap();
    assert_eq!(model.spec.output, OutputActivation::Linear);
}

#[test]
fn a_norm_type_the_weights_do_not_hold_is_refused() {
    let dir = model_dir(&hparams_with("norm_type", Value::String("BN".into())));
    let err = error_of(dir.path(), Some(1));
    assert!(err.contains("ckpt_ep001.h5"), "{err}");
    assert!(
        err.ends_with("layer 0 has norm LayerNorm, but hparams.pickle says BatchNorm"),
        "{err}"
    );
    let dir = model_dir(&hparams_with("norm_type", Value::String("no_norm".into())));
    assert!(error_of(dir.path(), None).ends_with("but hparams.pickle says none"));
}

#[test]
fn unsupported_norm_types_are_named() {
    let dir = model_dir(&hparams_with("norm_type", Value::String("GN".into())));
    let err = error_of(dir.path(), None);
    assert!(err.contains("hparams.pickle"), "{err}");
    assert!(
        err.ends_with("norm_type 'GN' is not supported (only LN, BN and no_norm)"),
        "{err}"
    );
}

#[test]
fn hparams_that_are_not_a_pickle_are_refused() {
    let dir = model_dir(b"image_size: 48\n");
    let err = error_of(dir.path(), None);
    assert!(err.contains("hparams.pickle: cannot read pickle"), "{err}");
}
