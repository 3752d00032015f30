//! `alltnn energy`: the original's per-unit energy over a stimulus set, energy maps, a hardware
//! estimate and (where Linux exposes it) measured package energy.

use std::io::Write;
use std::path::{Path, PathBuf};

use alltnn_analysis::maps::{self, Map};
use alltnn_analysis::render::{self, Series};
use alltnn_runtime::energy::EnergyMeter;
use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::format::DType;
use alltnn_runtime::hardware::{self, EnergyTable, LayerCost};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::outputs::{NpyStream, OutputDir};
use crate::rapl::Rapl;
use crate::stimuli::{self, Stimuli};
use crate::weights;

/// Measure per-unit energy (the original's definition), energy maps and a hardware estimate.
#[derive(clap::Args)]
pub struct Args {
    /// Model files (`.tnn`), then stimuli as for `infer`: images, directories, `.npy` arrays.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write energy.json, per-layer and stacked maps (NPY, PNG) and the radial profile here.
    /// With `--compare`, each model gets a subdirectory named after its file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Several models on the same stimuli: print one table of totals and ratios.
    #[arg(long)]
    compare: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// JSON object overriding per-operation energies (pJ): mac_f32_pj, mac_f16_pj, mac_int8_pj,
    /// sram_pj_per_byte, dram_pj_per_byte. Default: Horowitz, ISSCC 2014, 45 nm.
    #[arg(long)]
    energy_table: Option<PathBuf>,
}

/// What one model's measurement produced.
pub struct Measurement {
    name: String,
    pub json: Value,
    /// Per layer: output (H, W, C) and per-unit totals.
    pub units: Vec<([usize; 3], Vec<f64>)>,
    /// Mean energy per stimulus over the layers the original reports (all but the last).
    pub original_per_stimulus: f64,
    hardware_uj: f64,
    sparse_hardware_uj: f64,
}

pub fn run(args: Args) -> Result<()> {
    let (models, inputs): (Vec<PathBuf>, Vec<PathBuf>) = args
        .paths
        .iter()
        .cloned()
        .partition(|p| p.extension().is_some_and(|e| e == "tnn"));
    if models.is_empty() {
        bail!("no model given: the first arguments must be .tnn files");
    }
    if inputs.is_empty() {
        bail!("no stimuli given after the model");
    }
    if models.len() > 1 && !args.compare {
        bail!(
            "{} models given: add --compare to measure several",
            models.len()
        );
    }
    let table = match &args.energy_table {
        Some(path) => read_table(path)?,
        None => EnergyTable::default(),
    };
    let mut results = Vec::new();
    for model in &models {
        let m = measure(model, &inputs, args.batch as usize, &table)?;
        if let Some(out) = &args.out {
            let dir = if args.compare {
                out.join(file_stem(model))
            } else {
                out.clone()
            };
            write_outputs(&dir, &m)?;
        }
        print_summary(&m);
        results.push(m);
    }
    if args.compare {
        print_comparison(&results);
        if let Some(out) = &args.out {
            let mut dir = OutputDir::create(out)?;
            let rows: Vec<Value> = results.iter().map(|m| m.json["summary"].clone()).collect();
            serde_json::to_writer_pretty(dir.file("compare.json")?, &rows)?;
            dir.commit()?;
        }
    }
    Ok(())
}

pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

fn read_table(path: &Path) -> Result<EnergyTable> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    // Fields left out keep their defaults.
    let mut value = serde_json::to_value(EnergyTable::default())?;
    let overrides: serde_json::Map<String, Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON object", path.display()))?;
    for (k, v) in overrides {
        if value.get(&k).is_none() {
            bail!("{}: unknown field `{k}`", path.display());
        }
        value[&k] = v;
    }
    serde_json::from_value(value)
        .with_context(|| format!("{}: energies must be numbers", path.display()))
}

