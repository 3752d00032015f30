"""Writes Keras weight files derived from the tiny-cnn fixture for the importer's tests:

* missing_layer.h5: the conv_1 group and its `layer_names` entry removed;
* missing_readout.h5: the ReadoutDense group and its `layer_names` entry removed;
* fixed_strings.h5: complete, but `layer_names` and `weight_names` stored as fixed-length byte
  strings, as Keras 2's own `save_weights` writes them (the fixture holds variable-length ones);
* dtypes_gzip.h5: complete, with conv_0/kernel:0 as float64 in gzip-compressed chunks and
  ReadoutDense/kernel:0 as float16;
* missing_group.h5, missing_dataset.h5: two-layer files whose `layer_names` lists a layer
  without a group, or whose `weight_names` lists a weight without a dataset;
* not_keras.h5: an HDF5 file with one dataset and no `layer_names`.

Run once from this directory (`python3 make_bad_h5.py [FIXTURES]`, FIXTURES defaulting to
../../../../shared/fixtures/keras); the outputs are committed so that the tests need no Python.
"""

import os
import sys

import h5py
import numpy as np

FIXTURES = sys.argv[1] if len(sys.argv) > 1 else "../../../../shared/fixtures/keras"
SOURCE = os.path.join(FIXTURES, "tiny-cnn", "weights.h5")


def name_of(entry):
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def copy_without(layer, out_path):
    """Copies SOURCE without `layer` (its group and its layer_names entry)."""
    with h5py.File(SOURCE, "r") as src, h5py.File(out_path, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        names = [name_of(n) for n in src.attrs["layer_names"] if name_of(n) != layer]
        dst.attrs["layer_names"] = np.array(names, dtype=h5py.string_dtype())
        for name in names:
            src.copy(src[name], dst, name=name)
    report(out_path)


def copy_with_fixed_strings(out_path):
    """Copies SOURCE, rewriting every name list as a fixed-length byte string array."""
    with h5py.File(SOURCE, "r") as src, h5py.File(out_path, "w") as dst:
        names = [name_of(n) for n in src.attrs["layer_names"]]
        dst.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            src.copy(src[name], dst, name=name)
            weights = [name_of(w) for w in src[name].attrs["weight_names"]]
            # Keras writes an empty float64 array for weightless layers; keep that.
            if weights:
                dst[name].attrs["weight_names"] = np.array([w.encode() for w in weights])
    report(out_path)


def copy_with_other_dtypes(out_path):
    """Copies SOURCE, storing two weights as float64 (gzip, chunked) and float16."""
    with h5py.File(SOURCE, "r") as src, h5py.File(out_path, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in src.attrs["layer_names"]:
            src.copy(src[name_of(name)], dst, name=name_of(name))
        kernel = "conv_0/conv_0/kernel:0"
        data = src[kernel][()]
        del dst[kernel]
        dst.create_dataset(kernel, data=data.astype(np.float64), chunks=(5, 5, 3, 4),
                           compression="gzip")
        readout = "ReadoutDense/ReadoutDense/kernel:0"
        data = src[readout][()]
        del dst[readout]
        dst.create_dataset(readout, data=data.astype(np.float16))
    report(out_path)


def write_incomplete(out_path, with_group, with_bias):
    """A two-layer file: conv_0 (kernel, bias) listed, but its group or its bias missing."""
    with h5py.File(out_path, "w") as f:
        f.attrs["layer_names"] = np.array(["input", "conv_0"], dtype=h5py.string_dtype())
        f.create_group("input").attrs["weight_names"] = np.array([])
        if with_group:
            weights = ["conv_0/kernel:0", "conv_0/bias:0"]
            f.create_group("conv_0").attrs["weight_names"] = np.array(
                weights, dtype=h5py.string_dtype())
            f.create_dataset("conv_0/conv_0/kernel:0", data=np.zeros((3, 3, 3, 4), np.float32))
            if with_bias:
                f.create_dataset("conv_0/conv_0/bias:0", data=np.zeros(4, np.float32))
    report(out_path)


def write_not_keras(out_path):
    with h5py.File(out_path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 4, 4, 3), np.uint8))
    report(out_path)


def report(out_path):
    size = os.path.getsize(out_path)
    assert size < 100_000, f"{out_path} is {size} bytes"
    print(f"{out_path}: {size} bytes")


copy_without("conv_1", "missing_layer.h5")
copy_without("ReadoutDense", "missing_readout.h5")
copy_with_fixed_strings("fixed_strings.h5")
copy_with_other_dtypes("dtypes_gzip.h5")
write_incomplete("missing_group.h5", with_group=False, with_bias=False)
write_incomplete("missing_dataset.h5", with_group=True, with_bias=False)
write_not_keras("not_keras.h5")
