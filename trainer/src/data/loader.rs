//! A background batch loader whose output depends only on (order, seed, epoch), not on the
//! number of threads or on where a run was resumed.
//!
//! Batch `b` of the epoch is made by worker `(b − start) mod W`; each worker sends its batches
//! in increasing order over its own bounded channel, and the iterator reads the channels round
//! robin, so batches come out in order while W of them are made at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{preprocess, Preprocess, RawImage, Source};
use crate::error::{Result, TrainError};

/// Batches buffered ahead of the consumer, over all workers (at least one per worker).
const PREFETCH_BATCHES: usize = 4;
/// Default worker count: the cores, up to this many (each holds a batch in the making).
const MAX_DEFAULT_WORKERS: usize = 4;
/// Stream tags, so the shuffle and the per-example generators never share a seed.
const SHUFFLE_STREAM: u64 = 0x5348_5546; // "SHUF"
const EXAMPLE_STREAM: u64 = 0x4558_414d; // "EXAM"

/// One batch: `size` images, B×H×W×C f32 values, and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub size: usize,
}

/// A generator seeded from four words (a ChaCha8 key of 32 bytes, little-endian).
fn rng_from(words: [u64; 4]) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// The crop/augmentation generator of the example at position `pos` of an epoch's order.
pub fn example_rng(seed: u64, epoch: u64, pos: u64) -> ChaCha8Rng {
    rng_from([seed, epoch, pos, EXAMPLE_STREAM])
}

