//! `alltnn infer`: predictions (and optionally every layer's activations) for a set of stimuli.

use std::io::Write;
use std::path::{Path, PathBuf};

use alltnn_runtime::engine::Model;
use alltnn_runtime::ModelSpec;
use anyhow::{bail, Context, Result};

use crate::classes;
use crate::engines::{self, Backend, EngineKind};
use crate::outputs::{NpyStream, OutputDir};
use crate::shard::{self, Record, Shard};
use crate::stimuli::{self, Stimuli};
use crate::weights;

/// Run a model on images, `.npy` arrays or HDF5 datasets.
#[derive(clap::Args)]
pub struct Args {
    /// Model file: `.tnn`; for `--engine tract|ort` also `.onnx` (as written by `alltnn convert`)
    /// or any model file `alltnn convert` reads, exported to ONNX in memory.
    model: PathBuf,
    /// Stimuli: PNG/JPEG files (resized to the model input; grey repeated to RGB), directories
    /// of them, `.npy` arrays and HDF5 datasets (`FILE.h5:DATASET`, e.g. `eco.h5:test/data`) —
    /// uint8 NHWC raw pixels or float32 NHWC preprocessed values.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Write predictions.csv and probs.npy (and activations) here instead of printing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every layer's post-ReLU (`relu_<l>.npy`) and post-norm (`norm_<l>.npy`)
    /// activations, NHWC float32. Needs `--out`. The ONNX engines give `relu_<l>.npy` only, and
    /// a `.onnx` file must have been exported with `--activations`.
    #[arg(long, requires = "out")]
    activations: bool,
    /// Run only part K of N (1-based, e.g. 2/4 for a Slurm array task): the stimuli in order,
    /// split into N contiguous near-equal parts. Needs `--out DIR`; writes DIR/shard-K-of-N/ and
    /// skips a part already complete there. `alltnn merge DIR` joins the parts.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Number of top classes to report per stimulus.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    top_k: u32,
    /// Inference engine: this project's runtime (`native-a8`: with int8 activations, for int8
    /// models), or the model's ONNX export in tract or onnxruntime (builds with the cargo
    /// features `tract`, `ort`; see README "Engines").
    #[arg(long, value_enum, default_value_t = EngineKind::Native)]
    engine: EngineKind,
}

pub fn run(args: Args) -> Result<()> {
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    if shard.is_some() && args.out.is_none() {
        bail!("--shard needs --out DIR: each part writes DIR/shard-K-of-N/ for `alltnn merge DIR`");
    }
    // Before any model is read: a missing engine is the user's first problem.
    args.engine.prepare()?;
    let path = &args.model;
    match args.engine {
        native if native.is_native() => {
            if engines::is_onnx(path) {
                bail!(
                    "{}: the native engine runs .tnn models: run ONNX files with --engine tract \
                     or --engine ort, or convert the original model with `alltnn convert`",
                    path.display()
                );
            }
            let mapped = weights::map(path)?;
            let file = weights::verified(&mapped, path)?;
            let model = Model::from_file(&file).with_context(|| format!("{}", path.display()))?;
            infer(&args, shard, model.spec(), model.class_names(), |batch| {
                let engine = native.native(&model, batch);
                Ok(Box::new(
                    engine.with_context(|| format!("{}", path.display()))?,
                ))
            })
        }
        #[cfg(any(feature = "tract", feature = "ort"))]
        kind => {
            let model = engines::OnnxModel::load(path, args.activations)?;
            infer(&args, shard, &model.spec, &model.class_names, |_| {
                model
                    .backend(kind, args.activations)
                    .with_context(|| format!("{}", path.display()))
            })
        }
        #[cfg(not(any(feature = "tract", feature = "ort")))]
        kind => kind.prepare(),
    }
}

