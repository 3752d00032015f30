//! Training checkpoints: one safetensors file per save, `ckpt_epNNN.safetensors`.
//!
//! Tensors: the model under its canonical names in the Keras layout (`layer0.kernel`, …, as in
//! `.tnn` files), and the optimiser slots as `optimizer.<name>.0` / `.1`. Metadata (strings):
//! `format` = `alltnn-checkpoint/1`, `spec` (the model spec, JSON), `state` (where training
//! stands, JSON), `config` (the training settings, JSON) and `optimizer_step`. A file is
//! written under a temporary name and renamed, so a checkpoint is either complete or absent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use alltnn_runtime::ModelSpec;
use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::model::TnnModel;
use crate::optim::Optimizer;

pub const FORMAT: &str = "alltnn-checkpoint/1";

/// Where training stands. Every random choice derives from `seed`, the epoch and the position
/// in it, so these numbers are the whole random state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: u64,
    /// Batches done in the epoch under way (0 at an epoch boundary).
    pub batch_in_epoch: u64,
    pub global_step: u64,
    pub seed: u64,
}

/// A named f32 tensor: (name, shape, values).
pub type NamedValues = (String, Vec<usize>, Vec<f32>);

/// A checkpoint read back.
pub struct Checkpoint {
    pub spec: ModelSpec,
    pub tensors: Vec<NamedValues>,
    /// Optimiser step count and slots by parameter name.
    pub optimizer_step: u64,
    pub optimizer: HashMap<String, (Tensor, Tensor)>,
    pub state: TrainState,
    pub config: serde_json::Value,
}

/// File name of the checkpoint after `epoch` epochs (the original's `ckpt_epNNN`).
pub fn file_name(epoch: u64) -> String {
    format!("ckpt_ep{epoch:03}.safetensors")
}

/// Saves model, optimiser and state to `path` atomically.
pub fn save(
    path: &Path,
    model: &TnnModel,
    optimizer: &Optimizer,
    state: &TrainState,
    config: &serde_json::Value,
) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<f32>)> = model.export()?;
    let (step, slots) = optimizer.state();
    let trainable: Vec<&str> = model
        .params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.name.as_str())
        .collect();
    for (name, (a, b)) in trainable.iter().zip(&slots) {
        for (i, t) in [a, b].into_iter().enumerate() {
            let values = t
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?;
            named.push((format!("optimizer.{name}.{i}"), t.dims().to_vec(), values));
        }
    }
    let views = named
        .iter()
        .map(|(name, shape, values)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(values))
                .map_err(|e| TrainError::Checkpoint {
                    path: path.into(),
                    message: e.to_string(),
                })?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = |v: serde_json::Result<String>| v.map_err(|e| TrainError::Config(e.to_string()));
    let metadata: HashMap<String, String> = [
        ("format".to_string(), FORMAT.to_string()),
        (
            "spec".to_string(),
            json(serde_json::to_string(model.spec()))?,
        ),
        ("state".to_string(), json(serde_json::to_string(state))?),
        ("config".to_string(), json(serde_json::to_string(config))?),
        ("optimizer_step".to_string(), step.to_string()),
    ]
    .into();
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| TrainError::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` under a temporary name, syncs and renames: readers see all or nothing.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.{}.partial",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::io(path, e));
    }
    Ok(())
}

/// Reads a checkpoint written by [`save`].
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.into(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not an alltnn checkpoint (metadata `format` is not {FORMAT})"
        )));
    }
    let field = |key: &str| {
        meta.get(key)
            .ok_or_else(|| bad(format!("metadata `{key}` missing")))
    };
    let spec: ModelSpec =
        serde_json::from_str(field("spec")?).map_err(|e| bad(format!("spec: {e}")))?;
    let state: TrainState =
        serde_json::from_str(field("state")?).map_err(|e| bad(format!("state: {e}")))?;
    let config: serde_json::Value =
        serde_json::from_str(field("config")?).map_err(|e| bad(format!("config: {e}")))?;
    let optimizer_step = field("optimizer_step")?
        .parse()
        .map_err(|_| bad("optimizer_step is not a number".into()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let read = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let view = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("{name} is {:?}, f32 expected", view.dtype())));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((view.shape().to_vec(), values))
    };
    let mut tensors = Vec::new();
    for t in spec.tensors()? {
        let name = t.name();
        let (shape, values) = read(&name)?;
        if shape != t.shape {
            return Err(bad(format!(
                "{name} has shape {shape:?}, the spec requires {:?}",
                t.shape
            )));
        }
        tensors.push((name, shape, values));
    }
    let mut optimizer = HashMap::new();
    for (name, _, _) in &tensors {
        let slot = |i: usize| -> Result<Option<Tensor>> {
            let key = format!("optimizer.{name}.{i}");
            if st.tensor(&key).is_err() {
                return Ok(None);
            }
            let (shape, values) = read(&key)?;
            Ok(Some(Tensor::from_vec(values, shape, device)?))
        };
        if let (Some(a), Some(b)) = (slot(0)?, slot(1)?) {
            optimizer.insert(name.clone(), (a, b));
        }
    }
    Ok(Checkpoint {
        spec,
        tensors,
        optimizer_step,
        optimizer,
        state,
        config,
    })
}
