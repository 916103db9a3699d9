#!/usr/bin/env python3
"""Writes a full-size VGG16 or VGG19 "notop" weights file with random weights, in the official Keras 1 layout (root
attribute layer_names, per-layer weight_names, kernels (3, 3, Cin, Cout), He-scaled), with h5py.

What for: timing a real `gpustyle transfer` through the whole network where the official files cannot be downloaded
(the lent GPU machine reaches nothing outside it; h5py is in its Python). The pictures it makes mean nothing; the
work per iteration is the real network's.

Usage:  python3 weights-tools/random_vgg_h5py.py vgg16 OUT.h5
"""
import sys

import os

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_h5py_fixture import random_conv, write_conv, write_no_weights  # noqa: E402  (the layout, written one way)

CONVS = {"vgg16": [2, 2, 3, 3, 3], "vgg19": [2, 2, 4, 4, 4]}
CHANNELS = [64, 128, 256, 512, 512]


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in CONVS:
        sys.exit(__doc__)
    network, path = sys.argv[1], sys.argv[2]
    rng = np.random.RandomState(20261128)
    names = [b"input_1"]
    with h5py.File(path, "w") as f:
        write_no_weights(f, "input_1")
        cin = 3
        for block, (convs, cout) in enumerate(zip(CONVS[network], CHANNELS), start=1):
            for k in range(1, convs + 1):
                name = "block%d_conv%d" % (block, k)
                kernel, bias = random_conv(rng, cin, cout)
                write_conv(f, name, kernel, bias)
                names.append(name.encode())
                cin = cout
            pool = "block%d_pool" % block
            write_no_weights(f, pool)
            names.append(pool.encode())
        f.attrs["layer_names"] = np.array(names)
    print("wrote", path)


if __name__ == "__main__":
    main()
