//! Inference engines behind `alltnn infer --engine`: the native runtime on `.tnn` files, or the
//! model's ONNX export run in tract or onnxruntime (cargo features `tract` and `ort`), which
//! check this project's runtime against independent implementations.

#[cfg(any(feature = "tract", feature = "ort"))]
mod onnx;
#[cfg(any(feature = "tract", feature = "ort"))]
pub use onnx::OnnxModel;
#[cfg(feature = "ort")]
mod ort;
#[cfg(feature = "tract")]
mod tract;

use std::path::Path;

use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::kernels::block::{self, Isa};
use anyhow::{bail, Result};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// This project's runtime (`.tnn` files).
    Native,
    /// This project's runtime with int8 activations (int8 `.tnn` files; fast on CPUs with VNNI,
    /// slow elsewhere; see README "Int8 activations").
    #[value(name = "native-a8")]
    NativeA8,
    /// The ONNX export in tract (cargo feature `tract`).
    Tract,
    /// The ONNX export in onnxruntime (cargo feature `ort`).
    Ort,
}

impl EngineKind {
    /// Fails when this build lacks the engine, naming the cargo feature that adds it, or when
    /// onnxruntime cannot be loaded.
    pub fn prepare(self) -> Result<()> {
        let (built, feature) = match self {
            EngineKind::Native | EngineKind::NativeA8 => return Ok(()),
            EngineKind::Tract => (cfg!(feature = "tract"), "tract"),
            EngineKind::Ort => (cfg!(feature = "ort"), "ort"),
        };
        if !built {
            bail!(
                "--engine {feature} is not in this build: build alltnn with the cargo feature \
                 `{feature}` (cargo build --release --features {feature})"
            );
        }
        #[cfg(feature = "ort")]
        if self == EngineKind::Ort {
            ort::environment()?;
        }
        Ok(())
    }

    /// Whether it is this project's runtime.
    pub fn is_native(self) -> bool {
        matches!(self, EngineKind::Native | EngineKind::NativeA8)
    }

    /// This project's runtime on `model` for batches of up to `batch` images.
    pub fn native<'m, 'a>(self, model: &'m Model<'a>, batch: usize) -> Result<Engine<'m, 'a>> {
        let engine = Engine::new(model, batch)?;
        if self != EngineKind::NativeA8 {
            return Ok(engine);
        }
        let engine = engine.with_int8_activations()?;
        static WARNED: std::sync::Once = std::sync::Once::new();
        if !matches!(block::isa(), Isa::Avx512Vnni | Isa::Avx2Vnni) {
            WARNED.call_once(|| {
                eprintln!(
                "warning: kernels {} have no VNNI (AVX-512-VNNI or AVX-VNNI): int8 activations \
                 run on the scalar reference, several times slower than --engine native",
                block::isa().name()
            )
            });
        }
        Ok(engine)
    }

    /// The name `--engine` takes.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Native => "native",
            EngineKind::NativeA8 => "native-a8",
            EngineKind::Tract => "tract",
            EngineKind::Ort => "ort",
        }
    }
}

/// Runs one batch of preprocessed NHWC images at a time.
pub trait Backend {
    /// Runs `input` (whole images, at most the batch size the backend was made for) and returns
    /// the model output, `images × classes`.
    fn run(&mut self, input: &[f32]) -> Result<&[f32]>;
    /// Layer `l`'s post-ReLU activations of the last run, NHWC.
    fn activation(&self, l: usize) -> &[f32];
    /// Layer `l`'s post-norm activations of the last run; `None`, already before the first run,
    /// where the engine never provides them.
    fn normalized(&self, l: usize) -> Option<&[f32]>;
}

impl Backend for Engine<'_, '_> {
    fn run(&mut self, input: &[f32]) -> Result<&[f32]> {
        Ok(Engine::run(self, input)?)
    }

    fn activation(&self, l: usize) -> &[f32] {
        Engine::activation(self, l)
    }

    fn normalized(&self, l: usize) -> Option<&[f32]> {
        Engine::normalized(self, l)
    }
}

/// Whether `path` names an ONNX file.
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}
