#!/usr/bin/env python3
"""Writes the small .npz files the data tests read.

Run from this directory: python3 make_small_npz.py (needs numpy).

Every pixel is pattern(i, y, x, c), as in make_ecoset_h5.py.
  split.npz  (np.savez_compressed) per-split keys: train_images uint8 (6, 10, 12, 3) with
             int64 labels, val_images grey uint8 (3, 10, 12) with uint16 labels; no test split.
  plain.npz  (np.savez) images uint8 (4, 9, 9, 3) and float32 one-hot labels (4, 3).
"""

import numpy as np


def pattern(n, h, w, c):
    i, y, x, ch = np.meshgrid(
        np.arange(n), np.arange(h), np.arange(w), np.arange(c), indexing="ij"
    )
    return ((i * 37 + y * 5 + x * 3 + ch * 60) % 256).astype(np.uint8)


def main():
    np.savez_compressed(
        "split.npz",
        train_images=pattern(6, 10, 12, 3),
        train_labels=np.array([0, 1, 2, 0, 1, 2], dtype=np.int64),
        val_images=pattern(3, 10, 12, 1)[..., 0],
        val_labels=np.array([3, 1, 0], dtype=np.uint16),
    )
    np.savez(
        "plain.npz",
        images=pattern(4, 9, 9, 3),
        labels=np.eye(3, dtype=np.float32)[[2, 0, 1, 2]],
    )


if __name__ == "__main__":
    main()
