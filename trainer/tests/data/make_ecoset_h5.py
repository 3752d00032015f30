#!/usr/bin/env python3
"""Writes ecoset_small.h5, the small ecoset-layout HDF5 file the data tests read.

Run from this directory: python3 make_ecoset_h5.py (needs numpy and h5py).

Layout (every pixel is pattern(i, y, x, c), so a test can check any row exactly):
  /train, /test            the plain ecoset layout; no /val, for the missing-split error.
                           Images are chunked one row per chunk and gzip-compressed, like
                           ecoset; labels are int64 (train) and uint8 (test), and only test
                           holds the largest label 4, so both splits must report 5 classes.
  /onehot/{train,val}      a subset; labels as float32 one-hot rows (7 classes); chunks
                           of two rows, so a row can sit in the middle of a chunk.
  /negative/train          a subset whose int32 labels hold a -1 at index 1.
  /grey/test               a subset of grey (N, H, W) images with int16 labels.
  /contiguous/train        a subset stored contiguously (no chunks, no compression).
"""

import h5py
import numpy as np


def pattern(n, h, w, c):
    i, y, x, ch = np.meshgrid(
        np.arange(n), np.arange(h), np.arange(w), np.arange(c), indexing="ij"
    )
    return ((i * 37 + y * 5 + x * 3 + ch * 60) % 256).astype(np.uint8)


def split(group, data, labels, chunk_rows):
    """chunk_rows None: contiguous and uncompressed; else gzip chunks of that many rows."""
    if chunk_rows is None:
        group.create_dataset("data", data=data)
    else:
        group.create_dataset(
            "data",
            data=data,
            chunks=(chunk_rows,) + data.shape[1:],
            compression="gzip",
            compression_opts=4,
        )
    group.create_dataset("labels", data=labels)


def main():
    with h5py.File("ecoset_small.h5", "w") as f:
        split(f.create_group("train"), pattern(10, 20, 24, 3),
              np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1], dtype=np.int64), 1)
        split(f.create_group("test"), pattern(4, 20, 24, 3),
              np.array([4, 3, 2, 1], dtype=np.uint8), 1)

        onehot = f.create_group("onehot")
        for name, n in (("train", 6), ("val", 3)):
            classes = (np.arange(n) * 3) % 7
            split(onehot.create_group(name), pattern(n, 16, 16, 3),
                  np.eye(7, dtype=np.float32)[classes], 2)

        split(f.create_group("negative").create_group("train"), pattern(3, 8, 8, 3),
              np.array([0, -1, 2], dtype=np.int32), 1)

        split(f.create_group("grey").create_group("test"), pattern(3, 8, 10, 1)[..., 0],
              np.array([2, 0, 1], dtype=np.int16), 1)

        split(f.create_group("contiguous").create_group("train"), pattern(4, 6, 5, 3),
              np.array([1, 0, 1, 0], dtype=np.uint32), None)


if __name__ == "__main__":
    main()
