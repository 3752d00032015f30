//! The training loop: cross-entropy + α·Σ_l f_l·distance_l + L2, epochs of seeded batches,
//! evaluation, metrics and checkpoints, resumable to the same result.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use alltnn_runtime::spec::LayerKind;
use alltnn_runtime::ModelSpec;
use candle_core::{DType, Device, Tensor};
use serde_json::json;

use crate::checkpoint::{self, NamedValues, TrainState};
use crate::data::{self, Loader, Preprocess, Source, Split};
use crate::error::{Result, TrainError};
use crate::model::TnnModel;
use crate::optim::{Clip, Optimizer, OptimizerKind};
use crate::schedule::{AlphaSchedule, LrSchedule};
use crate::spatial_loss::{SpatialConfig, SpatialLoss};

/// Everything that decides a training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// `--data`: `fashion-mnist`, an ecoset-layout `.h5[:subset]`, an image folder or an `.npz`.
    pub data: String,
    pub alpha: f64,
    pub alpha_schedule: AlphaSchedule,
    /// Per-layer factors of the spatial loss (default 1 for every layer).
    pub layer_factors: Option<Vec<f64>>,
    pub spatial: SpatialConfig,
    /// Weight of `Σ‖kernel‖²` over the layers' kernels (the original's 1e-6).
    pub l2: f64,
    pub epochs: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub cosine_lr: bool,
    pub warmup_steps: u64,
    pub optimizer: OptimizerKind,
    pub clip: Clip,
    /// Random crops and colour augmentation; off: images are only resized.
    pub augment: bool,
    pub shuffle: bool,
    /// Stop after this many updates in all (a checkpoint is written).
    pub max_steps: Option<u64>,
    pub seed: u64,
}

impl TrainConfig {
    /// The settings that must not change when a run is resumed.
    fn identity(&self) -> serde_json::Value {
        json!({
            "data": self.data, "alpha": self.alpha, "alpha_schedule": format!("{:?}", self.alpha_schedule),
            "layer_factors": self.layer_factors, "spatial": format!("{:?}", self.spatial), "l2": self.l2,
            "batch_size": self.batch_size, "lr": self.lr, "cosine_lr": self.cosine_lr,
            "warmup_steps": self.warmup_steps, "optimizer": format!("{:?}", self.optimizer),
            "clip": format!("{:?}", self.clip), "augment": self.augment, "shuffle": self.shuffle,
            "seed": self.seed,
        })
    }

    fn to_json(&self) -> serde_json::Value {
        let mut v = self.identity();
        v["epochs"] = json!(self.epochs);
        v["max_steps"] = json!(self.max_steps);
        v
    }
}

/// Where the weights come from.
pub enum Start {
    /// Glorot-uniform initialisation from the seed.
    Fresh(ModelSpec),
    /// Given weights (canonical names, Keras layout), e.g. an original checkpoint.
    Init(ModelSpec, Vec<NamedValues>),
    /// The latest checkpoint in the output directory.
    Resume,
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    pub epoch: u64,
    pub steps: u64,
    pub alpha: f64,
    pub lr: f64,
    pub loss: f64,
    pub cross_entropy: f64,
    pub train_top1: f64,
    pub eval_top1: f64,
    pub eval_top5: f64,
    /// Spatial distance of every locally connected layer at the end of the epoch.
    pub distances: Vec<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Progress of a single update, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    pub epoch: u64,
    pub batch: u64,
    pub batches: u64,
    pub loss: f64,
    pub images_per_second: f64,
}

/// Receives progress; the CLI draws bars and plots from it.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: u64, _batches: u64) {}
    fn step(&mut self, _info: StepInfo) {}
    fn epoch_finished(&mut self, _metrics: &[EpochMetrics]) -> Result<()> {
        Ok(())
    }
}

/// How a run ended.
pub struct Outcome {
    pub metrics: Vec<EpochMetrics>,
    pub checkpoint: PathBuf,
    pub state: TrainState,
}

