//! Writing `.tnn` files. The file appears under its final name only when complete: data go to a
//! temporary file in the same directory, which is synced and then renamed.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use alltnn_runtime::format::{self, DType, TensorSource};

use crate::quantise::{self, Stored};
use crate::{ConvertError, ImportedModel};

/// Writes `model` (with optional class names) to `path`, kernels stored as `dtype`; returns the
/// file size.
pub fn write_tnn(
    path: &Path,
    model: &ImportedModel,
    class_names: &[String],
    dtype: DType,
) -> Result<u64, ConvertError> {
    let format_error = |source| ConvertError::Format {
        path: path.to_path_buf(),
        source,
    };
    let specs = model.spec.tensors().map_err(|e| format_error(e.into()))?;
    let mut stored = Vec::with_capacity(model.tensors.len() + specs.len());
    for t in &model.tensors {
        match specs.iter().find(|s| s.name() == t.name) {
            Some(spec) if spec.shape == t.shape => {
                stored.extend(quantise::store(spec, &t.data, dtype))
            }
            // Unknown or misshapen tensors go through unchanged for the encoder to refuse.
            _ => stored.push(Stored {
                name: t.name.clone(),
                dtype: DType::F32,
                shape: t.shape.clone(),
                bytes: bytemuck::cast_slice(&t.data).into(),
            }),
        }
    }
    let sources: Vec<TensorSource<'_>> = stored
        .iter()
        .map(|t| TensorSource {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            bytes: &t.bytes,
        })
        .collect();
    let layout = format::encode_prefix(&model.spec, &sources, class_names).map_err(format_error)?;

    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        out.write_all(&layout.prefix)?;
        let mut at = layout.prefix.len();
        let zeros = [0u8; format::ALIGN];
        for (t, &offset) in sources.iter().zip(&layout.offsets) {
            out.write_all(&zeros[..offset - at])?;
            out.write_all(t.bytes)?;
            at = offset + t.bytes.len();
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ConvertError::io(path, e));
    }
    Ok(layout.total_len as u64)
}

/// A sibling of `path` that no reader mistakes for a finished model.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NamedTensor;
    use alltnn_runtime::format::{AlignedBytes, TnnFile};
    use alltnn_runtime::spec::ModelSpec;

    fn tiny_spec() -> ModelSpec {
        let mut spec = ModelSpec::paper_alltnn();
        spec.input.height = 12;
        spec.input.width = 12;
        spec.layers.truncate(2);
        spec.layers[0].kernel = 3;
        spec.layers[0].stride = 1;
        spec.layers[0].filters = 4;
        spec.layers[1].filters = 2;
        spec.readout.classes = 3;
        spec
    }

    fn model(spec: ModelSpec) -> ImportedModel {
        let tensors = spec
            .tensors()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, t)| NamedTensor {
                name: t.name(),
                shape: t.shape.clone(),
                data: (0..t.len()).map(|j| (i * 1000 + j) as f32).collect(),
            })
            .collect();
        ImportedModel { spec, tensors }
    }

    #[test]
    fn written_files_read_back_with_every_tensor_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.tnn");
        let m = model(tiny_spec());
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let size = write_tnn(&path, &m, &names, DType::F32).unwrap();
        let bytes = AlignedBytes::from_slice(&fs::read(&path).unwrap());
        assert_eq!(bytes.len() as u64, size);
        let file = TnnFile::parse_verified(&bytes).unwrap();
        assert_eq!(file.spec(), &m.spec);
        assert_eq!(file.class_names(), &names[..]);
        for t in &m.tensors {
            assert_eq!(file.tensor_f32(&t.name).unwrap(), &t.data[..], "{}", t.name);
        }
        // Only the final file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_model_missing_a_tensor_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.tnn");
        let mut m = model(tiny_spec());
        m.tensors.retain(|t| t.name != "layer1.bias");
        let err = write_tnn(&path, &m, &[], DType::F32)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer1.bias") && err.contains("m.tnn"),
            "{err}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
