//! `--engine ort`: the ONNX graph in onnxruntime, loaded at run time from `ORT_DYLIB_PATH` or
//! the `onnxruntime` Python package, so that building needs no download.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use super::onnx::{select_outputs, OnnxSession};

/// What to do when no library is found.
const INSTALL_HINT: &str =
    "`pip install onnxruntime` (requirements-test.txt) or set ORT_DYLIB_PATH to libonnxruntime.so";

/// Prints the directory of the installed `onnxruntime` package without importing it (importing
/// loads the whole runtime).
const FIND_PACKAGE: &str = "import importlib.util as u; s = u.find_spec('onnxruntime'); \
                            print(s.submodule_search_locations[0] if s else '')";

pub struct Ort {
    session: Session,
    input: String,
    /// Names of the wanted outputs.
    outputs: Vec<String>,
}

impl Ort {
    pub fn new(bytes: &[u8], relu: &[String]) -> Result<Ort> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let session = Session::builder(environment()?)?
            .with_intra_threads(threads)
            .map_err(ort::Error::<()>::from)?
            .commit_from_memory(bytes)
            .context("onnxruntime cannot load the ONNX graph")?;
        let input = match session.inputs() {
            [input] => input.name().to_string(),
            inputs => bail!("the ONNX graph has {} inputs, one expected", inputs.len()),
        };
        let names: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let outputs = select_outputs(&names, relu)?
            .into_iter()
            .map(|i| names[i].clone())
            .collect();
        Ok(Ort {
            session,
            input,
            outputs,
        })
    }
}

impl OnnxSession for Ort {
    fn run(&mut self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>> {
        let tensor = TensorRef::from_array_view((shape, input))?;
        let results = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])?;
        self.outputs
            .iter()
            .map(|name| {
                let value = results
                    .get(name)
                    .ok_or_else(|| anyhow!("onnxruntime returned no output {name}"))?;
                Ok(value.try_extract_tensor::<f32>()?.1.to_vec())
            })
            .collect()
    }
}

/// The process's one onnxruntime environment, made on first use with the library
/// [`library`] finds. A failure is kept, so every later call reports it too.
pub fn environment() -> Result<&'static Environment> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = library().map_err(|e| format!("{e:#}"))?;
            let builder = ort::init_from(&path)
                .map_err(|e| format!("cannot load onnxruntime: {e} ({INSTALL_HINT})"))?;
            builder
                .with_name("alltnn")
                .build()
                .map_err(|e| format!("{}: cannot start onnxruntime: {e}", path.display()))
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// `ORT_DYLIB_PATH` if set, else the library inside the `onnxruntime` Python package.
fn library() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{}: no such file (from ORT_DYLIB_PATH; {INSTALL_HINT})",
                path.display()
            );
        }
        return Ok(path);
    }
    let package = Command::new("python3")
        .args(["-c", FIND_PACKAGE])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|dir| !dir.is_empty());
    let Some(package) = package else {
        bail!("onnxruntime not found: no `onnxruntime` package for python3; {INSTALL_HINT}");
    };
    let capi = PathBuf::from(package).join("capi");
    let found = std::fs::read_dir(&capi)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        });
    found.ok_or_else(|| {
        anyhow!(
            "{}: no libonnxruntime.so* in the onnxruntime package; {INSTALL_HINT}",
            capi.display()
        )
    })
}