pub const METRICS_FILE: &str = "metrics.csv";
pub const SPEC_FILE: &str = "spec.json";

/// Parses `cpu` or `cuda:N`.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        cuda if cuda.starts_with("cuda") => {
            let ordinal = cuda
                .strip_prefix("cuda:")
                .map_or(Ok(0), str::parse)
                .map_err(|_| {
                    TrainError::Config(format!("bad device `{name}`: expected cpu or cuda:N"))
                })?;
            if !candle_core::utils::cuda_is_available() {
                return Err(TrainError::Config(format!(
                    "device `{name}`: this build has no CUDA support (build with --features cuda)"
                )));
            }
            Ok(Device::new_cuda(ordinal)?)
        }
        _ => Err(TrainError::Config(format!(
            "bad device `{name}`: expected cpu or cuda:N"
        ))),
    }
}

/// Trains into `out` (created if needed).
pub fn train(
    config: &TrainConfig,
    start: Start,
    out: &Path,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let (model, mut state, optimizer_state, mut history) = match start {
        Start::Fresh(spec) => (
            TnnModel::init(&spec, config.seed, device)?,
            fresh_state(config),
            None,
            Vec::new(),
        ),
        Start::Init(spec, tensors) => (
            TnnModel::from_tensors(&spec, &tensors, device)?,
            fresh_state(config),
            None,
            Vec::new(),
        ),
        Start::Resume => resume(config, out, device)?,
    };
    let spec = model.spec().clone();
    write_spec(out, &spec)?;
    let train_set: Arc<dyn Source> = Arc::from(data::open(&config.data, Split::Train)?);
    let eval_set: Arc<dyn Source> = Arc::from(match data::open(&config.data, Split::Val) {
        Ok(set) => set,
        Err(_) => data::open(&config.data, Split::Test)?,
    });
    let classes = spec.readout.classes as usize;
    for set in [&train_set, &eval_set] {
        if set.classes() > classes {
            return Err(TrainError::Config(format!(
                "{} has {} classes, the model's readout only {classes}",
                set.describe(),
                set.classes()
            )));
        }
    }
    let batches_per_epoch = (train_set.len() / config.batch_size) as u64;
    if batches_per_epoch == 0 {
        return Err(TrainError::Config(format!(
            "{} holds {} images, fewer than one batch of {}",
            train_set.describe(),
            train_set.len(),
            config.batch_size
        )));
    }
    let spatial = SpatialLoss::new(&spec, config.spatial, device)?;
    let factors = layer_factors(config, &spec)?;
    let mut optimizer = Optimizer::new(config.optimizer, config.clip, model.trainable_vars())?;
    if let Some((step, slots)) = optimizer_state {
        optimizer.restore(step, slots)?;
    }
    let lr_schedule = LrSchedule {
        base: config.lr,
        cosine: config.cosine_lr,
        warmup_steps: config.warmup_steps,
        total_steps: batches_per_epoch * config.epochs,
    };
    let preprocess = |augment: bool| Preprocess {
        height: spec.input.height as usize,
        width: spec.input.width as usize,
        channels: spec.input.channels as usize,
        crop: config.augment,
        augment,
    };
    let mut last_checkpoint = PathBuf::new();
    while state.epoch < config.epochs {
        let epoch = state.epoch;
        let alpha = config
            .alpha_schedule
            .alpha(config.alpha, epoch as f64 / config.epochs as f64);
        let order = if config.shuffle {
            data::shuffled(train_set.len(), config.seed, epoch)
        } else {
            (0..train_set.len()).collect()
        };
        let loader = Loader::new(
            train_set.clone(),
            order,
            config.batch_size,
            state.batch_in_epoch as usize,
            preprocess(config.augment),
            config.seed,
            epoch,
            true,
        );
        observer.epoch_started(epoch, batches_per_epoch);
        let started = Instant::now();
        let (mut loss_sum, mut ce_sum, mut correct, mut seen) = (0.0, 0.0, 0usize, 0usize);
        let mut lr = config.lr;
        for batch in loader {
            let batch = batch?;
            let x = Tensor::from_vec(
                batch.images,
                (
                    batch.size,
                    spec.input.height as usize,
                    spec.input.width as usize,
                    spec.input.channels as usize,
                ),
                device,
            )?;
            let y = Tensor::from_vec(batch.labels, batch.size, device)?;
            let forward = model.forward(&x, true)?;
            let ce = candle_nn::loss::cross_entropy(&forward.logits, &y)?;
            let total = (&ce + regularisers(&model, &spatial, &factors, alpha, config.l2)?)?;
            lr = lr_schedule.lr(state.global_step);
            let grads = total.backward()?;
            optimizer.step(&grads, lr)?;
            let loss = scalar(&total)?;
            if !loss.is_finite() {
                return Err(TrainError::Config(format!(
                    "the loss became {loss} at step {}: lower --lr",
                    state.global_step
                )));
            }
            loss_sum += loss * batch.size as f64;
            ce_sum += scalar(&ce)? * batch.size as f64;
            correct += top_k_correct(&forward.logits, &y, 1)?;
            seen += batch.size;
            state.global_step += 1;
            state.batch_in_epoch += 1;
            observer.step(StepInfo {
                epoch,
                batch: state.batch_in_epoch,
                batches: batches_per_epoch,
                loss,
                images_per_second: seen as f64 / started.elapsed().as_secs_f64(),
            });
            if config.max_steps.is_some_and(|m| state.global_step >= m) {
                break;
            }
        }
        let stopped_early = state.batch_in_epoch < batches_per_epoch;
        if !stopped_early {
            state.epoch += 1;
            state.batch_in_epoch = 0;
        }
        let seconds = started.elapsed().as_secs_f64();
        let (eval_top1, eval_top5) =
            evaluate(&model, &eval_set, config, preprocess(false), epoch, device)?;
        let distances = layer_distances(&model, &spatial)?;
        let n = seen.max(1) as f64;
        history.retain(|m: &EpochMetrics| m.epoch != epoch);
        history.push(EpochMetrics {
            epoch,
            steps: state.global_step,
            alpha,
            lr,
            loss: loss_sum / n,
            cross_entropy: ce_sum / n,
            train_top1: correct as f64 / n,
            eval_top1,
            eval_top5,
            distances,
            seconds,
            images_per_second: n / seconds.max(1e-9),
        });
        let name = if stopped_early {
            format!(
                "ckpt_ep{:03}_step{:07}.safetensors",
                epoch + 1,
                state.global_step
            )
        } else {
            checkpoint::file_name(state.epoch)
        };
        last_checkpoint = out.join(name);
        checkpoint::save(
            &last_checkpoint,
            &model,
            &optimizer,
            &state,
            &config.to_json(),
        )?;
        write_metrics(out, &history)?;
        observer.epoch_finished(&history)?;
        if stopped_early {
            break;
        }
    }
    Ok(Outcome {
        metrics: history,
        checkpoint: last_checkpoint,
        state,
    })
}

