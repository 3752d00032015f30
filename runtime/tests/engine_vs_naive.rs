//! The engine, run from a plain byte slice through the core API, against a direct f64
//! implementation of DESIGN.md's block semantics written independently of the kernels.
//! These tests use only `core` + `alloc` APIs of the runtime, and CI also runs them with
//! `--no-default-features`.

use alltnn_runtime::energy::{self, EnergyMeter};
use alltnn_runtime::engine::{Engine, Model};
use alltnn_runtime::format::{self, AlignedBytes, DType, TensorSource, TnnFile};
use alltnn_runtime::spec::{
    Activation, InputSpec, LayerKind, LayerSpec, ModelSpec, Norm, NormParams, OutputActivation,
    Preprocess, ReadoutSpec, TensorRole, TensorSpec,
};
use alltnn_runtime::RunError;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn layer(
    kind: LayerKind,
    filters: u32,
    kernel: u32,
    stride: u32,
    norm: Norm,
    pool: bool,
) -> LayerSpec {
    LayerSpec {
        kind,
        filters,
        kernel,
        stride,
        bias: true,
        activation: Activation::Relu,
        norm,
        norm_first: false,
        pool_after: pool,
    }
}

fn ln() -> Norm {
    Norm::LayerNorm(NormParams::default())
}

fn spec(layers: Vec<LayerSpec>) -> ModelSpec {
    ModelSpec {
        input: InputSpec {
            height: 17,
            width: 15,
            channels: 3,
            preprocess: Preprocess::SignedUnit,
        },
        layers,
        readout: ReadoutSpec {
            classes: 7,
            bias: true,
        },
        output: OutputActivation::Softmax,
    }
}

/// Random weights; variances positive, so BatchNorm stays finite.
fn weights(spec: &ModelSpec, seed: u64) -> Vec<(TensorSpec, Vec<f32>)> {
    let mut rng = Rng(seed);
    spec.tensors()
        .unwrap()
        .into_iter()
        .map(|t| {
            let positive = t.name().ends_with("moving_variance");
            let data = (0..t.len())
                .map(|_| {
                    if positive {
                        rng.next().abs() + 0.1
                    } else {
                        rng.next() * 0.5
                    }
                })
                .collect();
            (t, data)
        })
        .collect()
}

fn encode(spec: &ModelSpec, w: &[(TensorSpec, Vec<f32>)]) -> AlignedBytes {
    let names: Vec<String> = w.iter().map(|(t, _)| t.name()).collect();
    let sources: Vec<TensorSource> = w
        .iter()
        .zip(&names)
        .map(|((t, d), name)| TensorSource {
            name,
            dtype: DType::F32,
            shape: &t.shape,
            bytes: bytemuck::cast_slice(d),
        })
        .collect();
    AlignedBytes::from_slice(&format::encode(spec, &sources, &[]).unwrap())
}

