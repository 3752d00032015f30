//! A model compiled into the program and run with the runtime's core API only — no file
//! system, no threads, no `std` calls until the results are printed — as firmware would, with
//! the model in flash (`include_tnn!` places it 64-byte aligned) and the buffers in a static arena.
//!
//! The model path is fixed at build time:
//!
//! ```sh
//! alltnn convert models/tiny-alltnn/weights.h5 --image-size 48 --dtype int8 -o /tmp/tiny.tnn
//! ALLTNN_MODEL=/tmp/tiny.tnn cargo run --release -p alltnn-runtime --features static-example \
//!     --example static_model
//! ```
//!
//! It prints the arena size and, for a mid-grey image, the class probabilities, one per line.

use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::format::TnnFile;

static MODEL: &[u8] = alltnn_runtime::include_tnn!(env!("ALLTNN_MODEL"));

fn main() {
    let file = match TnnFile::parse_verified(MODEL) {
        Ok(file) => file,
        Err(e) => return eprintln!("error: embedded model: {e}"),
    };
    let model = match Model::from_file(&file) {
        Ok(model) => model,
        Err(e) => return eprintln!("error: embedded model: {e}"),
    };
    // Sized at run time here; on a board, a `static mut [f32; N]` in RAM sized with
    // `alltnn info --memory`.
    let mut arena = vec![0f32; Engine::arena_len(&model, 1)];
    let mut engine = match Engine::in_arena(&model, 1, &mut arena) {
        Ok(engine) => engine,
        Err(e) => return eprintln!("error: {e}"),
    };
    // Mid-grey in the model's input range: 0.0 after the original's 2x − 1 preprocessing.
    let image = vec![0f32; model.spec().input_len()];
    match engine.run(&image) {
        Ok(probs) => {
            println!("arena values: {}", Engine::arena_len(&model, 1));
            for p in probs {
                println!("{p}");
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
}
