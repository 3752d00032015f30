//! A small builder for ONNX graphs: nodes with one output each, constants as initializers and
//! typed graph inputs/outputs. It knows nothing about All-TNN; `mod.rs` decides what to build.

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// One dimension of a graph input or output: fixed, or the symbolic batch size.
#[derive(Clone, Copy, Debug)]
pub enum Dim {
    Batch,
    Fixed(usize),
}

#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    /// Makes every intermediate name unique without the caller tracking them.
    counter: usize,
}

/// The name the symbolic batch dimension has in the file.
const BATCH: &str = "N";

impl GraphBuilder {
    /// Adds `op` with a fresh output name derived from `stem`; returns that name.
    pub fn node(
        &mut self,
        op: &str,
        stem: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        self.counter += 1;
        let output = format!("{stem}_{}", self.counter);
        self.node_to(op, inputs, &output, attrs);
        output
    }

    /// Adds `op` writing to the given `output` name (used for the graph outputs).
    pub fn node_to(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(output.to_string()),
            op_type: Some(op.to_string()),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A float32 constant; `data` is stored little-endian in `raw_data`.
    pub fn const_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, DataType::Float, raw)
    }

    /// An int64 constant (indices, shapes).
    pub fn const_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, DataType::Int64, raw)
    }

    fn initializer(&mut self, name: &str, dims: &[usize], dtype: DataType, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(dtype as i32),
            name: Some(name.to_string()),
            raw_data: Some(raw),
            ..Default::default()
        });
        name.to_string()
    }

    pub fn input(&mut self, name: &str, dims: &[Dim]) {
        self.inputs.push(value_info(name, dims));
    }

    pub fn output(&mut self, name: &str, dims: &[Dim]) {
        self.outputs.push(value_info(name, dims));
    }

    pub fn finish(self, name: &str) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: Some(name.to_string()),
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        }
    }
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    use tensor_shape_proto::dimension::Value;
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match *d {
                Dim::Batch => Value::DimParam(BATCH.to_string()),
                Dim::Fixed(n) => Value::DimValue(n as i64),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}
