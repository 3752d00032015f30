"""Times TensorFlow (Keras 2) on the paper's All-TNN with random weights, for comparison with
`alltnn bench` run in the same minutes: TensorFlow cannot run inside that process, so this is a
separate script (not part of the test suite). Median and min-max ms per image over timed runs of
a compiled `tf.function`, after a warm-up, like `bench`.

usage: python3 tests/tensorflow_speed.py [--batch 1,16] [--seconds 2] [--implementation 1]
needs: pip install "tensorflow-cpu==2.15.*" (the last release whose Keras has LocallyConnected2D)
"""
import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

LAYERS = [(64, 7, 3), (81, 3, 1), (81, 3, 1), (256, 3, 1), (256, 3, 1), (2500, 3, 1)]
POOL_AFTER = {0, 2, 4}
IMAGE, CLASSES = 150, 565


def paper_alltnn(implementation):
    x = inputs = tf.keras.Input((IMAGE, IMAGE, 3))
    for l, (filters, kernel, stride) in enumerate(LAYERS):
        x = tf.keras.layers.LocallyConnected2D(
            filters, kernel, strides=stride, implementation=implementation
        )(x)
        x = tf.keras.layers.ReLU()(x)
        x = tf.keras.layers.LayerNormalization(axis=-1, epsilon=1e-3)(x)
        if l in POOL_AFTER:
            x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(CLASSES, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", default="1,16")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--implementation", type=int, default=1)
    args = parser.parse_args()
    model = paper_alltnn(args.implementation)
    print(
        f"TensorFlow {tf.__version__}, LocallyConnected2D implementation {args.implementation}, "
        f"{model.count_params()} parameters, {tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads"
    )
    run = tf.function(lambda x: model(x, training=False))
    rng = np.random.default_rng(0)
    print(f"{'engine':<12}{'batch':>6}{'ms/image':>13}{'spread (min-max)':>21}")
    for batch in [int(b) for b in args.batch.split(",")]:
        x = tf.constant(rng.uniform(-1, 1, (batch, IMAGE, IMAGE, 3)).astype(np.float32))
        run(x).numpy()  # trace and warm up
        run(x).numpy()
        times, start = [], time.perf_counter()
        while len(times) < args.runs or time.perf_counter() - start < args.seconds:
            t = time.perf_counter()
            run(x).numpy()
            times.append((time.perf_counter() - t) / batch)
        ms = [t * 1e3 for t in times]
        print(
            f"{'tensorflow':<12}{batch:>6}{statistics.median(ms):>13.3f}"
            f"{f'{min(ms):.3f}-{max(ms):.3f}':>21}"
        )


if __name__ == "__main__":
    main()