fn fresh_state(config: &TrainConfig) -> TrainState {
    TrainState {
        epoch: 0,
        batch_in_epoch: 0,
        global_step: 0,
        seed: config.seed,
    }
}

type Resumed = (
    TnnModel,
    TrainState,
    Option<(u64, Vec<(Tensor, Tensor)>)>,
    Vec<EpochMetrics>,
);

/// Loads the checkpoint with the most steps in `out` and checks it belongs to this run.
fn resume(config: &TrainConfig, out: &Path, device: &Device) -> Result<Resumed> {
    let path = latest_checkpoint(out)?.ok_or_else(|| {
        TrainError::Config(format!("--resume: no checkpoint in {}", out.display()))
    })?;
    let ckpt = checkpoint::load(&path, device)?;
    let mut saved = ckpt.config.clone();
    if let Some(map) = saved.as_object_mut() {
        map.remove("epochs");
        map.remove("max_steps");
    }
    if saved != config.identity() {
        return Err(TrainError::Checkpoint {
            path,
            message: format!(
                "was written with other settings ({saved}); resume with the same ones"
            ),
        });
    }
    let model = TnnModel::from_tensors(&ckpt.spec, &ckpt.tensors, device)?;
    let slots = model
        .params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| {
            ckpt.optimizer
                .get(&p.name)
                .cloned()
                .ok_or_else(|| TrainError::Checkpoint {
                    path: path.clone(),
                    message: format!("optimizer state of {} missing", p.name),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let history = read_metrics(out, ckpt.state)?;
    Ok((
        model,
        ckpt.state,
        Some((ckpt.optimizer_step, slots)),
        history,
    ))
}

/// The checkpoint in `dir` with the most updates, judged from the file names.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    let mut best: Option<((u64, u64), PathBuf)> = None;
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let path = entry.map_err(|e| TrainError::io(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(stem) = name
            .strip_prefix("ckpt_ep")
            .and_then(|s| s.strip_suffix(".safetensors"))
        else {
            continue;
        };
        // `ckpt_epNNN` (NNN epochs done) sorts after `ckpt_ep(NNN)_stepS` (epoch NNN under way).
        let key = match stem.split_once("_step") {
            Some((epoch, step)) => (
                epoch.parse::<u64>().unwrap_or(0).saturating_sub(1),
                step.parse().unwrap_or(0),
            ),
            None => (stem.parse().unwrap_or(0), u64::MAX),
        };
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, path));
        }
    }
    Ok(best.map(|(_, p)| p))
}

