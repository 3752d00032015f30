//! `alltnn infer`: predictions (and optionally every layer's activations) for a set of stimuli.

use std::io::Write;
use std::path::PathBuf;

use alltnn_runtime::engine::{Engine, Model};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::classes;
use crate::outputs::{NpyStream, OutputDir};
use crate::stimuli::Stimuli;
use crate::weights;

/// Run a model on images or `.npy` stimuli.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (`.tnn`).
    model: PathBuf,
    /// Stimuli: PNG/JPEG files (resized to the model input; grey repeated to RGB), directories
    /// of them, or `.npy` arrays — uint8 NHWC raw pixels or float32 NHWC preprocessed values.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Write predictions.csv and probs.npy (and activations) here instead of printing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every layer's post-ReLU (`relu_<l>.npy`) and post-norm (`norm_<l>.npy`)
    /// activations, NHWC float32. Needs `--out`.
    #[arg(long, requires = "out")]
    activations: bool,
    /// Number of top classes to report per stimulus.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    top_k: u32,
}

struct Prediction {
    name: String,
    top: Vec<(usize, f32)>,
}

pub fn run(args: Args) -> Result<()> {
    let path = &args.model;
    let mapped = weights::map(path)?;
    let file = weights::verified(&mapped, path)?;
    let model = Model::from_file(&file).with_context(|| format!("{}", path.display()))?;
    let spec = model.spec();
    let stimuli = Stimuli::open(&args.inputs, spec)?;
    let n = stimuli.len();
    let batch = (args.batch as usize).min(n);
    let classes = spec.readout.classes as usize;
    let top_k = (args.top_k as usize).min(classes);
    let mut engine = Engine::new(&model, batch)?;

    let mut out_dir = args.out.as_deref().map(OutputDir::create).transpose()?;
    let mut probs_npy = None;
    let mut activation_npys = Vec::new();
    if let Some(dir) = out_dir.as_mut() {
        probs_npy = Some(NpyStream::new(dir.file("probs.npy")?, &[n, classes])?);
        if args.activations {
            for (l, (layer, g)) in spec.layers.iter().zip(model.geometry()).enumerate() {
                let shape = [n, g.output[0], g.output[1], g.output[2]];
                let relu = NpyStream::new(dir.file(&format!("relu_{l}.npy"))?, &shape)?;
                let norm = match layer.norm {
                    alltnn_runtime::spec::Norm::None => None,
                    _ => Some(NpyStream::new(dir.file(&format!("norm_{l}.npy"))?, &shape)?),
                };
                activation_npys.push((relu, norm));
            }
        }
    }

    let progress = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} stimuli, {per_sec}, eta {eta}")
            .expect("valid progress template"),
    );
    let mut input = vec![0.0f32; batch * stimuli.image_len()];
    let mut predictions = Vec::with_capacity(n);
    for start in (0..n).step_by(batch) {
        let count = batch.min(n - start);
        for (i, slot) in input
            .chunks_exact_mut(stimuli.image_len())
            .take(count)
            .enumerate()
        {
            stimuli.load(start + i, slot)?;
        }
        let probs = engine.run(&input[..count * stimuli.image_len()])?;
        for (i, row) in probs.chunks_exact(classes).enumerate() {
            predictions.push(Prediction {
                name: stimuli.name(start + i),
                top: top_classes(row, top_k),
            });
        }
        if let Some(npy) = probs_npy.as_mut() {
            npy.push(probs)?;
        }
        for (l, (relu, norm)) in activation_npys.iter_mut().enumerate() {
            relu.push(engine.activation(l))?;
            if let (Some(npy), Some(values)) = (norm.as_mut(), engine.normalized(l)) {
                npy.push(values)?;
            }
        }
        progress.inc(count as u64);
    }
    progress.finish_and_clear();

    let names = model.class_names();
    if names.len() == classes::ECOSET_CLASSES {
        eprintln!("note: {}", classes::ECOSET_NOTE);
    }
    let Some(mut dir) = out_dir.take() else {
        for p in &predictions {
            let top: Vec<String> = p
                .top
                .iter()
                .map(|&(c, prob)| format!("{} {prob:.4}", label(names, c)))
                .collect();
            println!("{}\t{}", p.name, top.join("\t"));
        }
        return Ok(());
    };
    if let Some(npy) = probs_npy {
        npy.finish()?;
    }
    for (relu, norm) in activation_npys {
        relu.finish()?;
        if let Some(npy) = norm {
            npy.finish()?;
        }
    }
    let mut csv = dir.file("predictions.csv")?;
    write_csv(&mut csv, &predictions, names, top_k)?;
    csv.flush()?;
    drop(csv);
    let target = args
        .out
        .as_deref()
        .unwrap_or(".".as_ref())
        .display()
        .to_string();
    dir.commit()?;
    println!("wrote predictions for {n} stimuli to {target}");
    Ok(())
}

/// The `k` most probable classes, most probable first (ties: lower class index first).
fn top_classes(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    order.into_iter().take(k).map(|c| (c, row[c])).collect()
}

fn label(names: &[String], class: usize) -> String {
    match names.get(class) {
        Some(name) => format!("{class}:{name}"),
        None => class.to_string(),
    }
}

fn write_csv(
    out: &mut impl Write,
    predictions: &[Prediction],
    names: &[String],
    k: usize,
) -> Result<()> {
    let mut header = vec!["input".to_string()];
    for i in 1..=k {
        header.push(format!("class_{i}"));
        if !names.is_empty() {
            header.push(format!("name_{i}"));
        }
        header.push(format!("probability_{i}"));
    }
    writeln!(out, "{}", header.join(","))?;
    for p in predictions {
        let mut fields = vec![csv_field(&p.name)];
        for &(class, prob) in &p.top {
            fields.push(class.to_string());
            if let Some(name) = names.get(class) {
                fields.push(csv_field(name));
            }
            fields.push(format!("{prob:.6e}"));
        }
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

/// Quotes a CSV field when it holds a separator, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_classes_orders_by_probability() {
        assert_eq!(
            top_classes(&[0.1, 0.5, 0.2, 0.2], 3),
            vec![(1, 0.5), (2, 0.2), (3, 0.2)]
        );
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a.png"), "a.png");
        assert_eq!(csv_field("a,b \"c\".png"), "\"a,b \"\"c\"\".png\"");
    }
}
