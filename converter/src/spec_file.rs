//! JSON model specs (`models/*.json`): the serde form of [`ModelSpec`].
//!
//! Enums are snake_case and `norm` is externally tagged, e.g.
//! `"norm": {"layer_norm": {"epsilon": 0.001, "center": true, "scale": true}}` or `"norm": "none"`.

use std::path::Path;

use alltnn_runtime::ModelSpec;

use crate::ConvertError;

/// Reads a JSON model spec and checks that it describes a working network.
///
/// Errors name the file and, for malformed JSON, the line and column.
pub fn read_spec_file(path: &Path) -> Result<ModelSpec, ConvertError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConvertError::io(path, e))?;
    let invalid = |message: String| ConvertError::SpecFile {
        path: path.to_path_buf(),
        message,
    };
    // serde_json's messages end in "at line L column C".
    let spec: ModelSpec = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    spec.geometry().map_err(|e| invalid(e.to_string()))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");

    fn model(name: &str) -> std::path::PathBuf {
        Path::new(MODELS).join(name)
    }

    #[test]
    fn paper_specs_parse_equal_to_the_runtime_constructors() {
        assert_eq!(
            read_spec_file(&model("paper-alltnn.json")).unwrap(),
            ModelSpec::paper_alltnn()
        );
        assert_eq!(
            read_spec_file(&model("paper-cnn.json")).unwrap(),
            ModelSpec::paper_cnn()
        );
    }

    #[test]
    fn tiny_spec_has_the_fixture_architecture() {
        let spec = read_spec_file(&model("tiny.json")).unwrap();
        let plan: Vec<(u32, u32, u32, bool)> = spec
            .layers
            .iter()
            .map(|l| (l.filters, l.kernel, l.stride, l.pool_after))
            .collect();
        assert_eq!(
            plan,
            [
                (16, 5, 2, true),
                (16, 3, 1, false),
                (25, 3, 1, true),
                (36, 2, 1, false)
            ]
        );
        assert_eq!((spec.input.height, spec.readout.classes), (48, 10));
    }

    #[test]
    fn malformed_json_names_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\n  \"input\": {\"height\": 48,\n  oops\n}").unwrap();
        let err = read_spec_file(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: invalid spec file", path.display())),
            "{err}"
        );
        assert!(err.contains("line 3 column 3"), "{err}");
    }

    #[test]
    fn a_spec_that_cannot_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.json");
        let mut spec = ModelSpec::paper_alltnn();
        spec.input.height = 20;
        std::fs::write(&path, serde_json::to_string(&spec).unwrap()).unwrap();
        let err = read_spec_file(&path).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
        assert!(err.contains("small.json"), "{err}");
    }
}