/// (activation, normalized, presynaptic energy Σ|w|·|x|) of one layer for one image.
type Captured = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Per image: (activation, normalized) of every layer, then the output.
fn naive(
    spec: &ModelSpec,
    w: &[(TensorSpec, Vec<f32>)],
    image: &[f32],
    int8_inputs: bool,
) -> (Vec<Captured>, Vec<f64>) {
    let get = |name: &str| {
        w.iter()
            .find(|(t, _)| t.name() == name)
            .map(|(_, d)| d.as_slice())
    };
    let (mut h, mut wd, mut c) = (
        spec.input.height as usize,
        spec.input.width as usize,
        spec.input.channels as usize,
    );
    let mut x: Vec<f64> = image.iter().map(|&v| v as f64).collect();
    let mut captured = Vec::new();
    for (l, ls) in spec.layers.iter().enumerate() {
        if int8_inputs {
            x = to_int8_grid(&x);
        }
        let (k, s, f) = (ls.kernel as usize, ls.stride as usize, ls.filters as usize);
        let (oh, ow) = ((h - k) / s + 1, (wd - k) / s + 1);
        let kernel = get(&format!("layer{l}.kernel")).unwrap();
        let bias = get(&format!("layer{l}.bias"));
        let mut y = vec![0f64; oh * ow * f];
        let mut pre = vec![0f64; oh * ow * f];
        for r in 0..oh {
            for q in 0..ow {
                for fi in 0..f {
                    let p = r * ow + q;
                    let mut energy = 0.0;
                    let mut acc = match (bias, ls.kind) {
                        (Some(b), LayerKind::LocallyConnected) => b[p * f + fi] as f64,
                        (Some(b), LayerKind::Conv) => b[fi] as f64,
                        (None, _) => 0.0,
                    };
                    for ky in 0..k {
                        for kx in 0..k {
                            for ci in 0..c {
                                let j = (ky * k + kx) * c + ci;
                                let wv = match ls.kind {
                                    LayerKind::LocallyConnected => {
                                        kernel[(p * k * k * c + j) * f + fi]
                                    }
                                    LayerKind::Conv => kernel[j * f + fi],
                                };
                                let xv = x[((r * s + ky) * wd + q * s + kx) * c + ci];
                                acc += xv * wv as f64;
                                energy += xv.abs() * (wv as f64).abs();
                            }
                        }
                    }
                    y[p * f + fi] = acc;
                    pre[p * f + fi] = energy;
                }
            }
        }
        let act = |v: &mut Vec<f64>| {
            if ls.activation == Activation::Relu {
                v.iter_mut().for_each(|a| *a = a.max(0.0));
            }
        };
        let norm = |v: &mut Vec<f64>| {
            let gamma = get(&format!("layer{l}.norm.gamma"));
            let beta = get(&format!("layer{l}.norm.beta"));
            let g = |ch: usize| gamma.map_or(1.0, |g| g[ch] as f64);
            let b = |ch: usize| beta.map_or(0.0, |b| b[ch] as f64);
            match ls.norm {
                Norm::None => {}
                Norm::LayerNorm(p) => {
                    for pos in v.chunks_mut(f) {
                        let mean = pos.iter().sum::<f64>() / f as f64;
                        let var = pos.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / f as f64;
                        for (ch, a) in pos.iter_mut().enumerate() {
                            *a = (*a - mean) / (var + p.epsilon as f64).sqrt() * g(ch) + b(ch);
                        }
                    }
                }
                Norm::BatchNorm(p) => {
                    let mean = get(&format!("layer{l}.norm.moving_mean")).unwrap();
                    let var = get(&format!("layer{l}.norm.moving_variance")).unwrap();
                    for pos in v.chunks_mut(f) {
                        for (ch, a) in pos.iter_mut().enumerate() {
                            *a = (*a - mean[ch] as f64)
                                / (var[ch] as f64 + p.epsilon as f64).sqrt()
                                * g(ch)
                                + b(ch);
                        }
                    }
                }
            }
        };
        let (a, n) = if ls.norm_first {
            norm(&mut y);
            let n = y.clone();
            act(&mut y);
            (y, n)
        } else {
            act(&mut y);
            let a = y.clone();
            norm(&mut y);
            (a, y)
        };
        let block = if ls.norm_first { a.clone() } else { n.clone() };
        captured.push((a, n, pre));
        if ls.pool_after {
            let (ph, pw) = (oh / 2, ow / 2);
            let mut p = vec![0f64; ph * pw * f];
            for r in 0..ph {
                for q in 0..pw {
                    for ch in 0..f {
                        let at = |yy: usize, xx: usize| block[(yy * ow + xx) * f + ch];
                        p[(r * pw + q) * f + ch] = at(2 * r, 2 * q)
                            .max(at(2 * r, 2 * q + 1))
                            .max(at(2 * r + 1, 2 * q))
                            .max(at(2 * r + 1, 2 * q + 1));
                    }
                }
            }
            x = p;
            (h, wd) = (ph, pw);
        } else {
            x = block;
            (h, wd) = (oh, ow);
        }
        c = f;
    }
    if int8_inputs {
        x = to_int8_grid(&x);
    }
    let classes = spec.readout.classes as usize;
    let rk = get("readout.kernel").unwrap();
    let rb = get("readout.bias").unwrap();
    let mut logits: Vec<f64> = (0..classes)
        .map(|o| {
            rb[o] as f64
                + x.iter()
                    .enumerate()
                    .map(|(i, &v)| v * rk[i * classes + o] as f64)
                    .sum::<f64>()
        })
        .collect();
    if spec.output == OutputActivation::Softmax {
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = logits.iter().map(|v| (v - max).exp()).sum();
        logits.iter_mut().for_each(|v| *v = (*v - max).exp() / sum);
    }
    (captured, logits)
}

/// A layer input as int8 activations see it: `a · s` with `a` the nearest integer (ties to
/// even) to `x / s` in f32 arithmetic (`x · (127 / max)`), `s = max|x| / 127`.
fn to_int8_grid(x: &[f64]) -> Vec<f64> {
    let max = x.iter().fold(0f32, |m, &v| m.max((v as f32).abs()));
    if max == 0.0 {
        return x.to_vec();
    }
    let (inv, step) = (127.0 / max, max / 127.0);
    x.iter()
        .map(|&v| ((v as f32) * inv).round_ties_even() as f64 * step as f64)
        .collect()
}