pub fn measure(
    path: &Path,
    inputs: &[PathBuf],
    batch: usize,
    table: &EnergyTable,
) -> Result<Measurement> {
    let context = || format!("{}", path.display());
    let mapped = weights::map(path)?;
    let file = weights::verified(&mapped, path)?;
    let model = Model::from_file(&file).with_context(context)?;
    let spec = model.spec();
    let stimuli = Stimuli::open(inputs, spec)?;
    let n = stimuli.len();
    let batch = batch.min(n);
    let mut engine = Engine::new(&model, batch)?;
    let mut meter = EnergyMeter::new(&model, batch);

    let rapl = Rapl::open().and_then(|rapl| Ok((rapl.read()?, rapl)));
    let progress = stimuli::progress_bar(n);
    progress.set_message(format!("{} ", file_stem(path)));
    stimuli.for_each_batch(0..n, batch, |_, images| {
        engine.run(images)?;
        meter.accumulate(&engine, images);
        progress.inc((images.len() / stimuli.image_len()) as u64);
        Ok(())
    })?;
    progress.finish_and_clear();
    let measured = match rapl.and_then(|(start, rapl)| rapl.joules_since(&start)) {
        Ok(j) => json!({"joules": j, "joules_per_stimulus": j / n as f64,
            "note": "CPU package energy (RAPL) during the run: every process on the package counts"}),
        Err(e) => json!({"joules": null, "note": format!("RAPL unavailable: {e}")}),
    };

    // Each layer's kernels set its MAC energy and weight bytes (f32, f16 or int8).
    let dtypes: Vec<DType> = (0..spec.layers.len())
        .map(|l| model.layer_weights(l).kernel.dtype())
        .chain([model.readout().0.dtype()])
        .collect();
    let costs = dtypes
        .iter()
        .enumerate()
        .map(|(i, &dtype)| Ok(hardware::layer_costs(spec, dtype)?[i]))
        .collect::<Result<Vec<LayerCost>>>()?;
    let geometry = model.geometry();
    let n_f = n as f64;
    let mut layers = Vec::new();
    let mut units = Vec::new();
    let (mut dense_pj, mut sparse_pj) = (0.0, 0.0);
    for (l, (e, g)) in meter.layers().iter().zip(geometry).enumerate() {
        let cost = &costs[l];
        let nonzero = e.nonzero_macs as f64 / n_f;
        let (dense, sparse) = (
            cost.energy_pj(table, dtypes[l]),
            cost.sparse_energy_pj(table, dtypes[l], nonzero),
        );
        dense_pj += dense;
        sparse_pj += sparse;
        layers.push(json!({
            "layer": l,
            "units": g.output_len(),
            "post_sum": e.post_sum(),
            "pre_sum": e.pre_sum(),
            "total": e.total(),
            "per_stimulus_mean": e.total() / n_f,
            "hardware": hardware_json(cost, dense, Some((nonzero, sparse))),
        }));
        units.push((g.output, e.totals()));
    }
    let readout = costs.last().expect("layer_costs ends with the readout");
    let readout_pj = readout.energy_pj(table, dtypes[dtypes.len() - 1]);
    dense_pj += readout_pj;
    sparse_pj += readout_pj;
    let sum_over = |range: std::ops::Range<usize>| {
        let ls = &meter.layers()[range.clone()];
        let (post, pre) = (
            ls.iter().map(|e| e.post_sum()).sum::<f64>(),
            ls.iter().map(|e| e.pre_sum()).sum::<f64>(),
        );
        let total = post / 3.0 + 2.0 * pre / 3.0;
        json!({"layers": [range.start, range.end - 1], "post_sum": post, "pre_sum": pre, "total": total,
               "per_stimulus_mean": total / n_f})
    };
    let n_layers = meter.layers().len();
    let reported = 0..n_layers.saturating_sub(1).max(1);
    let original = sum_over(reported);
    let original_per_stimulus = original["per_stimulus_mean"].as_f64().unwrap_or(0.0);
    let name = file_stem(path);
    let summary = json!({
        "model": path, "stimuli": n,
        "total_per_stimulus": original_per_stimulus,
        "hardware_uj_per_stimulus": dense_pj * 1e-6,
        "sparse_hardware_uj_per_stimulus": sparse_pj * 1e-6,
        "measured_joules": measured["joules"],
    });
    let json = json!({
        "model": path,
        "stimuli": n,
        "kernel_dtypes": dtypes.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "definition": "E = E_post/3 + 2 E_pre/3 per unit, E_post = |post-ReLU activation|, E_pre = sum |w||x_in|; sums over stimuli",
        "layers": layers,
        "total": original,
        "total_all_layers": sum_over(0..n_layers),
        "hardware": {
            "per_stimulus_uj": dense_pj * 1e-6,
            "sparse_per_stimulus_uj": sparse_pj * 1e-6,
            "readout": hardware_json(readout, readout_pj, None),
            "table_pj": table_json(table),
            "model": "batch 1; weights read once per stimulus from DRAM, activations read and written once in SRAM; sparse: only MACs with a non-zero input (and, for locally connected layers, their weights)",
        },
        "measured": measured,
        "summary": summary,
    });
    Ok(Measurement {
        name,
        json,
        units,
        original_per_stimulus,
        hardware_uj: dense_pj * 1e-6,
        sparse_hardware_uj: sparse_pj * 1e-6,
    })
}

fn hardware_json(cost: &LayerCost, energy_pj: f64, sparse: Option<(f64, f64)>) -> Value {
    let mut v = json!({
        "macs": cost.macs, "weights": cost.weights, "weight_bytes": cost.weight_bytes,
        "activation_bytes": cost.activation_bytes, "energy_uj": energy_pj * 1e-6,
    });
    if let Some((nonzero, sparse_pj)) = sparse {
        v["nonzero_macs_per_stimulus"] = json!(nonzero);
        v["sparse_energy_uj"] = json!(sparse_pj * 1e-6);
    }
    v
}

fn table_json(table: &EnergyTable) -> Value {
    serde_json::to_value(table).unwrap_or(Value::Null)
}

