#!/usr/bin/env python3
"""otgrid's JKO flow against the reference back-and-forth JKO code on one porous-medium problem.

The reference is the code of Jacobs, Lee & Léger's back-and-forth method for Wasserstein
gradient flows, as published in the public repository wonjunee/wgfBFMcodes (its `python/`
directory: the C++ kernels behind the `bfmgf` pybind11 module — fast Legendre transforms,
push-forwards, the dual's mass constraint — and the driver loop of `python/BFM-porous.py`).
Nothing of it is vendored here: the set-up below builds the module from a checkout of that
repository (cloned on the first run, or given with `--reference-src`) and runs the driver's
own `iterate_forward` / `iterate_backward`, taken from `BFM-porous.py` as published, with the
example's stopping rule (relative change of the step errors below 1e-3 · mass, at most 500
iterations) and its warm start (φ and ψ carried from step to step).

The problem: ∂ₜρ = Δρ² (the porous medium, m = 2, energy ∫ρ²) on the unit square, Neumann,
no potential, from the Barenblatt profile at t = 1e-3 to t = 4e-3 in K JKO steps (support
radius 0.225 → 0.318, mass 8πc² with c = 0.1). Both codes get the same cell-centred initial
density, τ and K; the error is the L1 distance to the exact Barenblatt profile at the end,
relative to the mass — and, since the JKO scheme keeps the Barenblatt family (its scale
solves s − τβ s^{1−1/β} = s_j per step), the L1 distance to the scheme's own solution after K
steps: each code's error as a JKO solver, without the scheme's error in τ, which both share.

Timings: the reference's seconds per JKO step (its inner loop only); otgrid's per step as
it reports it and — the figure the ratio uses — its whole process (start-up, writing the
HDF5 time series) divided by K.

    python3 benches/compare_bfm_jko.py                       # 256² and 512², K = 10
    python3 benches/compare_bfm_jko.py --sizes 128 --steps 5 # a quick look
    python3 benches/compare_bfm_jko.py --reference-src ~/src/wgfBFMcodes

Needs: numpy, scipy, h5py, a C++ compiler, pybind11 (pip-installed when missing) and
fftw3.h (Debian: libfftw3-dev; the module includes it); `cargo build --release` first.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REFERENCE_REPOSITORY = "https://github.com/wonjunee/wgfBFMcodes"
DRIVER_MARKER = "### ----- No need to modfy --------"
M, C, T0, T1 = 2.0, 0.1, 1e-3, 4e-3


def barenblatt(n, t):
    """The Barenblatt profile of ∂ₜρ = Δρᵐ in 2D centred in the unit square, at cell centres."""
    alpha = 2.0 / (2.0 * (M - 1.0) + 2.0)
    beta = alpha / 2.0
    k = alpha * (M - 1.0) / (4.0 * M)
    c = (np.arange(n) + 0.5) / n
    xx, yy = np.meshgrid(c, c)
    r2 = (xx - 0.5) ** 2 + (yy - 0.5) ** 2
    core = np.maximum(C - k * r2 * t ** (-2.0 * beta), 0.0)
    return t ** (-alpha) * core ** (1.0 / (M - 1.0))


def jko_scale(steps, tau):
    """The Barenblatt scale after `steps` exact JKO steps from t = T0 (the scheme keeps the
    self-similar family: s − τβ s^{1−1/β} = s_j per step, β = 1/(d(m−1)+2); otgrid's
    `analytic::barenblatt`). Bisection to round-off."""
    beta = 1.0 / (2.0 * (M - 1.0) + 2.0)
    lift = lambda s: tau * beta * s ** (1.0 - 1.0 / beta)  # noqa: E731
    s = T0 ** beta
    for _ in range(steps):
        lo, hi = s, s + lift(s)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid - lift(mid) < s:
                lo = mid
            else:
                hi = mid
        s = 0.5 * (lo + hi)
    return s


def barenblatt_at_scale(n, s):
    """The profile at scale s = t^β (cell centres): barenblatt(n, t) for s = t^β."""
    beta = 1.0 / (2.0 * (M - 1.0) + 2.0)
    return barenblatt(n, s ** (1.0 / beta))


def barenblatt_expression():
    """The same profile (m = 2) as an otgrid expression in x, y."""
    return f"max({C}-((x-0.5)^2+(y-0.5)^2)/(16*sqrt({T0})),0)/sqrt({T0})"


def reference_checkout(path):
    if path:
        if not os.path.isfile(os.path.join(path, "python", "BFM-porous.py")):
            sys.exit(f"error: {path} is not a checkout of wonjunee/wgfBFMcodes (no python/BFM-porous.py)")
        return path
    cache = os.path.join(os.path.expanduser("~"), ".cache", "otgrid", "wgfBFMcodes")
    if not os.path.isdir(cache):
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        clone = subprocess.run(["git", "clone", "--depth", "1", REFERENCE_REPOSITORY, cache])
        if clone.returncode != 0:
            sys.exit(
                f"error: could not clone {REFERENCE_REPOSITORY}; give a checkout with --reference-src DIR"
            )
    return cache


def build_reference(src, workdir):
    """Builds the `bfmgf` module from the checkout's python/ sources and imports it."""
    try:
        import pybind11  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pybind11"], check=True)
    build = os.path.join(workdir, "python")
    shutil.copytree(os.path.join(src, "python"), build, ignore=shutil.ignore_patterns("figures", "*.so"))
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=build,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.returncode != 0:
        sys.exit("error: building the reference failed (fftw3.h: apt-get install libfftw3-dev)\n" + done.stdout[-3000:])
    sys.path.insert(0, build)
    import bfmgf

    return bfmgf, build


