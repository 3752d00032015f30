//! `--engine tract`: the ONNX graph in tract.

use std::sync::Arc;

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

use super::onnx::{select_outputs, OnnxSession};

pub struct Tract {
    plan: Arc<TypedRunnableModel>,
    /// Positions of the wanted outputs among the graph's.
    outputs: Vec<usize>,
}

impl Tract {
    pub fn new(bytes: &[u8], relu: &[String]) -> Result<Tract> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .context("tract cannot load the ONNX graph")?;
        // Output names are read before optimisation, which keeps the outputs' order but not
        // necessarily their labels.
        let names: Vec<String> = model
            .output_outlets()?
            .iter()
            .map(|&o| model.outlet_label(o).unwrap_or_default().to_string())
            .collect();
        let outputs = select_outputs(&names, relu)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .context("tract cannot optimise the ONNX graph")?;
        Ok(Tract { plan, outputs })
    }
}

impl OnnxSession for Tract {
    fn run(&mut self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>> {
        let input = Tensor::from_shape(&shape, input)?;
        let results = self.plan.run(tvec!(input.into()))?;
        self.outputs
            .iter()
            .map(|&i| {
                let view = results[i].to_plain_array_view::<f32>()?;
                Ok(view.iter().copied().collect())
            })
            .collect()
    }
}
