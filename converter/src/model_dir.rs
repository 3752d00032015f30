//! Original All-TNN model directories: `hparams.pickle` (the pickled argparse hyperparameters of
//! `all_tnn/defaults/hparams_defaults.py`) next to `training_checkpoints/ckpt_epNNN.h5`.
//!
//! The checkpoint holds the weights; the hyperparameters add what it does not store: the image
//! size, the input normalisation and the output activation, and they let us check the norm
//! layers found in the weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alltnn_runtime::spec::{ModelSpec, OutputActivation, Preprocess};
use serde_pickle::{DeOptions, HashableValue, Value};

use crate::keras::{import_h5, ImportOptions};
use crate::{ConvertError, ImportedModel};

const HPARAMS: &str = "hparams.pickle";
const CHECKPOINTS: &str = "training_checkpoints";

/// Whether `path` is an original model directory (a directory holding `hparams.pickle`).
pub fn is_model_dir(path: &Path) -> bool {
    path.is_dir() && path.join(HPARAMS).is_file()
}

/// Imports the checkpoint of `epoch` (the latest when `None`) of an original model directory.
///
/// `options.image_size` overrides the hyperparameters' `image_size`; with `options.spec` the
/// spec decides the architecture, and the hyperparameters only check the norm type.
pub fn import_model_dir(
    dir: &Path,
    epoch: Option<u32>,
    options: &ImportOptions,
) -> Result<ImportedModel, ConvertError> {
    let hparams = Hparams::read(&dir.join(HPARAMS))?;
    let norm_type = hparams.norm_type()?;
    let preprocess = hparams.preprocess()?;
    let output = hparams.output_activation()?;
    let checkpoint = find_checkpoint(dir, epoch)?;
    let options = ImportOptions {
        image_size: options.image_size.or(hparams.image_size()?),
        strides: options.strides.clone().or(hparams.original_strides()?),
        ..options.clone()
    };
    let mut model = import_h5(&checkpoint, &options)?;
    if let Some(norm_type) = norm_type {
        check_norms(&model, norm_type, &checkpoint)?;
    }
    if options.spec.is_none() {
        model.spec.input.preprocess = preprocess;
        model.spec.output = output;
    }
    Ok(model)
}

/// The hyperparameter dict, keyed by name.
struct Hparams {
    path: PathBuf,
    values: BTreeMap<String, Value>,
}

impl Hparams {
    fn read(path: &Path) -> Result<Self, ConvertError> {
        let bytes = std::fs::read(path).map_err(|e| ConvertError::io(path, e))?;
        // Unknown classes (e.g. numpy scalars) become None instead of failing the whole file.
        let options = DeOptions::new().replace_unresolved_globals();
        let value = serde_pickle::value_from_slice(&bytes, options)
            .map_err(|e| Self::error_at(path, format!("cannot read pickle: {e}")))?;
        let Value::Dict(dict) = value else {
            return Err(Self::error_at(
                path,
                "expected a pickled dict of hyperparameters",
            ));
        };
        let values = dict
            .into_iter()
            .filter_map(|(key, value)| match key {
                HashableValue::String(key) => Some((key, value)),
                _ => None,
            })
            .collect();
        Ok(Hparams {
            path: path.to_path_buf(),
            values,
        })
    }

    fn error_at(path: &Path, message: impl Into<String>) -> ConvertError {
        ConvertError::Hparams {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> ConvertError {
        Self::error_at(&self.path, message)
    }

    /// A string value; `Ok(None)` when the key is absent or holds None.
    fn string(&self, key: &str) -> Result<Option<&str>, ConvertError> {
        match self.values.get(key) {
            None | Some(Value::None) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(format!("{key} is {other:?}, expected a string"))),
        }
    }

    /// The original's CNN control (`tnn_conv_control`) hard-codes the paper's layer list in
    /// `all_tnn/models/tnn.py`; conv checkpoints do not store strides, so that code is their
    /// only record. (Locally connected layers store their output size; they need no hint.)
    fn original_strides(&self) -> Result<Option<Vec<u32>>, ConvertError> {
        Ok(self
            .string("model_name")?
            .filter(|name| name.contains("conv_control"))
            .map(|_| {
                ModelSpec::paper_cnn()
                    .layers
                    .iter()
                    .map(|l| l.stride)
                    .collect()
            }))
    }

    fn image_size(&self) -> Result<Option<u32>, ConvertError> {
        match self.values.get("image_size") {
            None | Some(Value::None) => Ok(None),
            Some(Value::I64(n)) if *n > 0 && *n <= i64::from(u32::MAX) => Ok(Some(*n as u32)),
            Some(other) => Err(self.error(format!(
                "image_size is {other:?}, expected a positive integer"
            ))),
        }
    }

    /// The norm type as [`Norm::name`](alltnn_runtime::spec::Norm::name) spells it.
    fn norm_type(&self) -> Result<Option<&'static str>, ConvertError> {
        match self.string("norm_type")? {
            None => Ok(None),
            Some("LN") => Ok(Some("LayerNorm")),
            Some("BN") => Ok(Some("BatchNorm")),
            Some("no_norm") => Ok(Some("none")),
            Some(other) => Err(self.error(format!(
                "norm_type '{other}' is not supported (only LN, BN and no_norm)"
            ))),
        }
    }