/// Runs the backend that `backend` makes for a batch size on every stimulus (of the shard) and
/// writes the results.
fn infer<'m>(
    args: &Args,
    shard: Option<Shard>,
    spec: &ModelSpec,
    names: &[String],
    backend: impl FnOnce(usize) -> Result<Box<dyn Backend + 'm>>,
) -> Result<()> {
    let stimuli = Stimuli::open(&args.inputs, spec)?;
    let total = stimuli.len();
    let range = shard.map_or(0..total, |s| s.range(total));
    let n = range.len();
    let out_path = match (&args.out, shard) {
        (Some(out), Some(shard)) => Some(out.join(shard.dir_name())),
        (out, _) => out.clone(),
    };
    let mut record = shard.map(|shard| Record {
        shard,
        range: range.clone(),
        total,
        model: args.model.display().to_string(),
        fingerprint: shard::fingerprint((0..total).map(|i| stimuli.name(i))),
        files: Vec::new(),
    });
    if let (Some(record), Some(dir)) = (&record, &out_path) {
        if dir.join(shard::RECORD).exists() {
            check_done(record, dir, args.activations)?;
            println!(
                "shard {}/{}: {} is complete ({} present), skipping",
                record.shard.k,
                record.shard.n,
                dir.display(),
                shard::RECORD
            );
            return Ok(());
        }
    }

    // A shard of fewer stimuli than shards may be empty; it still writes its (empty) files.
    let batch = (args.batch as usize).min(n).max(1);
    let classes = spec.readout.classes as usize;
    let top_k = (args.top_k as usize).min(classes);
    let mut engine = backend(batch)?;
    let geometry = spec.geometry()?;

    let mut out_dir = out_path.as_deref().map(OutputDir::create).transpose()?;
    let mut files = Vec::new();
    let mut csv = None;
    let mut probs_npy = None;
    let mut activation_npys = Vec::new();
    if let Some(dir) = out_dir.as_mut() {
        let mut file = |name: String| {
            let writer = dir.file(&name);
            files.push(name);
            writer
        };
        let mut writer = file("predictions.csv".into())?;
        write_csv_header(&mut writer, names, top_k)?;
        csv = Some(writer);
        probs_npy = Some(NpyStream::new(file("probs.npy".into())?, &[n, classes])?);
        if args.activations {
            for (l, g) in geometry.iter().enumerate() {
                let shape = [n, g.output[0], g.output[1], g.output[2]];
                let relu = NpyStream::new(file(format!("relu_{l}.npy"))?, &shape)?;
                let norm = match engine.normalized(l) {
                    None => None,
                    Some(_) => Some(NpyStream::new(file(format!("norm_{l}.npy"))?, &shape)?),
                };
                activation_npys.push((relu, norm));
            }
        }
    }

    if names.len() == classes::ECOSET_CLASSES {
        eprintln!("note: {}", classes::ECOSET_NOTE);
    }
    let progress = stimuli::progress_bar(n);
    stimuli.for_each_batch(range.clone(), batch, |first, images| {
        let probs = engine.run(images)?;
        let rows = probs.chunks_exact(classes).enumerate();
        match csv.as_mut() {
            Some(csv) => {
                for (i, row) in rows {
                    let top = top_classes(row, top_k);
                    write_csv_row(csv, &stimuli.name(first + i), &top, names)?;
                }
            }
            None => {
                let lines: Vec<String> = rows
                    .map(|(i, row)| {
                        let top: Vec<String> = top_classes(row, top_k)
                            .iter()
                            .map(|&(c, prob)| format!("{} {prob:.4}", label(names, c)))
                            .collect();
                        format!("{}\t{}\n", stimuli.name(first + i), top.join("\t"))
                    })
                    .collect();
                progress
                    .suspend(|| {
                        std::io::stdout()
                            .lock()
                            .write_all(lines.concat().as_bytes())
                    })
                    .context("stdout")?;
            }
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
        progress.inc((images.len() / stimuli.image_len()) as u64);
        Ok(())
    })?;
    progress.finish_and_clear();

    let (Some(mut dir), Some(out_path)) = (out_dir.take(), out_path) else {
        return Ok(());
    };
    if let Some(mut csv) = csv {
        csv.flush()?;
    }
    if let Some(npy) = probs_npy {
        npy.finish()?;
    }
    for (relu, norm) in activation_npys {
        relu.finish()?;
        if let Some(npy) = norm {
            npy.finish()?;
        }
    }
    // The record is published last: a directory holding it is complete.
    if let Some(record) = record.as_mut() {
        record.files = files;
        dir.write(shard::RECORD, record.to_json().as_bytes())?;
    }
    dir.commit()?;
    match shard {
        Some(s) => println!(
            "shard {}/{}: wrote predictions for {n} stimuli ({}..{} of {total}) to {}",
            s.k,
            s.n,
            range.start,
            range.end,
            out_path.display()
        ),
        None => println!(
            "wrote predictions for {n} stimuli to {}",
            out_path.display()
        ),
    }
    Ok(())
}

/// Checks that the complete shard in `dir` holds results for this very run.
fn check_done(record: &Record, dir: &Path, activations: bool) -> Result<()> {
    let done = Record::read(dir)?;
    let path = dir.join(shard::RECORD);
    let rerun = "remove the directory to rerun this shard";
    if (&done.range, done.total, &done.fingerprint, &done.model)
        != (
            &record.range,
            record.total,
            &record.fingerprint,
            &record.model,
        )
    {
        bail!(
            "{}: complete, but for other stimuli or another model (inputs fingerprint {}, model \
             {}; this run: {}, {}); {rerun}",
            path.display(),
            done.fingerprint,
            done.model,
            record.fingerprint,
            record.model
        );
    }
    if done.files.iter().any(|f| f.starts_with("relu_")) != activations {
        let with = if activations { "without" } else { "with" };
        bail!(
            "{}: complete, but {with} --activations; {rerun}",
            path.display()
        );
    }
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

fn write_csv_header(out: &mut impl Write, names: &[String], k: usize) -> Result<()> {
    let mut header = vec!["input".to_string()];
    for i in 1..=k {
        header.push(format!("class_{i}"));
        if !names.is_empty() {
            header.push(format!("name_{i}"));
        }
        header.push(format!("probability_{i}"));
    }
    writeln!(out, "{}", header.join(","))?;
    Ok(())
}

fn write_csv_row(
    out: &mut impl Write,
    name: &str,
    top: &[(usize, f32)],
    names: &[String],
) -> Result<()> {
    let mut fields = vec![csv_field(name)];
    for &(class, prob) in top {
        fields.push(class.to_string());
        if let Some(name) = names.get(class) {
            fields.push(csv_field(name));
        }
        fields.push(format!("{prob:.6e}"));
    }
    writeln!(out, "{}", fields.join(","))?;
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
