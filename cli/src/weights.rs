//! Models from any supported file as a spec and named f32 tensors: original Keras `.h5`
//! checkpoints and model directories, `.tnn` files and training checkpoints (`.safetensors`).

use std::path::Path;

use alltnn_converter::keras::{import_h5, ImportOptions};
use alltnn_converter::{model_dir, spec_file, ImportedModel, NamedTensor};
use alltnn_runtime::format::{AlignedBytes, TnnFile};
use alltnn_runtime::kernels::weights::Weights;
use alltnn_runtime::mmap::MappedModel;
use alltnn_runtime::spec::TensorRole;
use alltnn_runtime::ModelSpec;
use anyhow::{bail, Context, Result};

/// JSON specs shipped in `models/`, usable by name wherever a spec file is.
const PRESETS: [(&str, &str); 5] = [
    (
        "paper-alltnn",
        include_str!("../../models/paper-alltnn.json"),
    ),
    ("paper-cnn", include_str!("../../models/paper-cnn.json")),
    ("tiny", include_str!("../../models/tiny.json")),
    (
        "fashion-alltnn",
        include_str!("../../models/fashion-alltnn.json"),
    ),
    ("fashion-cnn", include_str!("../../models/fashion-cnn.json")),
];

/// A spec from a preset name or a JSON file.
pub fn spec(name_or_file: &str) -> Result<ModelSpec> {
    if let Some((_, json)) = PRESETS.iter().find(|(n, _)| *n == name_or_file) {
        return Ok(serde_json::from_str(json).expect("presets are valid specs"));
    }
    let path = Path::new(name_or_file);
    if !path.exists() && path.extension().is_none() {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        bail!(
            "unknown spec `{name_or_file}`: a JSON file or one of {}",
            names.join(", ")
        );
    }
    Ok(spec_file::read_spec_file(path)?)
}

/// How to read files that do not state their whole architecture.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub image_size: Option<u32>,
    pub spec: Option<ModelSpec>,
    pub strides: Option<Vec<u32>>,
    pub norm_epsilon: Option<f32>,
    pub epoch: Option<u32>,
}

/// Maps a `.tnn` file (copying nothing).
pub fn map(path: &Path) -> Result<MappedModel> {
    MappedModel::open(path).with_context(|| format!("{}", path.display()))
}

/// Parses a mapped `.tnn` file and verifies every checksum before the model is used.
pub fn verified<'a>(mapped: &'a MappedModel, path: &Path) -> Result<TnnFile<'a>> {
    let file = mapped
        .parse()
        .with_context(|| format!("{}", path.display()))?;
    file.verify_checksums()
        .with_context(|| format!("{}", path.display()))?;
    Ok(file)
}

/// Reads any supported model file or directory.
pub fn load(path: &Path, options: &LoadOptions) -> Result<ImportedModel> {
    let keras = ImportOptions {
        image_size: options.image_size,
        spec: options.spec.clone(),
        norm_epsilon: options.norm_epsilon,
        strides: options.strides.clone(),
    };
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if model_dir::is_model_dir(path) {
        return Ok(model_dir::import_model_dir(path, options.epoch, &keras)?);
    }
    if path.is_dir() {
        bail!(
            "{}: a directory without hparams.pickle is not an original model directory",
            path.display()
        );
    }
    if options.epoch.is_some() {
        bail!(
            "--epoch applies to model directories, not to {}",
            path.display()
        );
    }
    let model = match extension {
        "tnn" => read_tnn(path)?,
        "safetensors" => {
            let ckpt = alltnn_trainer::checkpoint::load(path, &alltnn_trainer::Device::Cpu)?;
            let tensors = ckpt
                .tensors
                .into_iter()
                .map(|(name, shape, data)| NamedTensor { name, shape, data })
                .collect();
            ImportedModel {
                spec: ckpt.spec,
                tensors,
            }
        }
        _ => return Ok(import_h5(path, &keras)?),
    };
    if let Some(spec) = &options.spec {
        if spec != &model.spec {
            bail!(
                "{}: its architecture differs from the given spec",
                path.display()
            );
        }
    }
    Ok(model)
}

fn read_tnn(path: &Path) -> Result<ImportedModel> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let bytes = AlignedBytes::from_slice(&bytes);
    let file = TnnFile::parse_verified(&bytes).with_context(|| format!("{}", path.display()))?;
    from_tnn(&file, path)
}

/// The spec and f32 tensors of a parsed `.tnn` file (read from `path`, named in errors); f16
/// and int8 kernels come back dequantised.
pub fn from_tnn(file: &TnnFile<'_>, path: &Path) -> Result<ImportedModel> {
    let tensors = file
        .spec()
        .tensors()?
        .into_iter()
        .map(|t| {
            let values = match t.role {
                TensorRole::Kernel => file.weights(&t.name()),
                _ => file.tensor_f32(&t.name()).map(Weights::F32),
            };
            let data = values
                .with_context(|| format!("{}", path.display()))?
                .to_f32(*t.shape.last().unwrap_or(&0));
            Ok(NamedTensor {
                name: t.name(),
                shape: t.shape,
                data,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ImportedModel {
        spec: file.spec().clone(),
        tensors,
    })
}