/// The model with every kernel quantised as the converter does (per unit `s = max|w| / 127`,
/// `q = round(w / s)`), encoded with int8 kernels, and the weights the int8 values stand for.
fn int8_model(
    spec: &ModelSpec,
    w: &[(TensorSpec, Vec<f32>)],
) -> (AlignedBytes, Vec<(TensorSpec, Vec<f32>)>) {
    let mut stored: Vec<(String, DType, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut dequantised = Vec::new();
    for (t, data) in w {
        let Some(units) = t.unit_shape().filter(|_| t.role == TensorRole::Kernel) else {
            stored.push((
                t.name(),
                DType::F32,
                t.shape.clone(),
                bytemuck::cast_slice(data).to_vec(),
            ));
            dequantised.push((t.clone(), data.clone()));
            continue;
        };
        let width = *t.shape.last().unwrap();
        let unit_count: usize = units.iter().product();
        let rows = data.len() / unit_count;
        let unit = |i: usize| (i / (rows * width)) * width + i % width;
        let mut scales = vec![0f32; unit_count];
        for (i, v) in data.iter().enumerate() {
            scales[unit(i)] = scales[unit(i)].max(v.abs() / 127.0);
        }
        let q: Vec<i8> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (v / scales[unit(i)]).round() as i8)
            .collect();
        dequantised.push((
            t.clone(),
            q.iter()
                .enumerate()
                .map(|(i, &q)| q as f32 * scales[unit(i)])
                .collect(),
        ));
        stored.push((
            t.name(),
            DType::I8,
            t.shape.clone(),
            bytemuck::cast_slice(&q).to_vec(),
        ));
        let scale_bytes = bytemuck::cast_slice(&scales).to_vec();
        stored.push((
            format::scale_name(&t.name()),
            DType::F32,
            units,
            scale_bytes,
        ));
    }
    let sources: Vec<TensorSource> = stored
        .iter()
        .map(|(name, dtype, shape, bytes)| TensorSource {
            name,
            dtype: *dtype,
            shape,
            bytes,
        })
        .collect();
    let bytes = AlignedBytes::from_slice(&format::encode(spec, &sources, &[]).unwrap());
    (bytes, dequantised)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Int8 activations: against the definition with every layer input put on its image's int8
/// grid; image by image the same bits as in a batch; close to the same int8 model with f32
/// activations; refused for a model with f32 kernels.
#[test]
fn int8_activations() {
    let mut first = layer(LayerKind::LocallyConnected, 6, 3, 2, ln(), true);
    first.activation = Activation::Linear;
    let s = spec(vec![
        first,
        layer(LayerKind::LocallyConnected, 5, 2, 1, ln(), false),
        layer(LayerKind::Conv, 9, 2, 1, Norm::None, false),
    ]);
    let w = weights(&s, 7);
    let (bytes, dequantised) = int8_model(&s, &w);
    let file = TnnFile::parse_verified(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    let batch = 5;
    let per = s.input_len();
    let mut rng = Rng(3);
    let input: Vec<f32> = (0..batch * per).map(|_| rng.next()).collect();
    let mut engine = Engine::new(&model, batch)
        .unwrap()
        .with_int8_activations()
        .unwrap();
    assert!(engine.int8_activations());
    let out = engine.run(&input).unwrap().to_vec();
    let classes = s.readout.classes as usize;
    for b in 0..batch {
        let (layers, probs) = naive(&s, &dequantised, &input[b * per..(b + 1) * per], true);
        assert_close(&out[b * classes..(b + 1) * classes], &probs, "output");
        for (l, (a, _, _)) in layers.iter().enumerate() {
            let len = a.len();
            assert_close(
                &engine.activation(l)[b * len..][..len],
                a,
                &format!("activation {l}"),
            );
        }
    }
    let mut single = Engine::new(&model, 1)
        .unwrap()
        .with_int8_activations()
        .unwrap();
    for b in 0..batch {
        let alone = single.run(&input[b * per..(b + 1) * per]).unwrap();
        assert_eq!(alone, &out[b * classes..(b + 1) * classes], "image {b}");
    }
    let mut plain = Engine::new(&model, batch).unwrap();
    let reference = plain.run(&input).unwrap().to_vec();
    for l in 0..s.layers.len() {
        let c = cosine(engine.activation(l), plain.activation(l));
        assert!(c > 0.999, "layer {l}: cosine {c}");
    }
    assert!(cosine(&out, &reference) > 0.999);
    let f32_bytes = encode(&s, &w);
    let f32_file = TnnFile::parse_verified(&f32_bytes).unwrap();
    let f32_model = Model::from_file(&f32_file).unwrap();
    let refused = Engine::new(&f32_model, 1)
        .unwrap()
        .with_int8_activations()
        .err();
    assert!(
        matches!(refused, Some(RunError::Int8ActivationsNeedInt8 { ref kernel, dtype: "f32" }) if kernel == "layer 0"),
        "{refused:?}"
    );
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*a as f64) - b).abs() <= 1e-5 * scale,
            "{what}[{i}]: {a} vs {b} (scale {scale})"
        );
    }
}

