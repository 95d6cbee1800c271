#!/usr/bin/python3
"""make_demo.py - write a small demo .npz to mount with npzfs.

usage: scripts/make_demo.py [-c|--compressed] [OUT.npz]   (default demo.npz)

The arrays are the kind people keep in npz files: a structured parameter
record, a 2-d float table, a 3-d stack, labels, timestamps, a mask, and one
array in a subdirectory; -c writes them with np.savez_compressed.
"""
import argparse

import numpy as np


def demo_arrays():
    rng = np.random.default_rng(0)
    return {
        "run_param": np.array([(0, 0.5, 1e-05)],
                              dtype=[("RUN_MODE", "<i8"), ("ALPHA", "<f8"), ("TOL", "<f8")]),
        "temperature": np.round(20 + 5 * rng.standard_normal((4, 6)), 2),
        "stack": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        "labels": np.array(["alpha", "beta", "gamma delta", 'say "hi"']),
        "timestamps": np.array(["2024-01-31T12:00", "2024-02-01T08:30", "NaT"], dtype="M8[m]"),
        "mask": np.array([True, False, True, True]),
        "weights": rng.standard_normal(8).astype(np.float32),
        "calib/offsets": np.array([0.1, -0.25, np.nan, np.inf]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="demo.npz")
    ap.add_argument("-c", "--compressed", action="store_true",
                    help="deflate the members (np.savez_compressed)")
    args = ap.parse_args()
    save = np.savez_compressed if args.compressed else np.savez
    save(args.out, **demo_arrays())
    print(args.out)


if __name__ == "__main__":
    main()
