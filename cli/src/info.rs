//! `alltnn info`: what a `.tnn` file holds.

use std::path::PathBuf;

use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::format::DType;
use alltnn_runtime::sheet::SheetLayout;
use alltnn_runtime::spec::{LayerKind, Norm, OutputActivation, Preprocess};
use anyhow::Result;

use crate::weights;

/// Show a model's architecture, sizes and storage.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (`.tnn`).
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also show the inference arena (activation buffers) for batch 1 and `--batch`.
    #[arg(long)]
    memory: bool,
    /// Batch size for `--memory`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), requires = "memory")]
    batch: u32,
}

pub fn run(args: Args) -> Result<()> {
    let path = &args.model;
    let mapped = weights::map(path)?;
    let file = weights::verified(&mapped, path)?;
    let spec = file.spec();
    let geometry = spec.geometry()?;
    let params = spec.parameter_count()?;
    // Biases, norm parameters and int8 scales are always f32: the kernels decide size and speed.
    let kernels = match file.kernel_dtype() {
        Some(DType::F32) => "f32",
        Some(DType::F16) => "f16",
        Some(DType::I8) => "int8 (symmetric, per-unit f32 scales)",
        None => "mixed",
    };
    // Bytes of the one arena `Engine::in_arena` needs: what an embedded target must reserve.
    let arenas: Vec<(usize, usize)> = if args.memory {
        let model = Model::from_file(&file)?;
        let mut batches = vec![1, args.batch as usize];
        batches.dedup();
        batches
            .into_iter()
            .map(|b| (b, 4 * Engine::arena_len(&model, b)))
            .collect()
    } else {
        Vec::new()
    };

    if args.json {
        let layers: Vec<_> = spec
            .layers
            .iter()
            .zip(&geometry)
            .map(|(l, g)| {
                let sheet = SheetLayout::new(g.output[0], g.output[1], g.output[2]).shape();
                serde_json::json!({
                    "spec": l, "output": g.output, "pooled": g.pooled, "sheet": [sheet.0, sheet.1],
                })
            })
            .collect();
        let mut out = serde_json::json!({
            "file": path, "bytes": file.byte_len(),
            "kernel_dtype": file.kernel_dtype().map_or("mixed", DType::name),
            "parameters": params,
            "input": spec.input, "layers": layers, "readout": spec.readout, "output": spec.output,
            "class_names": file.class_names().len(),
        });
        if args.memory {
            let arenas: Vec<_> = arenas
                .iter()
                .map(|&(batch, bytes)| serde_json::json!({ "batch": batch, "bytes": bytes }))
                .collect();
            out["arena"] = arenas.into();
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    println!(
        "{}: {:.1} MB, .tnn version {}, kernels {kernels}, checksums ok",
        path.display(),
        file.byte_len() as f64 / 1e6,
        alltnn_runtime::format::VERSION,
    );
    let pre = match spec.input.preprocess {
        Preprocess::SignedUnit => "x/255 clipped to [0,1], then 2x-1",
        Preprocess::Unit => "x/255 clipped to [0,1]",
        Preprocess::Identity => "none",
    };
    println!(
        "input: {}x{}x{}, preprocessing {pre}",
        spec.input.height, spec.input.width, spec.input.channels
    );
    println!(
        "{:<6}{:<19}{:>8}{:>7}{:>7}  {:<13}{:<13}{:<11}{:<18}{:>12}",
        "layer",
        "kind",
        "filters",
        "kernel",
        "stride",
        "output",
        "pooled",
        "sheet",
        "norm",
        "parameters"
    );
    let tensors = spec.tensors()?;
    for (l, (layer, g)) in spec.layers.iter().zip(&geometry).enumerate() {
        let kind = match layer.kind {
            LayerKind::LocallyConnected => "locally connected",
            LayerKind::Conv => "conv",
        };
        let (rows, cols) = SheetLayout::new(g.output[0], g.output[1], g.output[2]).shape();
        let norm = match layer.norm {
            Norm::None => "none".to_string(),
            n => format!(
                "{}(eps {}){}",
                n.name(),
                n.params().map_or(0.0, |p| p.epsilon),
                if layer.norm_first { " first" } else { "" }
            ),
        };
        let layer_params: usize = tensors
            .iter()
            .filter(|t| t.owner == alltnn_runtime::spec::TensorOwner::Layer(l))
            .map(|t| t.len())
            .sum();
        let shape = |s: [usize; 3]| format!("{}x{}x{}", s[0], s[1], s[2]);
        let pooled = if layer.pool_after {
            shape(g.pooled)
        } else {
            "-".into()
        };
        println!(
            "{l:<6}{kind:<19}{:>8}{:>7}{:>7}  {:<13}{:<13}{:<11}{:<18}{:>12}",
            layer.filters,
            layer.kernel,
            layer.stride,
            shape(g.output),
            pooled,
            format!("{rows}x{cols}"),
            norm,
            layer_params
        );
    }
    let n_in = geometry.last().map_or(0, |g| g.pooled_len());
    let out = match spec.output {
        OutputActivation::Softmax => "softmax",
        OutputActivation::Linear => "linear",
    };
    println!("readout: dense {n_in} -> {}, {out}", spec.readout.classes);
    println!("parameters: {params}");
    for (batch, bytes) in arenas {
        println!(
            "arena for batch {batch}: {bytes} bytes ({:.2} MB)",
            bytes as f64 / 1e6
        );
    }
    match file.class_names().len() {
        0 => println!("class names: none stored"),
        n => println!(
            "class names: {n} stored ({} ...)",
            file.class_names()
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}
