//! Loader throughput on Fashion-MNIST at 32×32 with the original's train preprocessing
//! (crop, resize, augmentation). Ignored by default; run with
//! `cargo test -p alltnn-trainer --test data_throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use alltnn_trainer::data::{open, shuffled, Loader, Preprocess, Source, Split};

#[test]
#[ignore = "timing, not a check"]
fn loader_throughput_fashion_mnist_32() {
    let source: Arc<dyn Source> =
        Arc::from(open("fashion-mnist", Split::Train).expect("fashion-mnist"));
    println!("{}", source.describe());
    let images = source.len().min(20_000);
    let workers_max = std::thread::available_parallelism().map_or(1, |n| n.get());
    for workers in [1, workers_max] {
        let order = shuffled(source.len(), 0, 0)[..images].to_vec();
        let cfg = Preprocess::original(32, 32, 3, Split::Train);
        let loader =
            Loader::new(Arc::clone(&source), order, 256, 0, cfg, 0, 0, true).with_workers(workers);
        let started = Instant::now();
        let count: usize = loader.map(|b| b.expect("batch").size).sum();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{workers} worker(s): {count} images in {seconds:.2} s = {:.0} images/s",
            count as f64 / seconds
        );
    }
}

/// The per-image cost at ecoset's size: 256×256×3 stored, 150×150 model input.
#[test]
#[ignore = "timing, not a check"]
fn preprocess_throughput_ecoset_size() {
    use alltnn_trainer::data::{example_rng, preprocess, RawImage};
    let pixels = (0..256 * 256 * 3)
        .map(|i: usize| (i * 31 % 251) as u8)
        .collect();
    let image = RawImage {
        height: 256,
        width: 256,
        channels: 3,
        pixels,
    };
    let cfg = Preprocess::original(150, 150, 3, Split::Train);
    let count = 300;
    let started = Instant::now();
    let checksum: f32 = (0..count)
        .map(|pos| preprocess(&image, &cfg, &mut example_rng(0, 0, pos))[0])
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "256² -> 150², one thread: {:.0} images/s (checksum {checksum})",
        count as f64 / seconds
    );
}
