//! `alltnn train`: All-TNNs, LCNs (alpha 0) and CNN controls with the spatial loss.

use std::path::PathBuf;

use alltnn_analysis::render::{self, Series};
use alltnn_trainer::optim::{Clip, OptimizerKind};
use alltnn_trainer::schedule::AlphaSchedule;
use alltnn_trainer::spatial_loss::{Neighbours, SpatialConfig};
use alltnn_trainer::train::{self, EpochMetrics, Observer, Start, StepInfo, TrainConfig};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::outputs::OutputDir;
use crate::weights::{self, LoadOptions};

/// Train a model with the spatial loss.
#[derive(clap::Args)]
pub struct Args {
    /// Architecture: a JSON spec or a preset (paper-alltnn, paper-cnn, tiny, fashion-alltnn,
    /// fashion-cnn). Taken from `--init` or the checkpoint when those give one.
    #[arg(long)]
    spec: Option<String>,
    /// Data: `fashion-mnist` (built in), an ecoset-layout `.h5` (`file.h5[:subset]`), an image
    /// folder (`root/<class>/*.png`) or an `.npz` with `images` and `labels`.
    #[arg(long, default_value = "fashion-mnist")]
    data: String,
    /// Weight of the spatial loss (0 trains an LCN or a CNN).
    #[arg(long)]
    alpha: f64,
    /// constant, linear, cosine or sigmoid growth of alpha over the epochs.
    #[arg(long, default_value = "constant")]
    alpha_schedule: AlphaSchedule,
    /// Per-layer factors of the spatial loss, e.g. 1,1,1,1,1,1.
    #[arg(long, value_delimiter = ',')]
    layer_factors: Option<Vec<f64>>,
    /// Neighbourhood of the spatial loss: 4 or 8.
    #[arg(long, default_value = "4", value_parser = ["4", "8"])]
    neighbours: String,
    /// Open sheet boundaries instead of the original's torus.
    #[arg(long)]
    open: bool,
    /// L2 weight on the layers' kernels (the original's 1e-6).
    #[arg(long, default_value_t = 1e-6)]
    l2: f64,
    #[arg(long, default_value_t = 1)]
    epochs: u64,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Learning rate (the original used 0.05 with batch 512 on ecoset).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// none or cosine decay over the run.
    #[arg(long, default_value = "none", value_parser = ["none", "cosine"])]
    lr_schedule: String,
    /// Linear learning-rate warm-up over this many updates.
    #[arg(long, default_value_t = 0)]
    warmup_steps: u64,
    #[arg(long, default_value = "adam", value_parser = ["adam", "sgd"])]
    optimizer: String,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f64,
    /// Clip each gradient tensor to this norm (Keras `clipnorm`; the original's 500).
    #[arg(long, default_value_t = 500.0)]
    clipnorm: f64,
    /// Clip all gradients together to this norm instead.
    #[arg(long, conflicts_with = "clipnorm")]
    global_clipnorm: Option<f64>,
    /// No random crop or colour augmentation: images are only resized.
    #[arg(long)]
    no_augment: bool,
    /// Keep the data order.
    #[arg(long)]
    no_shuffle: bool,
    /// Stop after this many updates in all; the checkpoint is still written.
    #[arg(long)]
    max_steps: Option<u64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Start from these weights: an original `.h5` checkpoint or model directory, a `.tnn`
    /// file or a training checkpoint.
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Input size for an `--init` `.h5` without `--spec`.
    #[arg(long)]
    image_size: Option<u32>,
    /// Continue from the latest checkpoint in `--out` (same settings; more `--epochs` extend).
    #[arg(long)]
    resume: bool,
    /// cpu or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output directory: checkpoints, spec.json, metrics.csv, training.png.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let config = TrainConfig {
        data: args.data.clone(),
        alpha: args.alpha,
        alpha_schedule: args.alpha_schedule,
        layer_factors: args.layer_factors.clone(),
        spatial: SpatialConfig {
            neighbours: if args.neighbours == "8" {
                Neighbours::Eight
            } else {
                Neighbours::Four
            },
            circular: !args.open,
            include_bias: true,
        },
        l2: args.l2,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        cosine_lr: args.lr_schedule == "cosine",
        warmup_steps: args.warmup_steps,
        optimizer: match args.optimizer.as_str() {
            "sgd" => OptimizerKind::Sgd {
                momentum: args.momentum,
            },
            _ => OptimizerKind::adam(),
        },
        clip: match args.global_clipnorm {
            Some(c) => Clip::Global(c),
            None if args.clipnorm > 0.0 => Clip::PerTensor(args.clipnorm),
            None => Clip::None,
        },
        augment: !args.no_augment,
        shuffle: !args.no_shuffle,
        max_steps: args.max_steps,
        seed: args.seed,
    };
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let spec = args.spec.as_deref().map(weights::spec).transpose()?;
    let start = if args.resume {
        Start::Resume
    } else if let Some(init) = &args.init {
        let options = LoadOptions {
            image_size: args.image_size,
            spec,
            ..LoadOptions::default()
        };
        let model = weights::load(init, &options)?;
        let tensors = model
            .tensors
            .into_iter()
            .map(|t| (t.name, t.shape, t.data))
            .collect();
        Start::Init(model.spec, tensors)
    } else {
        match spec {
            Some(spec) => Start::Fresh(spec),
            None => bail!("--spec is needed (a JSON file or a preset such as fashion-alltnn) unless --init or --resume gives the model"),
        }
    };
    let device = train::device(&args.device)?;
    let mut observer = Progress {
        bar: None,
        out: args.out.clone(),
    };
    let outcome = train::train(&config, start, &args.out, &device, &mut observer)?;
    if let Some(bar) = observer.bar.take() {
        bar.finish_and_clear();
    }
    println!("checkpoint: {}", outcome.checkpoint.display());
    Ok(())
}