def reference_driver(build):
    """The driver functions of BFM-porous.py, exactly as published (between its markers)."""
    from scipy.fftpack import dctn, idctn

    with open(os.path.join(build, "BFM-porous.py"), encoding="utf-8") as f:
        text = f.read()
    parts = text.split(DRIVER_MARKER)
    if len(parts) < 3:
        sys.exit("error: BFM-porous.py does not have the driver markers this script expects")
    namespace = {"np": np, "dctn": dctn, "idctn": idctn}
    exec(parts[1], namespace)
    return namespace


def run_reference(bfmgf, driver, n, steps, tau, sigma, theta1, theta2):
    """The example's outer loop of BFM-porous.py on the Barenblatt problem (no plotting)."""
    mu = barenblatt(n, T0)
    mass = mu.mean()
    driver["mass"] = mass
    method = bfmgf.BFM(n, n, tau)
    flt2d = bfmgf.FLT2D(n, n)
    kernel = driver["initialize_kernel"](n, n, 1.0 / n)
    DUstar = np.ones((n, n)).astype("float64")
    V = np.zeros((n, n)).astype("float64")
    phi = np.zeros((n, n)).astype("float64")
    psi = np.zeros((n, n)).astype("float64")
    push = np.zeros((n, n)).astype("float64")
    phi[:] = V
    seconds, iterations = [], []
    for _ in range(steps):
        start = time.perf_counter()
        error_for_prev = 1
        error_bac_prev = 1
        count = 0
        for _ in range(500):
            count += 1
            args = (flt2d, method, push, psi, phi, mu, DUstar, V, kernel, n, tau, sigma, theta1, theta2, M)
            error_for = driver["iterate_forward"](*args)
            error_bac = driver["iterate_backward"](*args)
            error1 = np.abs((error_for - error_for_prev) / error_for_prev)
            error2 = np.abs((error_bac - error_bac_prev) / error_bac_prev)
            if min(error1, error2) < 1e-3 * mass:
                break
            error_for_prev = error_for
            error_bac_prev = error_bac
        method.calculate_DUstar(DUstar, phi, V, M, mass)
        mu[:] = DUstar
        seconds.append(time.perf_counter() - start)
        iterations.append(count)
    return mu.copy(), seconds, iterations


