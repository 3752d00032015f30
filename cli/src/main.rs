//! `alltnn`: convert, inspect and run All-Topographic Neural Networks.

mod bench;
mod classes;
mod convert;
mod demo;
mod energy;
mod engines;
mod infer;
mod info;
mod maps;
mod merge;
mod outputs;
mod rapl;
mod shard;
mod spatial;
mod stimuli;
mod train;
mod weights;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "alltnn",
    version,
    about = "All-Topographic Neural Networks: convert, inspect and run models"
)]
struct Cli {
    /// Threads for inference (default: one per core). Results do not depend on it.
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(convert::Args),
    Info(info::Args),
    Infer(infer::Args),
    Merge(merge::Args),
    Energy(energy::Args),
    Bench(bench::Args),
    Train(Box<train::Args>),
    #[command(name = "spatial-loss")]
    SpatialLoss(spatial::Args),
    Maps(maps::Args),
    Demo(demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        // Only fails if a pool exists already, which nothing before this line creates.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads as usize)
            .build_global();
    }
    let result = match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Info(args) => info::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Energy(args) => energy::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(*args),
        Command::SpatialLoss(args) => spatial::run(args),
        Command::Maps(args) => maps::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined by ": ".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
