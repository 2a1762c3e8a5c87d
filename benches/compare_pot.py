#!/usr/bin/env python3
"""Side-by-side: otgrid (back-and-forth, default settings) against POT's and OTT-JAX's entropic
solvers on the reference Gaussian pair of docs/ot.md, and otgrid's own log-domain Sinkhorn at
the same ε and marginal tolerance (1e-6, L1).

    μ = N((0.4, 0.45), 0.08² I) → ν = N((0.6, 0.55), diag(0.06², 0.10²)) on [0, 1]²

Columns, and what each one runs:
- "POT sinkhorn_log (dense)": POT's own solver, `ot.sinkhorn(a, b, M, reg=ε,
  method="sinkhorn_log", stopThr=1e-6)` on the N × N cost matrix M = |x − y|²/2 (so its
  kernel exp(−M/ε) is otgrid's): log-domain, no ε-scaling, no multiscale, no
  over-relaxation; its stopping measure is the 2-norm of the second marginal's error (otgrid's
  is the L1 norm), checked every 10 iterations. Dense, so only at sizes ≤ --pot-dense-max
  (default 64: a 4096² matrix; 128² would need 2 GB per N × N array).
- "numpy conv. Sinkhorn (POT conv.)": POT has no two-marginal convolutional solver (only
  `ot.bregman.convolutional_barycenter2d`), so this column is a numpy re-implementation of
  Sinkhorn in POT's convolutional convention — the separable kernel
  K = exp(−|x − y|²/(2ε)) applied axis by axis, POT's non-log scaling form — written in this
  script, not POT's code; no ε-scaling, multiscale or over-relaxation.
- otgrid sinkhorn: log-domain with a separable kernel, ε-scaling, multiscale (coarse grids
  for large ε) and adaptive over-relaxation (docs/ot.md); the ratio is given against its plan
  time and against its total time (plan + the Sinkhorn divergence's two symmetric problems,
  which no other column computes).
Every entropic column maps by the barycentric projection T(x) = Σ_y π(x, y) y / μ(x).
geomloss is not run: it needs PyTorch, and its Sinkhorn returns the loss, not the plan.

OTT-JAX (`pip install ott-jax`; its rows are skipped when it is missing) runs its own
`ott.geometry.grid.Grid` geometry (separable cost, kernel applied axis by axis) with
`ott.solvers.linear.sinkhorn.Sinkhorn(threshold=1e-6)` in float64 (`jax_enable_x64`), OTT's
cost |x − y|² with epsilon 2ε (the same kernel), in its default log-sum-exp mode (stable, but
each axis pass forms an n × n × n array: sizes up to --ott-lse-max only) and in its scaling
mode (lse_mode=False, POT's form); map by `out.apply` (the barycentric projection). Its solve
and map are one jitted function, compiled by a first call that is not timed. OTT runs at the
ε of --ott-eps only (default 1e-3, the issue's benchmark ε).

Every row reports wall time and the μ-weighted bulk L2 error against the closed-form map
(bulk: μ > 1 % of its maximum, as `otgrid verify`). Times are medians over --repeat runs
(default 5) of the in-process solve time on every side (otgrid: `otgrid ot --repeat N`, which
reports the run of median time; POT, OTT: N calls in this process; so no time includes
process start or one-time library set-up): for otgrid's Sinkhorn the plan's time
(potentials, hence the map), printed with the total that includes the Sinkhorn divergence's
two symmetric problems (which the other columns do not compute); ratios are the other
solver's median over otgrid's plan time and over otgrid's total time.

Usage: python3 benches/compare_pot.py [--sizes 128,256] [--eps 1e-3,2e-4,1e-4,5e-5]
    [--repeat 5] [--ott-eps 1e-3] [--ott-lse-max 256] [--pot-dense-max 64]
(builds target/release/otgrid first if missing).
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import ot
except ImportError:
    sys.exit("POT is not installed: pip install pot")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "otgrid")
SOURCE = "gaussian:0.4,0.45:0.0064,0,0,0.0064"
TARGET = "gaussian:0.6,0.55:0.0036,0,0,0.01"


def gaussian(x, y, mx, my, vx, vy):
    return np.exp(-((x - mx) ** 2) / (2 * vx) - (y - my) ** 2 / (2 * vy))


def exact_map(x, y):
    """Brenier map between the two Gaussians (diagonal covariances): affine, per axis."""
    return 0.6 + (0.06 / 0.08) * (x - 0.4), 0.55 + (0.10 / 0.08) * (y - 0.45)


def bulk_l2(mu, tx, ty, x, y):
    ex, ey = exact_map(x, y)
    bulk = mu > 0.01 * mu.max()
    w = mu[bulk]
    err = (tx[bulk] - ex[bulk]) ** 2 + (ty[bulk] - ey[bulk]) ** 2
    return math.sqrt((w * err).sum() / w.sum())


def numpy_convolutional_sinkhorn(mu, nu, t, eps, max_iter=5000, tol=1e-6):
    """Sinkhorn with the separable Gibbs kernel in POT's convolutional convention, written
    here in numpy (a re-implementation: POT has no two-marginal convolutional solver).
    Returns (tx, ty, iterations, seconds, status)."""
    k = np.exp(-((t[:, None] - t[None, :]) ** 2) / (2 * eps))  # one axis; K = k ⊗ k

    def apply(a):  # K a for a on the grid (rows y, columns x)
        return k @ a @ k.T

    a = mu / mu.sum()
    b = nu / nu.sum()
    u = np.ones_like(a)
    v = np.ones_like(b)
    start = time.perf_counter()
    status = "ok"
    it = 0
    with np.errstate(all="ignore"):
        for it in range(1, max_iter + 1):
            u = a / apply(v)
            v = b / apply(u)
            if it % 10 == 0:
                marg = u * apply(v)
                if not np.all(np.isfinite(marg)):
                    status = "NaN/inf (kernel underflow)"
                    break
                if np.abs(marg - a).sum() < tol:
                    break
        else:
            status = "iteration limit"
        # Barycentric map: T(x) = Σ_y π(x, y) y / a(x), π = u K v.
        kv = apply(v)
        ty_grid, tx_grid = np.meshgrid(t, t, indexing="ij")
        tx = u * apply(v * tx_grid) / (u * kv)
        ty = u * apply(v * ty_grid) / (u * kv)
    seconds = time.perf_counter() - start
    if not (np.all(np.isfinite(tx[a > 0.01 * a.max()])) and np.all(np.isfinite(ty[a > 0.01 * a.max()]))):
        status = "NaN/inf (kernel underflow)"
    return tx, ty, it, seconds, status


def pot_dense_sinkhorn_log(mu, nu, t, eps, max_iter=5000, tol=1e-6):
    """POT's own `ot.sinkhorn(..., method="sinkhorn_log")` on the dense cost |x − y|²/2.
    Returns (tx, ty, iterations, seconds, status); the matrix set-up is not timed."""
    y, x = np.meshgrid(t, t, indexing="ij")
    pts = np.stack([x.ravel(), y.ravel()], axis=1)
    a = (mu / mu.sum()).ravel()
    b = (nu / nu.sum()).ravel()
    cost = ot.dist(pts, pts, metric="sqeuclidean") / 2.0
    start = time.perf_counter()
    plan, log = ot.sinkhorn(a, b, cost, eps, method="sinkhorn_log", numItermax=max_iter,
                            stopThr=tol, log=True)
    seconds = time.perf_counter() - start
    its = int(log.get("niter", max_iter))
    with np.errstate(all="ignore"):
        row = plan.sum(axis=1)
        tx = (plan @ pts[:, 0]) / row
        ty = (plan @ pts[:, 1]) / row
    status = "ok" if its < max_iter else "iteration limit"
    if not np.all(np.isfinite(plan)):
        status = "NaN/inf"
    return tx.reshape(mu.shape), ty.reshape(mu.shape), its, seconds, status


def ott_sinkhorn_solver(n, eps, lse_mode):
    """OTT-JAX's Sinkhorn on its Grid geometry, jitted: (μ, ν) → (tx, ty, iterations,
    converged)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from ott.geometry import grid
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    t = jnp.asarray((np.arange(n) + 0.5) / n)
    y, x = jnp.meshgrid(t, t, indexing="ij")  # axis 0 = y, axis 1 = x, as μ and ν
    x, y = x.ravel(), y.ravel()

    @jax.jit
    def solve(a, b):
        # OTT's cost is |x − y|² per axis: epsilon 2ε gives the kernel exp(−|x − y|²/(2ε)).
        geom = grid.Grid(x=[t, t], epsilon=2 * eps)
        problem = linear_problem.LinearProblem(geom, a=a, b=b)
        out = sinkhorn.Sinkhorn(threshold=1e-6, max_iterations=5000, lse_mode=lse_mode)(problem)
        # Barycentric map: Σ_y π(x, y) y / a(x) (axis=1 sums over the target index).
        return out.apply(x, axis=1) / a, out.apply(y, axis=1) / a, out.n_iters, out.converged

    return solve


