//! `alltnn`: convert, inspect and run All-Topographic Neural Networks.

mod classes;
mod convert;
mod energy;
mod infer;
mod info;
mod outputs;
mod rapl;
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(convert::Args),
    Info(info::Args),
    Infer(infer::Args),
    Energy(energy::Args),
    Train(Box<train::Args>),
    #[command(name = "spatial-loss")]
    SpatialLoss(spatial::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Info(args) => info::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Energy(args) => energy::run(args),
        Command::Train(args) => train::run(*args),
        Command::SpatialLoss(args) => spatial::run(args),
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
