"""Writes a Keras-2 `model.save_weights` HDF5 file for the paper's All-TNN or CNN with random
Glorot-uniform weights, laid out exactly as the original checkpoints (`ckpt_epNNN.h5`):
groups `sheet_<l>`/`conv_<l>`, `relu_Layer_<l>_Time_0`, `LayerNorm_Layer_<l>_Time_0`, unnamed
pools `max_pooling2d[_N]`, `flatten`, `ReadoutDense`, `output_time_0`.

usage: python3 make_keras_h5.py OUT.h5 alltnn|cnn [SEED]
"""
import sys

import h5py
import numpy as np

LAYERS = [(64, 7, 3), (81, 3, 1), (81, 3, 1), (256, 3, 1), (256, 3, 1), (2500, 3, 1)]
POOL_AFTER = {0, 2, 4}
IMAGE, CLASSES = 150, 565


def main(out, kind, seed):
    rng = np.random.default_rng(seed)
    f = h5py.File(out, "w")
    names = []

    def layer(name, weights):
        names.append(name)
        g = f.create_group(name)
        g.attrs["weight_names"] = np.array([f"{name}/{w}".encode() for w in weights] or [], dtype="S" if weights else "f8")
        inner = g.create_group(name) if weights else None
        for w, value in weights.items():
            inner.create_dataset(w, data=value.astype(np.float32))

    def glorot(shape, fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(np.float32)

    layer("input", {})
    size, channels, pools = IMAGE, 3, 0
    for l, (filters, k, s) in enumerate(LAYERS):
        out_size = (size - k) // s + 1
        patch = k * k * channels
        if kind == "alltnn":
            kernel = glorot((out_size * out_size, patch, filters), patch, filters)
            bias = rng.normal(0, 0.05, (out_size, out_size, filters))
            layer(f"sheet_{l}", {"kernel:0": kernel, "bias:0": bias})
        else:
            kernel = glorot((k, k, channels, filters), patch, filters)
            layer(f"conv_{l}", {"kernel:0": kernel, "bias:0": rng.normal(0, 0.05, (filters,))})
        layer(f"relu_Layer_{l}_Time_0", {})
        layer(f"LayerNorm_Layer_{l}_Time_0", {
            "gamma:0": 1 + rng.normal(0, 0.1, (filters,)),
            "beta:0": rng.normal(0, 0.1, (filters,)),
        })
        size, channels = out_size, filters
        if l in POOL_AFTER:
            layer("max_pooling2d" + (f"_{pools}" if pools else ""), {})
            pools += 1
            size //= 2
    layer("flatten", {})
    n_in = size * size * channels
    layer("ReadoutDense", {"kernel:0": glorot((n_in, CLASSES), n_in, CLASSES), "bias:0": np.zeros(CLASSES)})
    layer("output_time_0", {})
    f.attrs["layer_names"] = np.array([n.encode() for n in names])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.15.0"
    f.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
