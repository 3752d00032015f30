//! Shows that opening a memory-mapped `.tnn` copies nothing: resident memory grows with the pages
//! touched, not by the file size at open.
//!
//! cargo run --release -p alltnn-runtime --features mmap --example mmap_resident -- model.tnn

use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::mmap::MappedModel;

/// (anonymous, file-backed) resident kB of this process, from /proc/self/status.
fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

fn report(stage: &str, base: (u64, u64)) {
    let (anon, file) = resident();
    println!(
        "{stage:<32} anonymous {:>9.1} MB   file-backed {:>9.1} MB",
        (anon as f64 - base.0 as f64) / 1e3,
        (file as f64 - base.1 as f64) / 1e3
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: mmap_resident MODEL.tnn")?;
    let size = std::fs::metadata(&path)?.len();
    println!(
        "{path}: {:.1} MB; resident memory relative to before opening:",
        size as f64 / 1e6
    );
    let base = resident();
    let mapped = MappedModel::open(&path)?;
    let file = mapped.parse()?;
    report("mapped and parsed", base);
    let model = Model::from_file(&file)?;
    let mut engine = Engine::new(&model, 1)?;
    report("model and engine (batch 1)", base);
    file.verify_checksums()?;
    report("checksums verified (all pages)", base);
    let input = vec![0.1f32; model.spec().input_len()];
    engine.run(&input)?;
    report("after one inference", base);
    Ok(())
}
