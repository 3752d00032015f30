//! Importing the Keras fixtures (`../shared/fixtures/keras`, or `$ALLTNN_FIXTURES`) and the
//! broken or unusual files that `tests/data/make_bad_h5.py` derived from them.

use std::path::{Path, PathBuf};

use alltnn_converter::keras::{import_h5, ImportOptions};
use alltnn_converter::spec_file::read_spec_file;
use alltnn_converter::ImportedModel;
use alltnn_runtime::spec::{
    Activation, InputSpec, LayerKind, LayerSpec, Norm, NormParams, OutputActivation, Preprocess,
    ReadoutSpec,
};
use alltnn_runtime::ModelSpec;

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("ALLTNN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/keras"
            ))
        });
    assert!(
        dir.join("tiny-alltnn/weights.h5").is_file(),
        "Keras fixtures not found in {}: set ALLTNN_FIXTURES to the fixtures/keras folder",
        dir.display()
    );
    dir
}

fn weights(fixture: &str) -> PathBuf {
    fixtures().join(fixture).join("weights.h5")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn tiny_spec() -> ModelSpec {
    read_spec_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny.json")).unwrap()
}

/// `models/tiny.json` with Conv2D layers: the tiny-cnn fixture.
fn tiny_cnn_spec() -> ModelSpec {
    let mut spec = tiny_spec();
    for layer in &mut spec.layers {
        layer.kind = LayerKind::Conv;
    }
    spec
}

fn with_image_size(size: u32) -> ImportOptions {
    ImportOptions {
        image_size: Some(size),
        ..Default::default()
    }
}

fn with_spec(spec: ModelSpec) -> ImportOptions {
    ImportOptions {
        spec: Some(spec),
        ..Default::default()
    }
}

/// The architecture a fixture's `reference.json` states.
fn reference_spec(fixture: &str) -> ModelSpec {
    let text = std::fs::read_to_string(fixtures().join(fixture).join("reference.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let int = |v: &serde_json::Value| v.as_u64().unwrap() as u32;
    let kind = match r["layer_type"].as_str().unwrap() {
        "LocallyConnected2D" => LayerKind::LocallyConnected,
        "Conv2D" => LayerKind::Conv,
        other => panic!("unknown layer type {other}"),
    };
    assert_eq!(r["norm"], "LayerNorm");
    let norm = Norm::LayerNorm(NormParams {
        epsilon: r["norm_epsilon"].as_f64().unwrap() as f32,
        center: true,
        scale: true,
    });
    let pools: Vec<u32> = r["pool_after"]
        .as_array()
        .unwrap()
        .iter()
        .map(int)
        .collect();
    let layers = r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(l, layer)| LayerSpec {
            kind,
            filters: int(&layer["filters"]),
            kernel: int(&layer["kernel"]),
            stride: int(&layer["stride"]),
            bias: true,
            activation: Activation::Relu,
            norm,
            norm_first: false,
            pool_after: pools.contains(&(l as u32)),
        })
        .collect();
    let size = int(&r["image_size"]);
    ModelSpec {
        input: InputSpec {
            height: size,
            width: size,
            channels: 3,
            preprocess: Preprocess::SignedUnit,
        },
        layers,
        readout: ReadoutSpec {
            classes: int(&r["n_classes"]),
            bias: true,
        },
        output: OutputActivation::Softmax,
    }
}

/// Checks names, shapes and order against the spec, and a few values h5py reads.
fn check_tensors(model: &ImportedModel, values: &[(&str, usize, f64)]) {
    let expected: Vec<(String, Vec<usize>)> = model
        .spec
        .tensors()
        .unwrap()
        .into_iter()
        .map(|t| (t.name(), t.shape))
        .collect();
    let found: Vec<(String, Vec<usize>)> = model
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    assert_eq!(found, expected);
    for t in &model.tensors {
        assert_eq!(
            t.data.len(),
            t.shape.iter().product::<usize>(),
            "{}",
            t.name
        );
    }
    for &(name, index, value) in values {
        let tensor = model.tensor(name).unwrap();
        let index = index.min(tensor.data.len() - 1);
        assert_eq!(f64::from(tensor.data[index]), value, "{name}[{index}]");
    }
}

/// Values of the tiny-alltnn fixture as h5py reads them: (tensor, flat index, value); an
/// index past the end means the last element.
const TINY_ALLTNN_VALUES: [(&str, usize, f64); 8] = [
    ("layer0.kernel", 0, 0.005583655554801226),
    ("layer0.kernel", 290_400, 0.1345728039741516),
    ("layer0.kernel", usize::MAX, -0.15541908144950867),
    ("layer3.bias", 0, 0.3386935293674469),
    ("layer3.bias", usize::MAX, 1.397011399269104),
    ("layer2.norm.gamma", 0, 0.7840011119842529),
    ("readout.bias", 0, 0.041286274790763855),
    ("readout.bias", usize::MAX, 0.07165057212114334),
];

const TINY_CNN_VALUES: [(&str, usize, f64); 7] = [
    ("layer0.kernel", 0, -0.25102195143699646),
    ("layer0.kernel", usize::MAX, 0.9167676568031311),
    ("layer3.bias", 0, 0.044243838638067245),
    ("layer2.norm.gamma", usize::MAX, 1.1409505605697632),
    ("readout.kernel", 0, 0.00304638734087348),
    ("readout.bias", 0, 0.044704608619213104),
    ("readout.bias", usize::MAX, -0.11412422358989716),
];

fn error_of(path: &Path, options: &ImportOptions) -> String {
    let err = match import_h5(path, options) {
        Ok(_) => panic!("{} imported, but should have been refused", path.display()),
        Err(err) => err.to_string(),
    };
    assert!(
        err.starts_with(&path.display().to_string()),
        "the error should name the file: {err}"
    );
    assert!(!err.contains('\n'), "the error should be one line: {err}");
    err
}

#[test]
fn tiny_alltnn_is_inferred_with_its_reference_architecture() {
    let model = import_h5(&weights("tiny-alltnn"), &with_image_size(48)).unwrap();
    assert_eq!(model.spec, reference_spec("tiny-alltnn"));
    check_tensors(&model, &TINY_ALLTNN_VALUES);
}

#[test]
fn tiny_alltnn_with_an_explicit_spec_gives_the_same_model() {
    let inferred = import_h5(&weights("tiny-alltnn"), &with_image_size(48)).unwrap();
    let explicit = import_h5(&weights("tiny-alltnn"), &with_spec(tiny_spec())).unwrap();
    assert_eq!(explicit, inferred);
}

#[test]
fn tiny_cnn_imports_with_its_spec() {
    let model = import_h5(&weights("tiny-cnn"), &with_spec(tiny_cnn_spec())).unwrap();
    assert_eq!(model.spec, reference_spec("tiny-cnn"));
    check_tensors(&model, &TINY_CNN_VALUES);
}

#[test]
fn tiny_cnn_strides_are_ambiguous_from_shapes_alone() {
    // Conv kernels do not depend on the stride, and four assignments take 48x48 to the
    // readout's 2x2x36; the fixture's [2, 1, 1, 1] is one of them.
    let err = error_of(&weights("tiny-cnn"), &with_image_size(48));
    assert!(
        err.contains(
            "ambiguous strides: 4 stride assignments fit image size 48 and the weight shapes \
             (fitting assignments: [1, 1, 2, 2], [1, 1, 3, 1], [1, 2, 1, 2], [2, 1, 1, 1]): \
             pass --strides S,S,... or --spec FILE"
        ),
        "{err}"
    );
}

#[test]
fn tiny_cnn_imports_with_its_strides() {
    let options = ImportOptions {
        strides: Some(vec![2, 1, 1, 1]),
        ..with_image_size(48)
    };
    let model = import_h5(&weights("tiny-cnn"), &options).unwrap();
    assert_eq!(model.spec, reference_spec("tiny-cnn"));
    check_tensors(&model, &TINY_CNN_VALUES);
}

#[test]
fn fixed_length_name_strings_read_like_variable_length_ones() {
    let fixture = import_h5(&weights("tiny-cnn"), &with_spec(tiny_cnn_spec())).unwrap();
    let fixed = import_h5(&data("fixed_strings.h5"), &with_spec(tiny_cnn_spec())).unwrap();
    assert_eq!(fixed, fixture);
}

#[test]
fn float64_gzip_and_float16_datasets_are_converted() {
    let fixture = import_h5(&weights("tiny-cnn"), &with_spec(tiny_cnn_spec())).unwrap();
    let other = import_h5(&data("dtypes_gzip.h5"), &with_spec(tiny_cnn_spec())).unwrap();
    // float64 holds the float32 values exactly.
    assert_eq!(
        other.tensor("layer0.kernel"),
        fixture.tensor("layer0.kernel")
    );
    let half = &other.tensor("readout.kernel").unwrap().data;
    let full = &fixture.tensor("readout.kernel").unwrap().data;
    // As numpy rounds them to float16.
    assert_eq!(f64::from(half[0]), 0.0030460357666015625);
    assert_eq!(f64::from(half[half.len() - 1]), -0.1966552734375);
    for (h, f) in half.iter().zip(full) {
        assert!((h - f).abs() <= f.abs() / 1024.0 + 1e-7, "{h} vs {f}");
    }
    assert_eq!(other.tensor("readout.bias"), fixture.tensor("readout.bias"));
}

#[test]
fn inference_needs_the_image_size() {
    let err = error_of(&weights("tiny-alltnn"), &ImportOptions::default());
    assert!(
        err.contains("pass --image-size N (or --spec FILE)"),
        "{err}"
    );
}

#[test]
fn a_wrong_image_size_names_the_inconsistent_layer() {
    let err = error_of(&weights("tiny-alltnn"), &with_image_size(64));
    assert!(
        err.ends_with(
            "no stride assignment fits image size 64: sheet_0 is inconsistent: no stride takes \
             its 64x64 input through kernel 5 to the 22x22 output its weights hold"
        ),
        "{err}"
    );
    let err = error_of(&weights("tiny-cnn"), &with_image_size(20));
    assert!(
        err.contains("no stride assignment fits image size 20"),
        "{err}"
    );
}

#[test]
fn a_spec_that_disagrees_with_the_weights_names_tensor_and_shapes() {
    let mut spec = tiny_spec();
    spec.layers[2].filters = 24;
    let err = error_of(&weights("tiny-alltnn"), &with_spec(spec));
    assert!(
        err.ends_with(
            "sheet_2/kernel:0 has shape [49, 144, 25], but the spec requires layer2.kernel with \
             shape [49, 144, 24]"
        ),
        "{err}"
    );
    let err = error_of(&weights("tiny-alltnn"), &with_spec(tiny_cnn_spec()));
    assert!(
        err.contains("sheet_0 is LocallyConnected, but the spec's layer 0 is Conv"),
        "{err}"
    );
    let options = ImportOptions {
        image_size: Some(50),
        ..with_spec(tiny_spec())
    };
    let err = error_of(&weights("tiny-alltnn"), &options);
    assert!(
        err.ends_with("image size 50 disagrees with the spec's 48x48 input"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_hdf5_is_refused() {
    let path = fixtures().join("tiny-alltnn/reference.json");
    let err = error_of(&path, &with_image_size(48));
    assert!(err.contains("cannot read HDF5: not an HDF5 file"), "{err}");
    let err = error_of(&data("no-such-file.h5"), &with_image_size(48));
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn an_hdf5_file_without_layer_names_is_not_a_keras_weight_file() {
    let err = error_of(&data("not_keras.h5"), &with_image_size(48));
    assert!(
        err.ends_with("no layer_names attribute: not a Keras weight file (model.save_weights)"),
        "{err}"
    );
}

#[test]
fn a_missing_layer_is_named() {
    let err = error_of(&data("missing_layer.h5"), &with_spec(tiny_cnn_spec()));
    assert!(
        err.ends_with("missing layer conv_1 (relu_Layer_1_Time_0 refers to it)"),
        "{err}"
    );
}

#[test]
fn a_missing_readout_is_named() {
    let err = error_of(&data("missing_readout.h5"), &with_spec(tiny_cnn_spec()));
    assert!(err.ends_with("missing readout layer ReadoutDense"), "{err}");
}

#[test]
fn missing_groups_and_datasets_are_named() {
    let err = error_of(&data("missing_group.h5"), &with_image_size(48));
    assert!(
        err.ends_with("layer conv_0 is listed in layer_names but has no group"),
        "{err}"
    );
    let err = error_of(&data("missing_dataset.h5"), &with_image_size(48));
    assert!(
        err.ends_with(
            "layer conv_0 lists weight conv_0/bias:0 but the file has no dataset \
             /conv_0/conv_0/bias:0"
        ),
        "{err}"
    );
}