def ott_run(solve, mu, nu, reps):
    """Median time of `reps` calls after one untimed (compiling) call; the last result."""
    import jax

    a, b = (jax.numpy.asarray((m / m.sum()).ravel()) for m in (mu, nu))
    jax.block_until_ready(solve(a, b))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = jax.block_until_ready(solve(a, b))
        times.append(time.perf_counter() - start)
    tx, ty, it, converged = (np.asarray(v) for v in result)
    return statistics.median(times), tx.reshape(mu.shape), ty.reshape(mu.shape), int(it), bool(converged)


def run_otgrid(n, reps, *extra):
    """The run of median time of `reps` solves in one otgrid process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [BIN, "ot", "--source", SOURCE, "--target", TARGET, "--grid", f"{n}x{n}",
             "--json", "-q", "--keep-unconverged", "--repeat", str(reps),
             "--out", os.path.join(tmp, "r.h5"), *extra],
            check=True, capture_output=True, text=True,
        )
    d = json.loads(out.stdout)
    # Sinkhorn: the plan's time (what POT's column computes) first, the total with the
    # Sinkhorn divergence's symmetric problems last.
    plan = d["seconds"] - float(d.get("divergence_seconds", 0.0))
    return plan, d["map_error_l2_bulk"], d["iterations"], d["seconds"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="128,256")
    p.add_argument("--eps", default="1e-3,2e-4,1e-4,5e-5")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--ott-eps", default="1e-3", help="ε values at which OTT-JAX runs")
    p.add_argument("--ott-lse-max", type=int, default=256,
                   help="largest grid for OTT-JAX's log-domain mode (O(n³) memory per pass)")
    p.add_argument("--pot-dense-max", type=int, default=64,
                   help="largest grid for POT's dense sinkhorn_log (N² memory, N = n²)")
    args = p.parse_args()
    ott_eps = {float(e) for e in args.ott_eps.split(",") if e}
    reps = max(1, args.repeat)

    def row(n, name, secs, err, note, ours=None):
        """One table row; with `ours` (otgrid's plan and total times) the time ratios."""
        ratio = ""
        if ours:
            ratio = f"; {secs / ours[0]:.1f}× otgrid's plan time, {secs / ours[1]:.1f}× its total"
        print(f"{n:>5}² {name:<34} {secs:>9.4f} {err:>18.3e}  {note}{ratio}")

    def median_run(run):
        """Runs `run` reps times; its first result with the median of its times (index 0)."""
        results = [run() for _ in range(reps)]
        return (statistics.median(r[0] for r in results),) + tuple(results[0][1:])

    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    try:
        import ott as ott_jax
        ott_version = f", OTT-JAX {ott_jax.__version__}"
    except ImportError:
        ott_version = " (OTT-JAX not installed: its rows are skipped)"
        ott_eps = set()
    print(f"POT {ot.__version__}, numpy {np.__version__}{ott_version}; medians of {reps} runs")
    print(f"{'grid':>6} {'solver':<34} {'time [s]':>9} {'bulk L2 map error':>18}  note")
    for n in (int(s) for s in args.sizes.split(",")):
        t = (np.arange(n) + 0.5) / n
        y, x = np.meshgrid(t, t, indexing="ij")
        mu = gaussian(x, y, 0.4, 0.45, 0.0064, 0.0064)
        nu = gaussian(x, y, 0.6, 0.55, 0.0036, 0.01)
        secs, err, its, _ = run_otgrid(n, reps)
        row(n, "otgrid bfm (default)", secs, err, f"{its} iterations")
        for eps in (float(e) for e in args.eps.split(",")):
            ours, err, its, total = run_otgrid(
                n, reps, "--method", "sinkhorn", "--epsilon", str(eps), "--tol", "1e-6",
                "--max-iterations", "5000")
            row(n, f"otgrid sinkhorn ε={eps:g}", ours, err,
                f"{its} iterations (all levels); {total:.4f} s with the divergence")

            def pot_run():
                tx, ty, it, secs, status = numpy_convolutional_sinkhorn(mu, nu, t, eps)
                return secs, tx, ty, it, status

            times = (ours, total)
            if n <= args.pot_dense_max:
                def pot_dense_run():
                    tx, ty, it, secs, status = pot_dense_sinkhorn_log(mu, nu, t, eps)
                    return secs, tx, ty, it, status

                secs, tx, ty, it, status = median_run(pot_dense_run)
                with np.errstate(all="ignore"):
                    err = bulk_l2(mu, tx, ty, x, y)
                row(n, f"POT sinkhorn_log (dense) ε={eps:g}", secs, err, f"{it} its, {status}",
                    times if status == "ok" and math.isfinite(err) else None)

            secs, tx, ty, it, status = median_run(pot_run)
            err = bulk_l2(mu, tx, ty, x, y) if status.startswith(("ok", "iteration")) else float("nan")
            # A time ratio only where the column returned a plan (a NaN run stops early).
            row(n, f"numpy conv. Sinkhorn (POT conv.) ε={eps:g}", secs, err, f"{it} its, {status}",
                times if math.isfinite(err) else None)
            if eps not in ott_eps:
                continue
            for lse_mode in (True, False):
                name = f"OTT Grid {'lse' if lse_mode else 'scaling'} ε={eps:g}"
                if lse_mode and n > args.ott_lse_max:
                    print(f"{n:>5}² {name:<34} {'—':>9} {'—':>18}  skipped (n > --ott-lse-max)")
                    continue
                solve = ott_sinkhorn_solver(n, eps, lse_mode)
                secs, tx, ty, it, converged = ott_run(solve, mu, nu, reps)
                with np.errstate(all="ignore"):
                    err = bulk_l2(mu, tx, ty, x, y)
                status = "ok" if converged else ("NaN/inf" if not math.isfinite(err) else "not converged")
                row(n, name, secs, err, f"{it} its, {status}", (ours, total) if status == "ok" else None)


if __name__ == "__main__":
    main()