/// Progress bar per epoch, a line per epoch, and the training plot.
struct Progress {
    bar: Option<ProgressBar>,
    out: PathBuf,
}

impl Observer for Progress {
    fn epoch_started(&mut self, epoch: u64, batches: u64) {
        let bar = ProgressBar::new(batches).with_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg} eta {eta}")
                .expect("valid template"),
        );
        bar.set_prefix((epoch + 1).to_string());
        self.bar = Some(bar);
    }

    fn step(&mut self, info: StepInfo) {
        if let Some(bar) = &self.bar {
            bar.set_position(info.batch);
            bar.set_message(format!(
                "loss {:.4}, {:.0} images/s",
                info.loss, info.images_per_second
            ));
        }
    }

    fn epoch_finished(&mut self, metrics: &[EpochMetrics]) -> alltnn_trainer::error::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let Some(m) = metrics.last() else {
            return Ok(());
        };
        let distances: Vec<String> = m.distances.iter().map(|d| format!("{d:.4}")).collect();
        println!(
            "epoch {}: loss {:.4} (cross-entropy {:.4}), train top-1 {:.3}, eval top-1 {:.3} top-5 {:.3}, spatial distance [{}], {:.0} images/s",
            m.epoch + 1,
            m.loss,
            m.cross_entropy,
            m.train_top1,
            m.eval_top1,
            m.eval_top5,
            distances.join(", "),
            m.images_per_second
        );
        plot(&self.out, metrics).map_err(|e| alltnn_trainer::TrainError::Config(format!("{e:#}")))
    }
}

/// `training.png`: loss and accuracies per epoch.
fn plot(out: &std::path::Path, metrics: &[EpochMetrics]) -> Result<()> {
    let series = |f: fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        metrics
            .iter()
            .map(|m| ((m.epoch + 1) as f64, f(m)))
            .collect()
    };
    let (loss, train_top1, eval_top1) = (
        series(|m| m.loss),
        series(|m| m.train_top1),
        series(|m| m.eval_top1),
    );
    let png = render::line_plot_png(
        &[
            Series {
                name: "loss",
                points: &loss,
            },
            Series {
                name: "train top-1",
                points: &train_top1,
            },
            Series {
                name: "eval top-1",
                points: &eval_top1,
            },
        ],
        "training",
        "epoch",
        "loss / accuracy",
    )?;
    let mut dir = OutputDir::create(out)?;
    dir.write("training.png", &png)?;
    dir.commit()
}