fn layer_factors(config: &TrainConfig, spec: &ModelSpec) -> Result<Vec<f64>> {
    match &config.layer_factors {
        None => Ok(vec![1.0; spec.layers.len()]),
        Some(f) if f.len() == spec.layers.len() => Ok(f.clone()),
        Some(f) => Err(TrainError::Config(format!(
            "{} layer factors given for {} layers",
            f.len(),
            spec.layers.len()
        ))),
    }
}

/// α·Σ_l f_l·distance_l + l2·Σ_l ‖kernel_l‖² as a scalar tensor.
fn regularisers(
    model: &TnnModel,
    spatial: &SpatialLoss,
    factors: &[f64],
    alpha: f64,
    l2: f64,
) -> Result<Tensor> {
    let mut terms: Vec<Tensor> = Vec::new();
    if alpha != 0.0 {
        for (d, f) in spatial.distances(model)?.into_iter().zip(factors) {
            if let Some(d) = d {
                terms.push((d * (alpha * f))?);
            }
        }
    }
    if l2 != 0.0 {
        for l in 0..model.spec().layers.len() {
            terms.push((model.layer_kernel(l).sqr()?.sum_all()? * l2)?);
        }
    }
    let zero = Tensor::zeros(
        (),
        model.layer_kernel(0).dtype(),
        model.layer_kernel(0).device(),
    )?;
    Ok(terms.into_iter().try_fold(zero, |acc, t| acc + t)?)
}

