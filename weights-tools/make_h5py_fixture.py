#!/usr/bin/env python3
"""Writes the test fixture that comes from a *different* HDF5 writer than PureHDF: h5py, the library Keras itself
uses. Keras 1 layout exactly as the official files have it (root attribute layer_names, fixed-length byte strings,
per-layer weight_names, an empty float64 weight_names on layers without weights), VGG19 blocks 1-3 with small
channel counts.

It also computes, with numpy alone (an implementation independent of GpuStyle's), the ReLU outputs of a fixed
image at every conv layer of the fixture, and relu1_1 of the same image under the real partial VGG19 weights when
that file is present, and writes them as JSON next to the fixture. The C# tests hold the engine against these.

Usage (Debian: apt-get install python3-h5py):  /usr/bin/python3 weights-tools/make_h5py_fixture.py
"""
import json
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "GpuStyle.Tests", "Fixtures")
REAL = os.path.join(HERE, "..", "..", "shared", "weights", "vgg19_notop_blocks1-3.h5")
BLOCKS = [(1, 2, 4), (2, 2, 6), (3, 4, 8)]   # (block, convs, channels): a VGG19 prefix with small channels
H, W = 9, 11


def fixed_image():
    """A preprocessed (BGR, mean-subtracted) 3xHxW image given by a formula, so C# can rebuild it exactly."""
    c, i, j = np.meshgrid(np.arange(3), np.arange(H), np.arange(W), indexing="ij")
    return (100.0 * np.sin(0.3 * i + 0.7 * j + 1.1 * c)).astype(np.float32).astype(np.float64)


def conv_relu(x, kernel, bias):
    """Zero-padded 3x3 correlation, as TensorFlow's conv2d; kernel is Keras's (3,3,Cin,Cout)."""
    cin, h, w = x.shape
    xp = np.zeros((cin, h + 2, w + 2))
    xp[:, 1:-1, 1:-1] = x
    y = np.zeros((kernel.shape[3], h, w)) + bias.astype(np.float64)[:, None, None]
    for ky in range(3):
        for kx in range(3):
            y += np.einsum("co,chw->ohw", kernel[ky, kx].astype(np.float64), xp[:, ky:ky + h, kx:kx + w])
    return np.maximum(y, 0)


def max_pool(x):
    c, h, w = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def random_conv(rng, cin, cout):
    """A He-scaled kernel (3, 3, Cin, Cout) and a small bias, float32, drawn from rng."""
    kernel = (rng.randn(3, 3, cin, cout) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
    bias = (rng.rand(cout) * 0.2 - 0.1).astype(np.float32)
    return kernel, bias


def write_conv(f, name, kernel, bias):
    """One conv layer in the Keras 1 layout: a group with weight_names and its kernel (3, 3, Cin, Cout) and bias."""
    g = f.create_group(name)
    wn, bn = name + "_W_1:0", name + "_b_1:0"
    g.attrs["weight_names"] = np.array([wn.encode(), bn.encode()])
    g.create_dataset(wn, data=kernel)
    g.create_dataset(bn, data=bias)


def write_no_weights(f, name):
    """A layer without weights (input, pooling): an empty float64 weight_names, as Keras writes it."""
    f.create_group(name).attrs["weight_names"] = np.array([], dtype=np.float64)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.RandomState(20261126)
    path = os.path.join(OUT, "vgg19_blocks1-3_small_h5py.h5")
    names = [b"input_1"]
    taps = {}
    x = fixed_image()
    with h5py.File(path, "w") as f:
        write_no_weights(f, "input_1")
        cin = 3
        for block, convs, cout in BLOCKS:
            for k in range(1, convs + 1):
                name = "block%d_conv%d" % (block, k)
                kernel, bias = random_conv(rng, cin, cout)
                write_conv(f, name, kernel, bias)
                names.append(name.encode())
                x = conv_relu(x, kernel, bias)
                taps["relu%d_%d" % (block, k)] = x.ravel().tolist()
                cin = cout
            pool = "block%d_pool" % block
            write_no_weights(f, pool)
            names.append(pool.encode())
            x = max_pool(x)
        f.attrs["layer_names"] = np.array(names)
    with open(os.path.join(OUT, "vgg19_blocks1-3_small_h5py.expected.json"), "w") as f:
        json.dump({"height": H, "width": W, "taps": taps}, f)
    print("wrote", path, os.path.getsize(path), "bytes")

    if os.path.exists(REAL):
        with h5py.File(REAL, "r") as f:
            g = f["block1_conv1"]
            wn, bn = [n.decode() for n in g.attrs["weight_names"]]
            y = conv_relu(fixed_image(), g[wn][()], g[bn][()])
        with open(os.path.join(OUT, "vgg19_real_relu1_1.expected.json"), "w") as out:
            json.dump({"height": H, "width": W, "relu1_1": y.ravel().tolist()}, out)
        print("wrote the real file's relu1_1 of the fixed image")
    else:
        print("real weights not found at", REAL, "- skipped their expected values", file=sys.stderr)


if __name__ == "__main__":
    main()
