"""Writes hparams_tiny.pickle: the hparams dict of an original All-TNN model directory
(`all_tnn/defaults/hparams_defaults.py`, saved with pickle) for the tiny-alltnn fixture.

Run once from this directory (`python3 make_hparams.py`); the output is committed so that the
tests need no Python.
"""

import pickle

hparams = {
    "model_name": "tnn",
    "num_classes": 10,
    "image_size": 48,
    "image_normalization": "[-1,1]",
    "norm_type": "LN",
    "norm_first": False,
    # argparse's strtobool gives ints, so real files hold 1/0 as often as True/False.
    "center_norm": 1,
    "scale_norm": True,
    "norm_axes": [-1],
    "activation": "relu",
    "model_output_activation": "softmax",
    "alpha": 10.0,
    "layer_alpha_factors": [1.0, 1.0, 1.0, 1.0],
    "fixation_heatmaps_path": None,
    "gpu_ids": [-1],
}

with open("hparams_tiny.pickle", "wb") as f:
    pickle.dump(hparams, f, protocol=5)