    /// The original's `image_normalization` (`normalize` in its dataset loader).
    fn preprocess(&self) -> Result<Preprocess, ConvertError> {
        match self.values.get("image_normalization") {
            // The original's default.
            None => Ok(Preprocess::SignedUnit),
            // Images are only clipped to [0, 1].
            Some(Value::None) => Ok(Preprocess::Unit),
            // The noise variant adds training noise on top of [-1, 1]; inference has none.
            Some(Value::String(s)) if s == "[-1,1]" || s == "[-1-1]+noise" => {
                Ok(Preprocess::SignedUnit)
            }
            Some(other) => Err(self.error(format!(
                "image_normalization {other:?} is not supported (only '[-1,1]' and None)"
            ))),
        }
    }

    fn output_activation(&self) -> Result<OutputActivation, ConvertError> {
        match self.string("model_output_activation")? {
            None | Some("softmax") => Ok(OutputActivation::Softmax),
            Some("no_model_output_activation" | "linear") => Ok(OutputActivation::Linear),
            Some(other) => Err(self.error(format!(
                "model_output_activation '{other}' is not supported (only softmax and \
                 no_model_output_activation)"
            ))),
        }
    }
}

/// The hyperparameters' norm type must be what the checkpoint's layers hold.
fn check_norms(
    model: &ImportedModel,
    norm_type: &str,
    checkpoint: &Path,
) -> Result<(), ConvertError> {
    match model
        .spec
        .layers
        .iter()
        .position(|layer| layer.norm.name() != norm_type)
    {
        None => Ok(()),
        Some(l) => Err(ConvertError::layout(
            checkpoint,
            format!(
                "layer {l} has norm {}, but {HPARAMS} says {norm_type}",
                model.spec.layers[l].norm.name()
            ),
        )),
    }
}

/// Epochs of the `ckpt_epNNN.h5` files in `training_checkpoints`, ascending, with their paths.
fn checkpoints(dir: &Path) -> Result<Vec<(u32, PathBuf)>, ConvertError> {
    let folder = dir.join(CHECKPOINTS);
    let entries = std::fs::read_dir(&folder).map_err(|e| ConvertError::io(&folder, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ConvertError::io(&folder, e))?;
        let name = entry.file_name();
        let epoch = name
            .to_str()
            .and_then(|n| n.strip_prefix("ckpt_ep")?.strip_suffix(".h5")?.parse().ok());
        if let Some(epoch) = epoch {
            out.push((epoch, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn find_checkpoint(dir: &Path, epoch: Option<u32>) -> Result<PathBuf, ConvertError> {
    let all = checkpoints(dir)?;
    let folder = dir.join(CHECKPOINTS);
    let found = match epoch {
        None => all.last(),
        Some(epoch) => all.iter().find(|(e, _)| *e == epoch),
    };
    if let Some((_, path)) = found {
        return Ok(path.clone());
    }
    let available: Vec<String> = all.iter().map(|(e, _)| e.to_string()).collect();
    let message = match epoch {
        None => "no checkpoints (ckpt_epNNN.h5)".to_string(),
        Some(epoch) if available.is_empty() => {
            format!("no checkpoint for epoch {epoch}: no checkpoints (ckpt_epNNN.h5) at all")
        }
        Some(epoch) => format!(
            "no checkpoint for epoch {epoch}; available epochs: {}",
            available.join(", ")
        ),
    };
    Err(ConvertError::layout(folder, message))
}
