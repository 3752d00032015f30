//! `alltnn bench`: this runtime and its peers on the same model and inputs, in one process.
//!
//! Per engine and batch size: warm-up, then timed runs until both a minimum count and a
//! minimum time are reached; the median and spread (min–max) per image, the weight bytes
//! streamed per second, the share of the memory-bandwidth floor measured in the same run, and
//! the ratio of each engine's median to the others'.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alltnn_runtime::engine::{Engine, Model, Stage};
use alltnn_runtime::kernels::block;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::json;

use crate::engines::{Backend, EngineKind};
use crate::weights;

/// Time the model in this runtime and in tract/onnxruntime, against the memory floor.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (`.tnn`); the peers run its ONNX export.
    model: PathBuf,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    batch: Vec<usize>,
    /// Engines to compare (tract and ort need the cargo features of the same names).
    #[arg(long, value_delimiter = ',', default_value = "native")]
    engines: Vec<EngineKind>,
    /// Timed runs per engine and batch size, at least.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds to keep timing each engine and batch size, at least.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Also time each layer of this runtime: its kernel, and activation + norm + pooling.
    #[arg(long)]
    layers: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Median seconds per batch of each stage of a run, in the order they finish.
type Profile = Vec<(Stage, f64)>;

struct Timing {
    engine: &'static str,
    batch: usize,
    /// Seconds per image: median, min, max.
    median: f64,
    min: f64,
    max: f64,
}

