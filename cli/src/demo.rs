//! `alltnn demo`: the paper's comparison at a small scale. Trains an All-TNN (α = 10), its LCN
//! control (α = 0) and its CNN control on Fashion-MNIST, converts them, maps each one
//! (`alltnn maps`: smoothness, orientation, categories, spatial bias, energy) and writes one
//! HTML report that compares the three.

use std::path::{Path, PathBuf};

use alltnn_analysis::report::Report;
use alltnn_converter::tnn;
use alltnn_runtime::format::DType;
use alltnn_trainer::data::{self as dataset, Split};
use alltnn_trainer::train::latest_checkpoint;
use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};

use crate::maps::{self, fmt};
use crate::outputs::{write_atomic, NpyStream, OutputDir};
use crate::weights::{self, LoadOptions};

/// Train an All-TNN and its LCN and CNN controls on Fashion-MNIST and compare their maps.
#[derive(clap::Args)]
pub struct Args {
    /// Output directory: one folder per model and the comparison in index.html.
    #[arg(long, default_value = "demo")]
    out: PathBuf,
    /// About a minute in all: a few hundred training steps and fewer stimuli (what CI runs).
    #[arg(long)]
    quick: bool,
    /// Training epochs per model (default 5; --quick trains 150 updates).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
}

/// (folder, title, preset, α)
const MODELS: [(&str, &str, &str, f32); 3] = [
    ("alltnn", "All-TNN (α = 10)", "fashion-alltnn", 10.0),
    ("lcn", "LCN (α = 0)", "fashion-alltnn", 0.0),
    ("cnn", "CNN", "fashion-cnn", 0.0),
];

/// Fashion-MNIST classes grouped into the categories of the selectivity maps.
const CATEGORIES: [&str; 4] = [
    "footwear=Sandal,Sneaker,Ankle boot",
    "tops=T-shirt/top,Pullover,Coat,Shirt",
    "bags=Bag",
    "legwear=Trouser,Dress",
];

const DATA: &str = "fashion-mnist";

/// How much of everything: the full demo or `--quick`.
struct Budget {
    epochs: u32,
    max_steps: Option<u32>,
    accuracy_images: usize,
    energy_images: usize,
    category_limit: usize,
    bias_objects: u32,
    bootstrap: usize,
}

#[derive(Parser)]
struct TrainCommand {
    #[command(flatten)]
    args: crate::train::Args,
}

pub fn run(args: Args) -> Result<()> {
    let budget = if args.quick {
        Budget {
            epochs: args.epochs.unwrap_or(1),
            max_steps: Some(150),
            accuracy_images: 500,
            energy_images: 100,
            category_limit: 100,
            bias_objects: 20,
            bootstrap: 200,
        }
    } else {
        Budget {
            epochs: args.epochs.unwrap_or(5),
            max_steps: None,
            accuracy_images: 10_000,
            energy_images: 1000,
            category_limit: 1000,
            bias_objects: 200,
            bootstrap: 1000,
        }
    };
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let stimuli = out.join("energy_stimuli.npy");
    write_stimuli(&stimuli, budget.energy_images)?;

    let mut results = Vec::new();
    for (key, title, preset, alpha) in MODELS {
        println!("== {title}");
        let model = train_and_convert(out, key, preset, alpha, &budget)?;
        let accuracy = maps::accuracy(&model, DATA, budget.accuracy_images, 64)?;
        println!("test accuracy {accuracy:.3}");
        let summary = maps::analyse(&maps::Args {
            model: model.clone(),
            out: out.join(key),
            orientation: true,
            wavelength: 3.0,
            window: 8,
            bootstrap: budget.bootstrap,
            categories: CATEGORIES.iter().map(|c| c.to_string()).collect(),
            category_data: Some(DATA.into()),
            category_limit: Some(budget.category_limit),
            bias: Some(DATA.into()),
            bias_grid: 5,
            bias_limit: budget.bias_objects,
            bias_object_size: None,
            bias_background: None,
            human_map: None,
            energy: vec![stimuli.clone()],
            batch: 64,
        })?;
        results.push(Compared {
            key,
            title,
            accuracy,
            summary,
        });
    }
    let report = comparison(out, &results, args.quick)?;
    report.write(&out.join("index.html"))?;
    println!("report: {}", out.join("index.html").display());
    Ok(())
}