fn check(spec: ModelSpec, batch: usize, capacity: usize) {
    let w = weights(&spec, 42);
    let bytes = encode(&spec, &w);
    let file = TnnFile::parse_verified(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    let mut engine = Engine::new(&model, capacity).unwrap();
    let mut rng = Rng(9);
    let per = spec.input_len();
    let input: Vec<f32> = (0..batch * per).map(|_| rng.next()).collect();
    let out = engine.run(&input).unwrap().to_vec();
    // An engine in a lent arena (longer than needed, holding garbage) computes the same bits.
    let mut arena = vec![f32::NAN; Engine::arena_len(&model, capacity) + 3];
    let mut lent = Engine::in_arena(&model, capacity, &mut arena).unwrap();
    assert_eq!(lent.run(&input).unwrap(), &out[..]);
    for l in 0..spec.layers.len() {
        assert_eq!(lent.activation(l), engine.activation(l));
        assert_eq!(lent.normalized(l), engine.normalized(l));
        assert_eq!(lent.block_output(l), engine.block_output(l));
    }
    assert_eq!(lent.logits(), engine.logits());
    let classes = spec.readout.classes as usize;
    for b in 0..batch {
        let (layers, probs) = naive(&spec, &w, &input[b * per..(b + 1) * per], false);
        assert_close(&out[b * classes..(b + 1) * classes], &probs, "output");
        for (l, (a, n, _)) in layers.iter().enumerate() {
            let len = a.len();
            assert_close(
                &engine.activation(l)[b * len..(b + 1) * len],
                a,
                &format!("activation {l}"),
            );
            if let Some(normed) = engine.normalized(l) {
                assert_close(&normed[b * len..(b + 1) * len], n, &format!("norm {l}"));
            }
        }
    }
}

/// The energy meter against E_post = |a|, E_pre = Σ|w|·|x| computed directly, summed over
/// stimuli fed in two batches.
fn check_energy(spec: ModelSpec) {
    let w = weights(&spec, 3);
    let bytes = encode(&spec, &w);
    let file = TnnFile::parse(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    let mut engine = Engine::new(&model, 2).unwrap();
    let mut meter = EnergyMeter::new(&model, 2);
    let mut rng = Rng(5);
    let per = spec.input_len();
    let input: Vec<f32> = (0..3 * per).map(|_| rng.next()).collect();
    let mut batch_sums = vec![0.0; spec.layers.len()];
    for chunk in input.chunks(2 * per) {
        engine.run(chunk).unwrap();
        meter.accumulate(&engine, chunk);
        let mut totals = vec![f64::NAN; spec.layers.len()];
        energy::batch_totals(&engine, chunk, &mut totals);
        batch_sums
            .iter_mut()
            .zip(&totals)
            .for_each(|(s, t)| *s += t);
    }
    assert_eq!(meter.stimuli(), 3);
    for (got, want) in batch_sums.iter().zip(meter.layers()) {
        assert!(
            (got - want.total()).abs() <= 1e-5 * want.total(),
            "{got} vs {}",
            want.total()
        );
    }
    let mut want: Vec<(Vec<f64>, Vec<f64>, u64)> = Vec::new();
    for image in input.chunks(per) {
        let (layers, _) = naive(&spec, &w, image, false);
        for (l, (a, _, pre)) in layers.into_iter().enumerate() {
            if want.len() <= l {
                want.push((vec![0.0; a.len()], vec![0.0; a.len()], 0));
            }
            want[l]
                .0
                .iter_mut()
                .zip(&a)
                .for_each(|(s, v)| *s += v.abs());
            want[l].1.iter_mut().zip(&pre).for_each(|(s, v)| *s += v);
        }
    }
    for (l, (post, pre, _)) in want.iter().enumerate() {
        let got = &meter.layers()[l];
        let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_close(&as_f32(&got.post), post, &format!("E_post {l}"));
        assert_close(&as_f32(&got.pre), pre, &format!("E_pre {l}"));
        let total: Vec<f64> = post
            .iter()
            .zip(pre)
            .map(|(a, b)| a / 3.0 + 2.0 * b / 3.0)
            .collect();
        assert_close(&as_f32(&got.totals()), &total, &format!("E {l}"));
    }
}

#[test]
fn energy_of_locally_connected_and_conv_layers() {
    check_energy(spec(vec![
        layer(LayerKind::LocallyConnected, 6, 3, 2, ln(), true),
        layer(LayerKind::Conv, 4, 2, 1, ln(), false),
    ]));
    let mut bn = layer(
        LayerKind::Conv,
        5,
        3,
        1,
        Norm::BatchNorm(NormParams::default()),
        false,
    );
    bn.norm_first = true;
    check_energy(spec(vec![
        bn,
        layer(LayerKind::LocallyConnected, 3, 3, 3, Norm::None, false),
    ]));
}

#[test]
fn nonzero_macs_count_inputs_that_are_not_zero() {
    // One 3×3×1 conv over a 4×4 image with a zero pixel at (0, 0): the four 3×3 windows hold
    // 9 + 9 + 9 + 8 non-zero pixels; 2 filters.
    let mut s = spec(vec![layer(LayerKind::Conv, 2, 3, 1, Norm::None, false)]);
    s.input = InputSpec {
        height: 4,
        width: 4,
        channels: 1,
        preprocess: Preprocess::SignedUnit,
    };
    let w = weights(&s, 1);
    let bytes = encode(&s, &w);
    let file = TnnFile::parse(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    let mut engine = Engine::new(&model, 1).unwrap();
    let mut meter = EnergyMeter::new(&model, 1);
    let mut image = vec![0.5f32; 16];
    image[0] = 0.0;
    engine.run(&image).unwrap();
    meter.accumulate(&engine, &image);
    assert_eq!(meter.layers()[0].nonzero_macs, (9 + 9 + 9 + 8) * 2);
}

#[test]
fn locally_connected_with_layer_norm_and_pooling() {
    let s = spec(vec![
        layer(LayerKind::LocallyConnected, 6, 3, 2, ln(), true),
        layer(LayerKind::LocallyConnected, 4, 2, 1, ln(), false),
    ]);
    check(s, 3, 4);
}

#[test]
fn conv_with_batch_norm_norm_first_and_no_bias() {
    let mut bn = layer(
        LayerKind::Conv,
        5,
        3,
        1,
        Norm::BatchNorm(NormParams {
            epsilon: 1e-3,
            center: true,
            scale: false,
        }),
        true,
    );
    bn.norm_first = true;
    let mut plain = layer(LayerKind::Conv, 3, 2, 2, Norm::None, false);
    plain.bias = true;
    let mut s = spec(vec![bn, plain]);
    s.output = OutputActivation::Linear;
    check(s, 2, 2);
}

#[test]
fn mixed_layers_linear_activation_and_a_partial_batch() {
    let mut lin = layer(
        LayerKind::LocallyConnected,
        4,
        3,
        1,
        Norm::LayerNorm(NormParams {
            epsilon: 1e-5,
            center: false,
            scale: true,
        }),
        true,
    );
    lin.activation = Activation::Linear;
    let s = spec(vec![lin, layer(LayerKind::Conv, 9, 3, 1, ln(), true)]);
    check(s, 1, 5);
}

#[test]
fn engine_refuses_wrong_input_lengths() {
    let s = spec(vec![layer(LayerKind::Conv, 2, 3, 2, ln(), false)]);
    let w = weights(&s, 1);
    let bytes = encode(&s, &w);
    let file = TnnFile::parse(&bytes).unwrap();
    let model = Model::from_file(&file).unwrap();
    let mut engine = Engine::new(&model, 2).unwrap();
    let per = s.input_len();
    assert!(engine
        .run(&vec![0.0; per + 1])
        .unwrap_err()
        .to_string()
        .contains("values"));
    assert!(engine
        .run(&vec![0.0; 3 * per])
        .unwrap_err()
        .to_string()
        .contains("larger than"));
    assert!(engine.run(&[]).is_err());
    let needed = Engine::arena_len(&model, 2);
    let mut arena = vec![0.0; needed - 1];
    assert_eq!(
        Engine::in_arena(&model, 2, &mut arena).err(),
        Some(RunError::ArenaTooSmall {
            needed,
            found: needed - 1
        })
    );
}
