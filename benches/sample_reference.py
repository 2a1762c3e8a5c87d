#!/usr/bin/env python3
"""POT references for otgrid's sample metrics: `python3 benches/sample_reference.py`.

Writes benches/sample_reference.json: small deterministic point sets, POT's exact squared W2
between their uniform measures (`ot.emd2` with the squared Euclidean cost), which
`otgrid::sample::metrics`'s test compares with the assignment W2 (to 1e-10), and their
Sinkhorn divergence at eps = 0.01 assembled from the plans of POT's `ot.sinkhorn`
(log domain), which `otgrid::sample::divergence`'s test compares with its own. POT's solvers
are called, not re-implemented.
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
# Sinkhorn divergences S_eps = OT_eps(a,b) - (OT_eps(a,a) + OT_eps(b,b))/2 with
# OT_eps = <P, C> + eps KL(P | a x b), each plan P from POT's own ot.sinkhorn (log domain,
# tight tolerance); the cost is |x - y|^2.
def ot_eps(x, y, eps):
    wx, wy = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    cost = ot.dist(x, y, metric="sqeuclidean")
    plan = ot.sinkhorn(wx, wy, cost, eps, method="sinkhorn_log", stopThr=1e-14,
                       numItermax=10**6)
    ref = np.outer(wx, wy)
    mask = plan > 0
    return float((plan * cost).sum() + eps * (plan[mask] * np.log(plan[mask] / ref[mask])).sum())


for c in cases:
    a, b = np.array(c["a"]), np.array(c["b"])
    eps = 0.01
    c["sinkhorn_epsilon"] = eps
    c["sinkhorn_divergence"] = ot_eps(a, b, eps) - 0.5 * (ot_eps(a, a, eps) + ot_eps(b, b, eps))
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_reference.json")
with open(out, "w") as f:
    json.dump({"pot_version": ot.__version__, "cases": cases}, f, indent=1)
print(f"wrote {out}: " + ", ".join(
    f"n={c['n']} d={c['d']} W2^2={c['emd2']:.12e} S_eps={c['sinkhorn_divergence']:.12e}"
    for c in cases))