/// Seeded permutation of `0..len` for an epoch: Fisher–Yates with ChaCha8Rng from (seed, epoch).
pub fn shuffled(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = rng_from([seed, epoch, 0, SHUFFLE_STREAM]);
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

/// What the workers share.
struct Plan {
    source: Arc<dyn Source>,
    order: Vec<usize>,
    batch: usize,
    cfg: Preprocess,
    seed: u64,
    epoch: u64,
    /// Stops the workers early when the loader is dropped.
    stop: AtomicBool,
}

impl Plan {
    /// Makes batch `b`: the examples at positions `b·batch ..` of the order.
    fn make(&self, b: usize) -> Result<Batch> {
        let first = b * self.batch;
        let positions = first..(first + self.batch).min(self.order.len());
        let size = positions.len();
        let mut images =
            Vec::with_capacity(size * self.cfg.height * self.cfg.width * self.cfg.channels);
        let mut labels = Vec::with_capacity(size);
        for pos in positions {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let index = self.order[pos];
            let image = self.checked_image(index)?;
            let mut rng = example_rng(self.seed, self.epoch, pos as u64);
            images.extend(preprocess(&image, &self.cfg, &mut rng));
            labels.push(self.source.label(index) as u32);
        }
        Ok(Batch {
            images,
            labels,
            size,
        })
    }

    /// The image at `index`, checked so that preprocessing cannot fail on it.
    fn checked_image(&self, index: usize) -> Result<RawImage> {
        let bad = |message: String| {
            TrainError::data(
                self.source.describe(),
                format!("example {index}: {message}"),
            )
        };
        if index >= self.source.len() {
            return Err(bad(format!(
                "index out of range (len {})",
                self.source.len()
            )));
        }
        let image = self.source.image(index)?;
        let size = image.height * image.width * image.channels;
        if size == 0 || size != image.pixels.len() || !matches!(image.channels, 1 | 3) {
            return Err(bad(format!(
                "bad image {}x{}x{} with {} bytes",
                image.height,
                image.width,
                image.channels,
                image.pixels.len()
            )));
        }
        Ok(image)
    }
}

/// Batches for one epoch, made on background threads, in a deterministic order.
///
/// The threads start on the first call to `next` (so [`Loader::with_workers`] can still set
/// their number) and stop when the loader is dropped. After an error the iterator ends.
pub struct Loader {
    plan: Arc<Plan>,
    batches: usize,
    /// The next batch to hand out.
    next: usize,
    /// The first batch this loader makes (`start`, capped at `batches`).
    first: usize,
    workers: usize,
    receivers: Vec<Receiver<Result<Batch>>>,
    threads: Vec<JoinHandle<()>>,
    done: bool,
}

impl Loader {
    /// `order`: the example indices of the epoch (already shuffled by the caller); `start`: the
    /// first batch to produce (for resuming mid-epoch); `seed` and `epoch`: every random choice,
    /// through [`example_rng`]`(seed, epoch, pos)` for the example at position `pos` of `order`.
    /// The last partial batch is dropped when `drop_last` (as the original does).
    ///
    /// # Panics
    /// When `batch` is 0.
    #[allow(clippy::too_many_arguments)] // the signature the trainer and its tests share
    pub fn new(
        source: Arc<dyn Source>,
        order: Vec<usize>,
        batch: usize,
        start: usize,
        cfg: Preprocess,
        seed: u64,
        epoch: u64,
        drop_last: bool,
    ) -> Loader {
        assert!(batch > 0, "Loader: batch size must be positive");
        let batches = if drop_last {
            order.len() / batch
        } else {
            order.len().div_ceil(batch)
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_DEFAULT_WORKERS);
        let plan = Plan {
            source,
            order,
            batch,
            cfg,
            seed,
            epoch,
            stop: AtomicBool::new(false),
        };
        Loader {
            plan: Arc::new(plan),
            batches,
            next: start.min(batches),
            first: start.min(batches),
            workers,
            receivers: Vec::new(),
            threads: Vec::new(),
            done: false,
        }
    }

    /// Uses `workers` threads (at least 1) instead of the default (cores, at most 4). Only
    /// before the first batch has been asked for; the batches are the same for any number.
    pub fn with_workers(mut self, workers: usize) -> Loader {
        if self.threads.is_empty() {
            self.workers = workers.max(1);
        }
        self
    }

    /// Number of batches this epoch, including those skipped by `start`.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Starts the workers: worker w makes batches first + w, first + w + W, …
    fn spawn(&mut self) {
        let workers = self.workers.min(self.batches - self.first).max(1);
        let capacity = (PREFETCH_BATCHES / workers).max(1);
        for w in 0..workers {
            let (sender, receiver) = sync_channel(capacity);
            let plan = Arc::clone(&self.plan);
            let batches = (self.first + w..self.batches).step_by(workers);
            self.threads
                .push(std::thread::spawn(move || work(&plan, batches, &sender)));
            self.receivers.push(receiver);
        }
    }

    /// Stops and joins the workers; a worker's panic is passed on to the caller.
    fn shut_down(&mut self) {
        self.plan.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers unblocks workers waiting to send.
        self.receivers.clear();
        for thread in self.threads.drain(..) {
            if let Err(panic) = thread.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

/// A worker's loop: make each batch and send it, until done, an error, or the receiver is gone.
fn work(plan: &Plan, batches: impl Iterator<Item = usize>, sender: &SyncSender<Result<Batch>>) {
    for b in batches {
        let batch = plan.make(b);
        let failed = batch.is_err();
        if plan.stop.load(Ordering::Relaxed) || sender.send(batch).is_err() || failed {
            return;
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.done || self.next >= self.batches {
            return None;
        }
        if self.threads.is_empty() {
            self.spawn();
        }
        let worker = (self.next - self.first) % self.receivers.len();
        let item = match self.receivers[worker].recv() {
            Ok(item) => item,
            // The worker ended without sending this batch: it panicked (re-raised here) or
            // stopped early.
            Err(_) => {
                self.shut_down();
                Err(TrainError::Config(format!(
                    "data loader: worker stopped before batch {}",
                    self.next
                )))
            }
        };
        self.next += 1;
        if item.is_err() {
            self.done = true;
            self.shut_down();
        }
        Some(item)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;

    /// `len` images of `size`² × 3 whose pixels all equal the index (mod 256); label = index
    /// mod 7; reading `bad` fails.
    struct Synthetic {
        len: usize,
        size: usize,
        bad: Option<usize>,
    }

    impl Source for Synthetic {
        fn len(&self) -> usize {
            self.len
        }
        fn classes(&self) -> usize {
            7
        }
        fn image(&self, index: usize) -> Result<RawImage> {
            if Some(index) == self.bad {
                return Err(TrainError::data(
                    "synthetic.h5",
                    format!("row {index}: unreadable"),
                ));
            }
            let pixels = vec![(index % 256) as u8; self.size * self.size * 3];
            Ok(RawImage {
                height: self.size,
                width: self.size,
                channels: 3,
                pixels,
            })
        }
        fn label(&self, index: usize) -> usize {
            index % 7
        }
        fn describe(&self) -> String {
            "synthetic".into()
        }
    }

    fn source(len: usize, bad: Option<usize>) -> Arc<dyn Source> {
        Arc::new(Synthetic { len, size: 12, bad })
    }

    fn plain() -> Preprocess {
        Preprocess {
            height: 12,
            width: 12,
            channels: 3,
            crop: false,
            augment: false,
        }
    }

    fn random() -> Preprocess {
        Preprocess {
            height: 8,
            width: 8,
            channels: 3,
            crop: true,
            augment: true,
        }
    }

    fn all(loader: Loader) -> Vec<Batch> {
        loader.map(|b| b.unwrap()).collect()
    }

    #[test]
    fn batches_follow_the_order() {
        let order = shuffled(23, 1, 0);
        let batches = all(
            Loader::new(source(23, None), order.clone(), 5, 0, plain(), 9, 0, true).with_workers(3),
        );
        assert_eq!(batches.len(), 4);
        for (b, batch) in batches.iter().enumerate() {
            assert_eq!(batch.size, 5);
            assert_eq!(batch.images.len(), 5 * 12 * 12 * 3);
            for (k, &label) in batch.labels.iter().enumerate() {
                let index = order[b * 5 + k];
                assert_eq!(label as usize, index % 7);
                // Identity resize: every value of the image is 2·index/255 − 1.
                let value = batch.images[k * 12 * 12 * 3];
                assert_eq!(value, 2.0 * (index as f32 / 255.0) - 1.0);
            }
        }
    }

    #[test]
    fn examples_use_their_position_generator() {
        let order = shuffled(10, 3, 2);
        let cfg = random();
        let batches = all(Loader::new(
            source(10, None),
            order.clone(),
            4,
            0,
            cfg.clone(),
            5,
            2,
            false,
        ));
        let src = source(10, None);
        let image_len = 8 * 8 * 3;
        for (pos, &index) in order.iter().enumerate() {
            let expected = preprocess(
                &src.image(index).unwrap(),
                &cfg,
                &mut example_rng(5, 2, pos as u64),
            );
            let batch = &batches[pos / 4];
            let k = pos % 4;
            assert_eq!(
                batch.images[k * image_len..(k + 1) * image_len],
                expected[..],
                "position {pos}"
            );
        }
    }

    #[test]
    fn same_batches_for_any_worker_count() {
        let make = |workers| {
            all(Loader::new(
                source(37, None),
                shuffled(37, 4, 1),
                4,
                0,
                random(),
                11,
                1,
                false,
            )
            .with_workers(workers))
        };
        let one = make(1);
        assert_eq!(one.len(), 10);
        for workers in [2, 3, 5, 16] {
            assert_eq!(make(workers), one, "{workers} workers");
        }
        let other_epoch = all(Loader::new(
            source(37, None),
            shuffled(37, 4, 1),
            4,
            0,
            random(),
            11,
            2,
            false,
        ));
        assert_ne!(other_epoch, one);
    }

    #[test]
    fn start_skips_exactly_the_first_batches() {
        let order = shuffled(30, 2, 0);
        let full = all(Loader::new(
            source(30, None),
            order.clone(),
            4,
            0,
            random(),
            3,
            0,
            true,
        ));
        let resumed =
            Loader::new(source(30, None), order, 4, 3, random(), 3, 0, true).with_workers(2);
        assert_eq!(resumed.batches(), 7);
        assert_eq!(all(resumed), full[3..]);
        let past_end = Loader::new(
            source(30, None),
            shuffled(30, 2, 0),
            4,
            9,
            random(),
            3,
            0,
            true,
        );
        assert_eq!(past_end.count(), 0);
    }

    #[test]
    fn drop_last_drops_the_partial_batch() {
        let order: Vec<usize> = (0..10).collect();
        let kept = Loader::new(source(10, None), order.clone(), 4, 0, plain(), 0, 0, false);
        assert_eq!(kept.batches(), 3);
        let sizes: Vec<usize> = all(kept).iter().map(|b| b.size).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let dropped = Loader::new(source(10, None), order, 4, 0, plain(), 0, 0, true);
        assert_eq!(dropped.batches(), 2);
        assert_eq!(all(dropped).len(), 2);
    }

    #[test]
    fn errors_come_out_in_place_and_end_the_epoch() {
        let order: Vec<usize> = (0..20).collect();
        for workers in [1, 3] {
            let loader = Loader::new(
                source(20, Some(9)),
                order.clone(),
                4,
                0,
                plain(),
                0,
                0,
                true,
            )
            .with_workers(workers);
            let items: Vec<Result<Batch>> = loader.collect();
            assert_eq!(items.len(), 3, "{workers} workers");
            assert!(items[0].is_ok() && items[1].is_ok());
            let err = items[2].as_ref().unwrap_err().to_string();
            assert!(
                err.contains("synthetic.h5") && err.contains("row 9"),
                "{err}"
            );
        }
    }

    #[test]
    fn indices_outside_the_source_are_errors() {
        let mut loader = Loader::new(source(5, None), vec![0, 1, 7], 3, 0, plain(), 0, 0, true);
        let err = loader.next().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("synthetic") && err.contains("example 7"),
            "{err}"
        );
        assert!(loader.next().is_none());
    }

    #[test]
    fn dropping_mid_epoch_stops_the_workers() {
        let mut loader = Loader::new(
            source(400, None),
            (0..400).collect(),
            8,
            0,
            random(),
            0,
            0,
            true,
        )
        .with_workers(4);
        assert!(loader.next().unwrap().is_ok());
        drop(loader); // joins the workers; hangs here if they do not stop
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let a = shuffled(100, 7, 3);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, shuffled(100, 7, 3));
        assert_ne!(a, shuffled(100, 7, 4));
        assert_ne!(a, shuffled(100, 8, 3));
        assert!(shuffled(0, 1, 1).is_empty());
    }

    #[test]
    fn fashion_mnist_end_to_end() {
        let source: Arc<dyn Source> =
            Arc::from(crate::data::open("fashion-mnist", Split::Val).unwrap());
        let cfg = Preprocess::original(32, 32, 3, Split::Val);
        let mut loader = Loader::new(
            Arc::clone(&source),
            shuffled(source.len(), 0, 0),
            64,
            0,
            cfg,
            0,
            0,
            true,
        );
        let batch = loader.next().unwrap().unwrap();
        assert_eq!((batch.size, batch.images.len()), (64, 64 * 32 * 32 * 3));
        assert!(batch.labels.iter().all(|&l| l < 10));
        assert!(batch.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