pub fn write_outputs(dir: &Path, m: &Measurement) -> Result<()> {
    let mut out = OutputDir::create(dir)?;
    let mut sheets = Vec::new();
    for (l, (shape, totals)) in m.units.iter().enumerate() {
        let values: Vec<f32> = totals.iter().map(|&v| v as f32).collect();
        let mut npy = NpyStream::new(out.file(&format!("energy_{l}.npy"))?, shape)?;
        npy.push(&values)?;
        npy.finish()?;
        let map = Map::from_hwc(&values, shape[0], shape[1], shape[2])?;
        let title = format!("{}: layer {l} energy", m.name);
        let png = render::heatmap_png(&map, &title, "energy, sum over stimuli")?;
        out.write(&format!("energy_{l}.png"), &png)?;
        sheets.push(map);
    }
    // The original stacks layers 0..n-2: the last (1x1 in the paper) is left out.
    let reported = sheets.len().saturating_sub(1).max(1);
    let stacked = maps::stack(&sheets[..reported])?;
    let mut npy = NpyStream::new(
        out.file("energy_stacked.npy")?,
        &[stacked.rows, stacked.cols],
    )?;
    npy.push(&stacked.values)?;
    npy.finish()?;
    let title = format!("{}: layers 0-{} stacked", m.name, reported - 1);
    let png = render::heatmap_png(&stacked, &title, "energy, sum over stimuli")?;
    out.write("energy_stacked.png", &png)?;
    let profile = maps::radial_profile(&stacked);
    let mut csv = out.file("energy_radial.csv")?;
    writeln!(csv, "radius,mean_energy,percent_of_centre")?;
    for p in &profile {
        writeln!(csv, "{},{},{}", p.radius, p.mean, p.percent)?;
    }
    csv.flush()?;
    drop(csv);
    let points: Vec<(f64, f64)> = profile.iter().map(|p| (p.radius, p.percent)).collect();
    let plot = render::line_plot_png(
        &[Series {
            name: &m.name,
            points: &points,
        }],
        &format!("{}: energy within radius of the sheet centre", m.name),
        "radius (units of the stacked sheet)",
        "mean energy (% of centre)",
    )?;
    out.write("energy_radial.png", &plot)?;
    let mut json = out.file("energy.json")?;
    serde_json::to_writer_pretty(&mut json, &m.json)?;
    json.flush()?;
    drop(json);
    out.commit()?;
    println!("wrote energy results of {} to {}", m.name, dir.display());
    Ok(())
}

fn print_summary(m: &Measurement) {
    let layers = m.json["layers"]
        .as_array()
        .map_or(&[][..], |v| v.as_slice());
    println!("{} ({} stimuli)", m.name, m.json["stimuli"]);
    println!(
        "{:<7}{:>16}{:>16}{:>16}{:>20}",
        "layer", "E_post sum", "E_pre sum", "E total", "per stimulus"
    );
    for l in layers {
        println!(
            "{:<7}{:>16.4e}{:>16.4e}{:>16.4e}{:>20.4e}",
            l["layer"],
            l["post_sum"].as_f64().unwrap_or(0.0),
            l["pre_sum"].as_f64().unwrap_or(0.0),
            l["total"].as_f64().unwrap_or(0.0),
            l["per_stimulus_mean"].as_f64().unwrap_or(0.0)
        );
    }
    let t = &m.json["total"];
    println!(
        "total over layers {} (as the original reports it): {:.4e} per stimulus",
        t["layers"], m.original_per_stimulus
    );
    println!(
        "hardware estimate: {:.1} uJ per stimulus dense, {:.1} uJ sparse-aware",
        m.hardware_uj, m.sparse_hardware_uj
    );
    match m.json["measured"]["joules"].as_f64() {
        Some(j) => println!("measured: {j:.3} J (CPU package, whole run)"),
        None => println!(
            "measured: {}",
            m.json["measured"]["note"].as_str().unwrap_or("unavailable")
        ),
    }
}

fn print_comparison(results: &[Measurement]) {
    let Some(base) = results.first() else { return };
    println!();
    println!(
        "{:<24}{:>18}{:>10}{:>18}{:>10}{:>18}{:>10}",
        "model", "energy/stimulus", "ratio", "hardware uJ", "ratio", "sparse uJ", "ratio"
    );
    let ratio = |a: f64, b: f64| if b != 0.0 { a / b } else { f64::NAN };
    for m in results {
        println!(
            "{:<24}{:>18.4e}{:>10.3}{:>18.1}{:>10.3}{:>18.1}{:>10.3}",
            m.name,
            m.original_per_stimulus,
            ratio(m.original_per_stimulus, base.original_per_stimulus),
            m.hardware_uj,
            ratio(m.hardware_uj, base.hardware_uj),
            m.sparse_hardware_uj,
            ratio(m.sparse_hardware_uj, base.sparse_hardware_uj),
        );
    }
    println!("ratios are relative to {}", base.name);
}
