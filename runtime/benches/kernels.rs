//! Kernel timings on the paper All-TNN's block shapes: `cargo bench -p alltnn-runtime`.
//! Each benchmark is one weight block (one position of a locally connected layer) for a batch;
//! `ALLTNN_ISA=scalar|avx2|avx512|avx512vnni` selects the implementation (`int8_activations`
//! runs on the scalar reference below `avx512vnni`).

use alltnn_runtime::kernels::block::{self, Inputs};
use alltnn_runtime::kernels::quantised::Packed;
use alltnn_runtime::kernels::weights::Weights;
use divan::Bencher;
use half::f16;

fn main() {
    eprintln!("kernels: {}", block::isa().name());
    divan::main();
}

/// (name, patch rows, row length, filters) of the paper's layers 0, 2 and 4.
const BLOCKS: [(&str, usize, usize, usize); 3] = [
    ("layer0 7x7x3->64", 7, 21, 64),
    ("layer2 3x3x81->81", 3, 243, 81),
    ("layer4 3x3x256->256", 3, 768, 256),
];

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

fn bench(bencher: Bencher, block_index: usize, batch: usize, dtype: &str) {
    let (_, rows, row_len, f) = BLOCKS[block_index];
    let k = rows * row_len;
    let raw = values(k * f);
    let halves: Vec<f16> = raw.iter().map(|&v| f16::from_f32(v)).collect();
    let q: Vec<i8> = raw.iter().map(|&v| (v * 127.0) as i8).collect();
    let w = match dtype {
        "f32" => Weights::F32(&raw),
        "f16" => Weights::F16(&halves),
        _ => Weights::I8 {
            values: &q,
            scales: &[],
        },
    };
    let x = values(batch * k);
    let inputs = Inputs {
        data: &x,
        base: 0,
        batch_stride: k,
        rows,
        row_stride: row_len,
        row_len,
    };
    let mut out = vec![0f32; batch * f];
    bencher
        .counter(divan::counter::ItemsCount::new(k * f * batch))
        .bench_local(|| block::accumulate(w, f, 0..f, inputs, batch, &mut out, f));
}

#[divan::bench(args = [0, 1, 2], consts = [1, 16])]
fn f32<const B: usize>(bencher: Bencher, block: usize) {
    bench(bencher, block, B, "f32");
}

#[divan::bench(args = [0, 1, 2], consts = [1, 16])]
fn f16<const B: usize>(bencher: Bencher, block: usize) {
    bench(bencher, block, B, "f16");
}

#[divan::bench(args = [0, 1, 2], consts = [1, 16])]
fn int8<const B: usize>(bencher: Bencher, block: usize) {
    bench(bencher, block, B, "int8");
}

/// Int8 weights × int8 activations ([`block::accumulate_q8`]); the count is multiply-adds.
#[divan::bench(args = [0, 1, 2], consts = [1, 16])]
fn int8_activations<const B: usize>(bencher: Bencher, block_index: usize) {
    let (_, rows, row_len, f) = BLOCKS[block_index];
    let k = rows * row_len;
    let q: Vec<i8> = values(k * f).iter().map(|&v| (v * 127.0) as i8).collect();
    let packed = Packed::new(&q, &vec![1.0; f], 1, rows, row_len, f);
    let (words, _, _) = packed.block(0);
    let x: Vec<u8> = (0..B * k + 3).map(|i| (i * 7919 % 251) as u8).collect();
    let inputs = Inputs {
        data: &x,
        base: 0,
        batch_stride: k,
        rows,
        row_stride: row_len,
        row_len: packed.groups(),
    };
    let mut out = vec![0i32; B * f];
    bencher
        .counter(divan::counter::ItemsCount::new(k * f * B))
        .bench_local(|| block::accumulate_q8(words, f, 0..f, inputs, B, &mut out, f));
}
