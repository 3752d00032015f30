//! `alltnn convert`: Keras checkpoints and original model directories to `.tnn` or ONNX.

use std::path::PathBuf;

use alltnn_converter::{onnx, tnn};
use alltnn_runtime::format::DType;
use anyhow::{bail, Result};

use crate::classes;
use crate::weights::{self, LoadOptions};

/// Convert a model to the compact `.tnn` format or to ONNX.
#[derive(clap::Args)]
pub struct Args {
    /// Keras weight file (`model.save_weights` HDF5, e.g. `ckpt_ep035.h5`), an original model
    /// directory (`hparams.pickle` + `training_checkpoints/`), a training checkpoint
    /// (`ckpt_epNNN.safetensors`) or a `.tnn` file.
    input: PathBuf,
    /// Output file: `.tnn`, or `.onnx` for an ONNX graph (opset 17, standard operators).
    #[arg(short, long)]
    output: PathBuf,
    /// Input image size (square); required for `.h5` files without `--spec`, read from
    /// `hparams.pickle` for model directories.
    #[arg(long)]
    image_size: Option<u32>,
    /// JSON model spec or preset name (`models/*.json`: paper-alltnn, paper-cnn, tiny, …)
    /// instead of inferring the architecture.
    #[arg(long)]
    spec: Option<String>,
    /// Strides of the layers, for conv checkpoints whose shapes fit several (conv strides are
    /// not stored; original CNN-control directories get the paper's).
    #[arg(long, value_delimiter = ',')]
    strides: Option<Vec<u32>>,
    /// Checkpoint epoch of a model directory (default: the latest).
    #[arg(long)]
    epoch: Option<u32>,
    /// Norm epsilon when the file does not say (Keras default 1e-3).
    #[arg(long)]
    norm_epsilon: Option<f32>,
    /// Class names to store: a JSON array/object or text file, `ecoset`, or `none`. Default:
    /// the ecoset names for 565-class models, none otherwise.
    #[arg(long)]
    classes: Option<String>,
    /// `.tnn` only: how kernels are stored — f32, f16, or int8 with one symmetric scale per
    /// output unit (a quarter of the size; biases and norm parameters stay f32).
    #[arg(long, value_enum, default_value_t = StoredAs::F32)]
    dtype: StoredAs,
    /// ONNX only: add every layer's activation output (`relu_<l>`) as a graph output.
    #[arg(long)]
    activations: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StoredAs {
    F32,
    F16,
    Int8,
}

pub fn run(args: Args) -> Result<()> {
    let to_onnx = match args.output.extension().and_then(|e| e.to_str()) {
        Some("tnn") => false,
        Some("onnx") => true,
        _ => bail!(
            "{}: the output must be a .tnn or .onnx file",
            args.output.display()
        ),
    };
    if args.activations && !to_onnx {
        bail!("--activations applies to .onnx output only");
    }
    let dtype = match args.dtype {
        StoredAs::F32 => DType::F32,
        StoredAs::F16 => DType::F16,
        StoredAs::Int8 => DType::I8,
    };
    if dtype != DType::F32 && to_onnx {
        bail!("--dtype applies to .tnn output only: ONNX export writes f32");
    }
    if args.classes.is_some() && to_onnx {
        bail!("--classes applies to .tnn output only: ONNX files carry no class names");
    }
    let options = LoadOptions {
        image_size: args.image_size,
        spec: args.spec.as_deref().map(weights::spec).transpose()?,
        strides: args.strides,
        norm_epsilon: args.norm_epsilon,
        epoch: args.epoch,
    };
    let model = weights::load(&args.input, &options)?;
    if to_onnx {
        let size = onnx::write_onnx(&args.output, &model, args.activations)?;
        println!(
            "wrote {} ({:.1} MB)",
            args.output.display(),
            size as f64 / 1e6
        );
        return Ok(());
    }
    let n_classes = model.spec.readout.classes as usize;
    let names = match args.classes.as_deref() {
        Some("none") => Vec::new(),
        Some("ecoset") => classes::ecoset(),
        Some(file) => classes::read(file.as_ref())?,
        None if n_classes == classes::ECOSET_CLASSES => {
            eprintln!("note: storing ecoset class names; {}", classes::ECOSET_NOTE);
            classes::ecoset()
        }
        None => Vec::new(),
    };
    if !names.is_empty() && names.len() != n_classes {
        bail!(
            "{} class names given for a model with {n_classes} outputs",
            names.len()
        );
    }
    let size = tnn::write_tnn(&args.output, &model, &names, dtype)?;
    let params: usize = model.tensors.iter().map(|t| t.data.len()).sum();
    println!(
        "wrote {} ({} layers, {} parameters, kernels {}, {:.1} MB)",
        args.output.display(),
        model.spec.layers.len(),
        params,
        dtype.name(),
        size as f64 / 1e6
    );
    Ok(())
}
