#!/usr/bin/env python3
"""POT references for otgrid's sample metrics: `python3 benches/sample_reference.py`.

Writes benches/sample_reference.json: small deterministic point sets and POT's exact
squared W2 between their uniform measures (`ot.emd2` with the squared Euclidean cost), which
`otgrid::sample::metrics`'s test compares with the assignment W2 (to 1e-10). POT is called,
not re-implemented.
"""
import json
import os

import numpy as np
import ot

rng = np.random.default_rng(20261202)
cases = []
for n, d in [(40, 2), (30, 3), (64, 2)]:
    a = rng.random((n, d))
    b = rng.normal(0.5, 0.2, size=(n, d))
    w = np.full(n, 1.0 / n)
    cost = ot.dist(a, b, metric="sqeuclidean")
    cases.append({"n": n, "d": d, "a": a.tolist(), "b": b.tolist(),
                  "emd2": float(ot.emd2(w, w, cost, numItermax=10**7))})
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_reference.json")
with open(out, "w") as f:
    json.dump({"pot_version": ot.__version__, "cases": cases}, f, indent=1)
print(f"wrote {out}: " + ", ".join(f"n={c['n']} d={c['d']} W2^2={c['emd2']:.12e}" for c in cases))