pub fn run(args: Args) -> Result<()> {
    for kind in &args.engines {
        kind.prepare()?;
    }
    let path = &args.model;
    let mapped = weights::map(path)?;
    let file = weights::verified(&mapped, path)?;
    let model = Model::from_file(&file).with_context(|| format!("{}", path.display()))?;
    let spec = model.spec();
    let weight_bytes: usize = file.tensors().iter().map(|t| t.byte_len).sum();
    let bandwidth = memory_bandwidth(weight_bytes.max(512 << 20));
    let floor = weight_bytes as f64 / bandwidth;
    println!(
        "{}: {:.1} MB of weights ({}), {} threads, kernels {}",
        path.display(),
        weight_bytes as f64 / 1e6,
        file.kernel_dtype().map_or("mixed", |d| d.name()),
        rayon::current_num_threads(),
        block::isa().name()
    );
    println!(
        "memory read bandwidth {:.1} GB/s: floor {:.2} ms per batch (weights read once)",
        bandwidth / 1e9,
        floor * 1e3
    );

    let max_batch = args.batch.iter().copied().max().unwrap_or(1);
    let input = inputs(max_batch * spec.input_len());
    let mut timings = Vec::new();
    let mut profiles = Vec::new();
    for &kind in &args.engines {
        for &batch in &args.batch {
            let images = &input[..batch * spec.input_len()];
            let timing = match kind {
                native if native.is_native() => {
                    let mut engine = native
                        .native(&model, batch)
                        .with_context(|| format!("{}", path.display()))?;
                    let timing = time(&mut engine, images, batch, &args)?;
                    if args.layers {
                        let stages = profile(&mut engine, images, args.runs)?;
                        profiles.push((native.name(), batch, stages));
                    }
                    timing
                }
                #[cfg(any(feature = "tract", feature = "ort"))]
                peer => {
                    let onnx = crate::engines::OnnxModel::load(path, false)?;
                    let mut backend = onnx.backend(peer, false)?;
                    time(backend.as_mut(), images, batch, &args)?
                }
                #[cfg(not(any(feature = "tract", feature = "ort")))]
                peer => {
                    peer.prepare()?;
                    unreachable!("prepare refuses engines this build lacks")
                }
            };
            timings.push(Timing {
                engine: kind.name(),
                ..timing
            });
        }
    }

    println!(
        "{:<8}{:>6}{:>13}{:>21}{:>10}{:>9}  ratios (median / other)",
        "engine", "batch", "ms/image", "spread (min-max)", "GB/s", "floor"
    );
    let mut rows = Vec::new();
    for t in &timings {
        let per_batch = t.median * t.batch as f64;
        let gbs = weight_bytes as f64 / per_batch / 1e9;
        let of_floor = per_batch / floor;
        let ratios: Vec<String> = timings
            .iter()
            .filter(|o| o.batch == t.batch && o.engine != t.engine)
            .map(|o| format!("{:.2}x {}", t.median / o.median, o.engine))
            .collect();
        println!(
            "{:<8}{:>6}{:>13.3}{:>21}{:>10.1}{:>8.2}x  {}",
            t.engine,
            t.batch,
            t.median * 1e3,
            format!("{:.3}-{:.3}", t.min * 1e3, t.max * 1e3),
            gbs,
            of_floor,
            ratios.join(", ")
        );
        rows.push(json!({
            "engine": t.engine, "batch": t.batch, "ms_per_image": t.median * 1e3,
            "min_ms_per_image": t.min * 1e3, "max_ms_per_image": t.max * 1e3,
            "weight_gb_per_s": gbs, "times_floor": of_floor,
        }));
    }
    let mut layers = Vec::new();
    for (engine, batch, stages) in &profiles {
        println!("{engine}, batch {batch}, per layer (median ms per batch):");
        println!(
            "{:<9}{:>10}{:>22}{:>14}{:>14}",
            "layer", "kernel", "activation+norm+pool", "weights MB", "kernel GB/s"
        );
        let at = |stage| {
            stages
                .iter()
                .find(|(s, _)| *s == stage)
                .map_or(0.0, |s| s.1)
        };
        let mut rows = Vec::new();
        for l in 0..spec.layers.len() {
            let (kernel, rest) = (at(Stage::Kernel(l)), at(Stage::Layer(l)));
            let w = &model.layer_weights(l).kernel;
            let bytes = (w.len() * w.dtype().size()) as f64;
            println!(
                "{:<9}{:>10.3}{:>22.3}{:>14.1}{:>14.1}",
                l,
                kernel * 1e3,
                rest * 1e3,
                bytes / 1e6,
                bytes / kernel / 1e9
            );
            rows.push(json!({
                "layer": l, "kernel_ms": kernel * 1e3, "rest_ms": rest * 1e3, "weight_bytes": bytes,
            }));
        }
        let readout = at(Stage::Readout);
        println!("{:<9}{:>10.3}", "readout", readout * 1e3);
        layers.push(json!({
            "engine": engine, "batch": batch, "layers": rows, "readout_ms": readout * 1e3,
        }));
    }
    if let Some(out) = &args.json {
        let doc = json!({
            "model": path, "weight_bytes": weight_bytes, "dtype": file.kernel_dtype().map(|d| d.name()),
            "threads": rayon::current_num_threads(), "isa": block::isa().name(),
            "bandwidth_gb_per_s": bandwidth / 1e9, "floor_ms_per_batch": floor * 1e3,
            "results": rows, "native_layers": layers,
        });
        crate::outputs::write_atomic(out, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    }
    Ok(())
}

/// Deterministic preprocessed-range inputs in [−1, 1].
fn inputs(len: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn time(engine: &mut dyn Backend, input: &[f32], batch: usize, args: &Args) -> Result<Timing> {
    for _ in 0..2 {
        engine.run(input)?;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < args.runs.max(1)
        || start.elapsed() < Duration::from_secs_f64(args.seconds)
    {
        let t = Instant::now();
        engine.run(input)?;
        samples.push(t.elapsed().as_secs_f64() / batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(Timing {
        engine: "",
        batch,
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    })
}

/// Each stage's median over `runs` (at least 3) observed runs, after the timed ones.
fn profile(engine: &mut Engine, input: &[f32], runs: usize) -> Result<Profile> {
    let mut samples: Vec<Profile> = Vec::new();
    for _ in 0..runs.max(3) {
        let mut stages = Vec::new();
        let mut last = Instant::now();
        engine.run_observed(input, |stage| {
            let now = Instant::now();
            stages.push((stage, (now - last).as_secs_f64()));
            last = now;
        })?;
        samples.push(stages);
    }
    let mut median = samples[0].clone();
    for (i, (_, m)) in median.iter_mut().enumerate() {
        let mut times: Vec<f64> = samples.iter().map(|s| s[i].1).collect();
        times.sort_by(f64::total_cmp);
        *m = times[times.len() / 2];
    }
    Ok(median)
}

/// Bytes per second read by all threads from a buffer of `bytes` (larger than the caches):
/// the best of five passes.
fn memory_bandwidth(bytes: usize) -> f64 {
    let buffer: Vec<u64> = (0..bytes / 8).map(|i| i as u64).collect();
    let threads = rayon::current_num_threads();
    // One contiguous stream per thread, like the kernels' position ranges.
    let chunk = buffer.len().div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let sum: u64 = buffer
            .par_chunks(chunk)
            .map(|c| {
                // Independent lanes, so that the adds keep up with memory.
                let mut lanes = [0u64; 8];
                for block in c.chunks_exact(8) {
                    for (l, &v) in lanes.iter_mut().zip(block) {
                        *l = l.wrapping_add(v);
                    }
                }
                lanes.iter().fold(0u64, |a, &l| a.wrapping_add(l))
            })
            .reduce(|| 0, u64::wrapping_add);
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(sum);
    }
    bytes as f64 / best
}