fn layer_distances(model: &TnnModel, spatial: &SpatialLoss) -> Result<Vec<f64>> {
    spatial
        .distances(model)?
        .into_iter()
        .flatten()
        .map(|d| scalar(&d))
        .collect()
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// How many rows of `logits` have their label among the `k` largest values.
fn top_k_correct(logits: &Tensor, labels: &Tensor, k: usize) -> Result<usize> {
    let logits = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let labels = labels.to_vec1::<u32>()?;
    Ok(logits
        .iter()
        .zip(labels)
        .filter(|(row, label)| {
            let target = row[*label as usize];
            row.iter().filter(|&&v| v > target).count() < k
        })
        .count())
}

/// Top-1 and top-5 accuracy on the evaluation split (the original crops every split; without
/// augmentation images are only resized).
fn evaluate(
    model: &TnnModel,
    set: &Arc<dyn Source>,
    config: &TrainConfig,
    preprocess: Preprocess,
    epoch: u64,
    device: &Device,
) -> Result<(f64, f64)> {
    let loader = Loader::new(
        set.clone(),
        (0..set.len()).collect(),
        config.batch_size,
        0,
        preprocess,
        config.seed ^ 0xe7a1,
        epoch,
        false,
    );
    let (mut top1, mut top5, mut n) = (0, 0, 0);
    let (h, w, c) = (
        model.spec().input.height as usize,
        model.spec().input.width as usize,
        model.spec().input.channels as usize,
    );
    for batch in loader {
        let batch = batch?;
        let x = Tensor::from_vec(batch.images, (batch.size, h, w, c), device)?;
        let y = Tensor::from_vec(batch.labels, batch.size, device)?;
        let logits = model.forward(&x, false)?.logits;
        top1 += top_k_correct(&logits, &y, 1)?;
        top5 += top_k_correct(&logits, &y, 5)?;
        n += batch.size;
    }
    let n = n.max(1) as f64;
    Ok((top1 as f64 / n, top5 as f64 / n))
}

fn write_spec(out: &Path, spec: &ModelSpec) -> Result<()> {
    let text = serde_json::to_string_pretty(spec).map_err(|e| TrainError::Config(e.to_string()))?;
    checkpoint::write_atomic(&out.join(SPEC_FILE), text.as_bytes())
}

const METRICS_HEADER: &str = "epoch,steps,alpha,lr,loss,cross_entropy,train_top1,eval_top1,eval_top5,seconds,images_per_second";

fn write_metrics(out: &Path, history: &[EpochMetrics]) -> Result<()> {
    let layers = history.iter().map(|m| m.distances.len()).max().unwrap_or(0);
    let mut text = String::from(METRICS_HEADER);
    for l in 0..layers {
        text.push_str(&format!(",distance_{l}"));
    }
    text.push('\n');
    for m in history {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            m.epoch,
            m.steps,
            m.alpha,
            m.lr,
            m.loss,
            m.cross_entropy,
            m.train_top1,
            m.eval_top1,
            m.eval_top5,
            m.seconds,
            m.images_per_second
        ));
        for d in &m.distances {
            text.push_str(&format!(",{d}"));
        }
        text.push('\n');
    }
    checkpoint::write_atomic(&out.join(METRICS_FILE), text.as_bytes())
}

/// The metrics of the epochs a checkpoint has completed (to continue the file on resume).
fn read_metrics(out: &Path, state: TrainState) -> Result<Vec<EpochMetrics>> {
    let path = out.join(METRICS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line
            .split(',')
            .map(|f| f.parse().unwrap_or(f64::NAN))
            .collect();
        if v.len() < 11 {
            return Err(TrainError::data(&path, format!("malformed row `{line}`")));
        }
        let epoch = v[0] as u64;
        if epoch >= state.epoch {
            continue;
        }
        rows.push(EpochMetrics {
            epoch,
            steps: v[1] as u64,
            alpha: v[2],
            lr: v[3],
            loss: v[4],
            cross_entropy: v[5],
            train_top1: v[6],
            eval_top1: v[7],
            eval_top5: v[8],
            seconds: v[9],
            images_per_second: v[10],
            distances: v[11..].to_vec(),
        });
    }
    Ok(rows)
}

/// Locally connected layers of a spec (those with a spatial distance).
pub fn locally_connected_layers(spec: &ModelSpec) -> Vec<usize> {
    spec.layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == LayerKind::LocallyConnected)
        .map(|(i, _)| i)
        .collect()
}