def run_otgrid(binary, n, steps, tau, workdir):
    import h5py

    out = os.path.join(workdir, f"otgrid_{n}.h5")
    command = [
        binary, "flow", "-q", "--grid", f"{n}x{n}", "--initial", barenblatt_expression(),
        "--energy", "porous:2", "--tau", repr(tau), "--steps", str(steps), "--out", out, "--json",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    whole = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: otgrid flow failed: {done.stderr.strip()}")
    summary = json.loads(done.stdout)
    with h5py.File(out, "r") as f:
        rho = f["steps"][str(steps)]["rho"][...]
    return rho, whole, summary


def summary_seconds_per_step(summary):
    for key in ("seconds_per_step", "mean_seconds_per_step"):
        if key in summary:
            return summary[key]
    return float("nan")


def support_radius(rho, n, level=0.0):
    """The largest distance from the centre of a cell where ρ > level · max ρ."""
    c = (np.arange(n) + 0.5) / n
    xx, yy = np.meshgrid(c, c)
    r = np.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    inside = rho > level * rho.max()
    return float(r[inside].max()) if np.any(inside) else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=10, help="JKO steps from t = 1e-3 to 4e-3")
    parser.add_argument("--reference-src", help="a checkout of wonjunee/wgfBFMcodes (default: clone it)")
    parser.add_argument(
        "--sigma",
        type=float,
        nargs="+",
        default=[0.05, 0.4],
        help="the reference's ascent steps to run (0.05 is its example's; 0.4 was its fastest at 128²)",
    )
    parser.add_argument("--theta1", type=float, default=1.0, help="the reference's metric weight (its example's)")
    parser.add_argument("--theta2", type=float, default=0.001, help="the reference's metric weight (its example's)")
    parser.add_argument("--otgrid", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "otgrid"))
    parser.add_argument("--json-out", help="write the rows as JSON here")
    args = parser.parse_args()
    if not os.access(args.otgrid, os.X_OK):
        sys.exit(f"error: {args.otgrid} not found; run cargo build --release first")
    tau = (T1 - T0) / args.steps
    src = reference_checkout(args.reference_src)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        bfmgf, build = build_reference(src, workdir)
        driver = reference_driver(build)
        for n in args.sizes:
            exact = barenblatt(n, T1)
            # The JKO scheme's own solution after K steps: the solvers' error without the τ error.
            scheme = barenblatt_at_scale(n, jko_scale(args.steps, tau))
            mass = barenblatt(n, T0).mean()
            ot_rho, ot_whole, summary = run_otgrid(args.otgrid, n, args.steps, tau, workdir)
            for sigma in args.sigma:
                ref_rho, ref_seconds, ref_iterations = run_reference(
                    bfmgf, driver, n, args.steps, tau, sigma, args.theta1, args.theta2
                )
                row = {
                    "n": n,
                    "steps": args.steps,
                    "tau": tau,
                    "sigma": sigma,
                    "reference_seconds_per_step_median": float(np.median(ref_seconds)),
                    "reference_seconds_per_step": ref_seconds,
                    "reference_iterations": ref_iterations,
                    "reference_l1_over_mass": float(np.abs(ref_rho - exact).mean() / exact.mean()),
                    "reference_l1_to_jko_over_mass": float(np.abs(ref_rho - scheme).mean() / exact.mean()),
                    "scheme_l1_over_mass": float(np.abs(scheme - exact).mean() / exact.mean()),
                    "reference_mass_drift": float(abs(ref_rho.mean() - mass) / mass),
                    "reference_support_radius": support_radius(ref_rho, n),
                    "otgrid_seconds_per_step_whole_process": ot_whole / args.steps,
                    "otgrid_seconds_per_step_reported": summary_seconds_per_step(summary),
                    "otgrid_l1_over_mass": float(np.abs(ot_rho - exact).mean() / exact.mean()),
                    "otgrid_l1_to_jko_over_mass": float(np.abs(ot_rho - scheme).mean() / exact.mean()),
                    "otgrid_mass_drift": float(abs(ot_rho.mean() - mass) / mass),
                    "otgrid_support_radius": support_radius(ot_rho, n),
                    "exact_support_radius": support_radius(exact, n),
                    "reference_radius_1e-3": support_radius(ref_rho, n, 1e-3),
                    "otgrid_radius_1e-3": support_radius(ot_rho, n, 1e-3),
                    "exact_radius_1e-3": support_radius(exact, n, 1e-3),
                }
                row["speedup_whole_process"] = (
                    row["reference_seconds_per_step_median"] / row["otgrid_seconds_per_step_whole_process"]
                )
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), flush=True)
    print()
    print(
        "| grid | reference σ | reference s/step (median) | otgrid s/step (whole process; reported) | speed-up "
        "| L1/M reference | L1/M otgrid | L1/M to the JKO solution ref / otgrid (JKO's own L1/M) "
        "| support radius ref / otgrid / exact | radius of ρ > 1e-3 max ref / otgrid / exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']}² | {r['sigma']} | {r['reference_seconds_per_step_median']:.3g} | "
            f"{r['otgrid_seconds_per_step_whole_process']:.3g}; {r['otgrid_seconds_per_step_reported']:.3g} | "
            f"{r['speedup_whole_process']:.1f}× | {r['reference_l1_over_mass']:.3e} | {r['otgrid_l1_over_mass']:.3e} | "
            f"{r['reference_l1_to_jko_over_mass']:.2e} / {r['otgrid_l1_to_jko_over_mass']:.2e} "
            f"({r['scheme_l1_over_mass']:.3e}) | "
            f"{r['reference_support_radius']:.4f} / {r['otgrid_support_radius']:.4f} / {r['exact_support_radius']:.4f} | "
            f"{r['reference_radius_1e-3']:.4f} / {r['otgrid_radius_1e-3']:.4f} / {r['exact_radius_1e-3']:.4f} |"
        )
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
