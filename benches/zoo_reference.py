#!/usr/bin/env python3
"""Reference W2^2 for the zoo cases without a closed form (`otgrid verify --suite zoo`).

For each case and size, the cell-centre samples of the case's densities (as otgrid samples
and normalises them: read back from the `source` / `target` fields of an `otgrid ot` output)
are transported by POT's exact network-simplex solver, `ot.emd2`, with the squared Euclidean
cost: the exact discrete W2^2 between the two sampled measures. The result is written to
benches/zoo_reference.json, which src/ot/verify.rs compiles in.

    pip install pot h5py numpy
    python3 benches/zoo_reference.py [--bin target/release/otgrid] [--sizes 64]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import h5py
import numpy as np
import ot

CASES = ["mixture-2d", "shapes"]


def densities(binary, case, n):
    """The normalised source and target densities of `case` on its n x n grid."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "case.h5")
        # One Sinkhorn iteration: only the sampled, normalised densities are wanted.
        subprocess.run(
            [binary, "-q", "ot", "--grid", f"{n}x{n}", "--source", f"case:{case}",
             "--target", f"case:{case}", "--method", "sinkhorn", "--max-iterations", "1",
             "--keep-unconverged", "--out", out, "--json"],
            check=True, stdout=subprocess.DEVNULL)
        with h5py.File(out) as f:
            mu = f["fields/source"][...]
            nu = f["fields/target"][...]
            lower = f["grid"].attrs["lower"]
            upper = f["grid"].attrs["upper"]
    return mu, nu, lower, upper


def emd_w2(mu, nu, lower, upper):
    n_y, n_x = mu.shape
    h = (np.asarray(upper) - np.asarray(lower)) / np.array([n_x, n_y])
    xs = lower[0] + (np.arange(n_x) + 0.5) * h[0]
    ys = lower[1] + (np.arange(n_y) + 0.5) * h[1]
    X, Y = np.meshgrid(xs, ys)  # C order [y][x], as stored
    pts = np.stack([X.ravel(), Y.ravel()], axis=1)
    a, b = mu.ravel(), nu.ravel()
    ia, ib = a > 0, b > 0
    a, b = a[ia] / a[ia].sum(), b[ib] / b[ib].sum()
    M = ot.dist(pts[ia], pts[ib], metric="sqeuclidean")
    return float(ot.emd2(a, b, M, numItermax=10_000_000))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/otgrid")
    ap.add_argument("--sizes", default="64")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "zoo_reference.json"))
    args = ap.parse_args()
    table = {"_about": "W2^2 of POT's exact discrete EMD (ot.emd2, squared Euclidean cost) between "
                       "the cell-centre samples of each zoo case; made by benches/zoo_reference.py, "
                       f"POT {ot.__version__}"}
    for case in CASES:
        table[case] = {}
        for n in [int(s) for s in args.sizes.split(",")]:
            mu, nu, lower, upper = densities(args.bin, case, n)
            t = time.perf_counter()
            w2 = emd_w2(mu, nu, lower, upper)
            seconds = time.perf_counter() - t
            table[case][str(n)] = {"w2_squared": w2, "emd_seconds": round(seconds, 2)}
            print(f"{case:<12} {n:>4}  W2^2 = {w2:.10f}  ({seconds:.1f} s)")
    with open(args.out, "w") as f:
        json.dump(table, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