/// Trains one model from scratch in `out/key/train` and converts its last checkpoint to
/// `out/key.tnn`.
fn train_and_convert(
    out: &Path,
    key: &str,
    preset: &str,
    alpha: f32,
    budget: &Budget,
) -> Result<PathBuf> {
    let dir = out.join(key).join("train");
    // A rerun starts over rather than resuming a run made with other settings.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    }
    let mut argv: Vec<String> = [
        "train",
        "--spec",
        preset,
        "--data",
        DATA,
        "--alpha",
        &alpha.to_string(),
        "--epochs",
        &budget.epochs.to_string(),
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(dir.display().to_string());
    if let Some(steps) = budget.max_steps {
        argv.extend(["--max-steps".to_string(), steps.to_string()]);
    }
    let command = TrainCommand::try_parse_from(&argv).context("demo training settings")?;
    crate::train::run(command.args)?;
    let checkpoint = latest_checkpoint(&dir)?
        .with_context(|| format!("{}: training wrote no checkpoint", dir.display()))?;
    let model = weights::load(&checkpoint, &LoadOptions::default())?;
    let names = dataset::class_names(DATA).unwrap_or_default();
    let path = out.join(format!("{key}.tnn"));
    tnn::write_tnn(&path, &model, &names, DType::F32)
        .with_context(|| format!("{}", path.display()))?;
    Ok(path)
}

/// The first `count` Fashion-MNIST test images at the models' input size, as preprocessed
/// float32 (the energy stimuli of every model).
fn write_stimuli(path: &Path, count: usize) -> Result<()> {
    let spec = weights::spec("fashion-alltnn")?;
    let data = dataset::open(DATA, Split::Test)?;
    let count = count.min(data.len());
    let (h, w, c) = (
        spec.input.height as usize,
        spec.input.width as usize,
        spec.input.channels as usize,
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("stimuli.npy");
    let mut out = OutputDir::create(dir)?;
    let mut npy = NpyStream::new(out.file(name)?, &[count, h, w, c])?;
    let mut slot = vec![0.0f32; h * w * c];
    for i in 0..count {
        maps::fill_raw(&spec, &data.image(i)?, &mut slot);
        npy.push(&slot)?;
    }
    npy.finish()?;
    out.commit()
}

struct Compared {
    key: &'static str,
    title: &'static str,
    accuracy: f64,
    summary: Value,
}

impl Compared {
    fn smoothness(&self) -> Option<f64> {
        self.summary["smoothness"]["smoothness"]["4_circular"].as_f64()
    }
    fn layer0(&self) -> &Value {
        &self.summary["orientation"]["layers"][0]
    }
    fn energy(&self) -> Option<f64> {
        self.summary["energy"]["total_per_stimulus"].as_f64()
    }
}

fn comparison(out: &Path, results: &[Compared], quick: bool) -> Result<Report> {
    let mut report = Report::new("alltnn demo: All-TNN vs LCN vs CNN on Fashion-MNIST");
    report.paragraph(&format!(
        "Three models of the same layer list (models/fashion-alltnn.json, models/fashion-cnn.json) \
         trained on Fashion-MNIST ({}): an All-TNN with spatial loss α = 10, the same locally \
         connected network without it (LCN) and the weight-sharing CNN. The paper's directions: \
         the All-TNN is the smoothest (lowest spatial loss), has the lowest orientation entropy \
         and uses the least energy. Each model's full maps are in its folder (e.g. alltnn/index.html).{}",
        dataset::open(DATA, Split::Train)?.describe(),
        if quick { " This is the --quick run: the models are barely trained." } else { "" }
    ));
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let l0 = r.layer0();
            vec![
                r.title.to_string(),
                format!("{:.3}", r.accuracy),
                fmt(r.smoothness()),
                fmt(l0["mean_entropy"].as_f64()),
                format!(
                    "{} → {}",
                    fmt(l0["entropy_centre"].as_f64()),
                    fmt(l0["entropy_periphery"].as_f64())
                ),
                match l0["pinwheel_density_reliable"].as_bool() {
                    Some(false) => format!(
                        "{}{}",
                        fmt(l0["pinwheels"]["density"].as_f64()),
                        maps::SMALL_SHEET
                    ),
                    _ => fmt(l0["pinwheels"]["density"].as_f64()),
                },
                r.energy().map_or("–".into(), |e| format!("{e:.4e}")),
                fmt(r.summary["bias"]["mean_accuracy"].as_f64()),
            ]
        })
        .collect();
    report.heading("Summary");
    report.table(
        &[
            "model",
            "test accuracy",
            "smoothness 1/Σ L_l",
            "layer-0 orientation entropy (nats)",
            "entropy centre → periphery",
            "layer-0 pinwheel density",
            "energy per stimulus",
            "accuracy over 5×5 positions",
        ],
        &rows,
    );
    report.heading("The paper's directions, here");
    let by_key = |k: &str| results.iter().find(|r| r.key == k);
    let (Some(a), Some(l), Some(c)) = (by_key("alltnn"), by_key("lcn"), by_key("cnn")) else {
        bail!("the demo trains three models");
    };
    let checks = [
        (
            "smoother (higher 1/Σ L)",
            a.smoothness(),
            l.smoothness(),
            c.smoothness(),
            true,
        ),
        (
            "lower orientation entropy (layer 0)",
            a.layer0()["mean_entropy"].as_f64(),
            l.layer0()["mean_entropy"].as_f64(),
            c.layer0()["mean_entropy"].as_f64(),
            false,
        ),
        ("lower energy", a.energy(), l.energy(), c.energy(), false),
    ];
    let mut pairs = Vec::new();
    let mut directions = serde_json::Map::new();
    for (what, av, lv, cv, higher) in checks {
        let holds = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => Some(if higher { x > y } else { x < y }),
            _ => None,
        };
        let verdict = match (holds(av, lv), holds(av, cv)) {
            (Some(true), Some(true)) => "yes",
            (Some(_), Some(_)) => "no",
            _ => "not measured",
        };
        pairs.push((
            format!("All-TNN {what} than LCN and CNN"),
            format!(
                "{verdict} (All-TNN {}, LCN {}, CNN {})",
                fmt(av),
                fmt(lv),
                fmt(cv)
            ),
        ));
        directions.insert(what.to_string(), json!(verdict));
    }
    report.key_values(&pairs);

    // Layer 0's entropy profile of the three models in one plot.
    let profiles: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            let points = r.layer0()["entropy_vs_eccentricity"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["eccentricity"].as_f64()?, p["mean"].as_f64()?)))
                .collect();
            (r.title.to_string(), points)
        })
        .collect();
    let png = maps::plot_named(
        &profiles,
        "Layer 0: orientation entropy vs eccentricity",
        "eccentricity (units from the sheet centre)",
        "mean entropy (nats)",
    )?;
    write_atomic(&out.join("entropy_eccentricity.png"), &png)?;
    report.figure(
        "entropy_eccentricity.png",
        "Layer 0: entropy vs eccentricity",
    );

    let last = results[0].summary["orientation"]["layers"]
        .as_array()
        .map_or(0, |l| l.len().saturating_sub(1));
    for (heading, file, caption) in [
        (
            "Orientation maps, layer 0",
            "orientation_l0.png",
            "preferred orientation and selectivity",
        ),
        (
            "Orientation entropy, layer 0",
            "orientation_l0_entropy.png",
            "entropy",
        ),
        (
            "Energy (stacked)",
            "energy/energy_stacked.png",
            "stacked energy map",
        ),
        (
            "Category selectivity, last layer",
            &format!("category_l{last}_argmax.png"),
            "most selective category",
        ),
        (
            "Accuracy by object position",
            "bias_accuracy.png",
            "accuracy over a 5×5 grid",
        ),
    ] {
        report.heading(heading);
        for r in results {
            report.figure(
                &format!("{}/{file}", r.key),
                &format!("{}: {caption}", r.title),
            );
        }
    }
    let json = json!({
        "models": results.iter().map(|r| json!({
            "model": r.key, "title": r.title, "test_accuracy": r.accuracy,
            "smoothness_4_circular": r.smoothness(),
            "layer0_mean_entropy": r.layer0()["mean_entropy"],
            "layer0_entropy_centre": r.layer0()["entropy_centre"],
            "layer0_entropy_periphery": r.layer0()["entropy_periphery"],
            "layer0_pinwheel_density": r.layer0()["pinwheels"]["density"],
            "energy_per_stimulus": r.energy(),
            "bias_mean_accuracy": r.summary["bias"]["mean_accuracy"],
        })).collect::<Vec<_>>(),
        "directions": directions,
    });
    write_atomic(
        &out.join("demo.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    for (what, verdict) in &pairs {
        println!("{what}: {verdict}");
    }
    Ok(report)
}
