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
no potential, from the Barenblatt profile at t = 1e-3 to t = 4e-3 in K steps (support
radius 0.225 → 0.318, mass 8πc² with c = 0.1). Every run gets the same cell-centred initial
density, τ and K. otgrid runs each of its time schemes (`--schemes`: `jko`, the scheme the
reference solves, and `bdf2`, the second-order scheme of `otgrid flow --scheme bdf2`); the
reference runs its JKO scheme at each of its ascent steps σ. The error is the L1 distance to
the exact Barenblatt profile at the end, relative to the mass — and, since both schemes keep
the Barenblatt family (the JKO scale solves s − τβ s^{1−1/β} = s_j per step; BDF2 extrapolates
the scale and takes a JKO step of 2τ/3), the L1 distance to the scheme's own exact solution
after K steps: each run's error as a solver of its scheme, without the scheme's error in τ.

Timings: the reference's seconds per step (median over its steps, its inner loop only);
otgrid's whole process (start-up, writing the HDF5 time series) divided by K — the figure
the speed-ups use — beside the per-step time it reports. One run of the script is one
machine window: otgrid and the reference alternate size by size.

    python3 benches/compare_bfm_jko.py                       # 256² and 512², K = 10
    python3 benches/compare_bfm_jko.py --sizes 128 --steps 5 # a quick look
    python3 benches/compare_bfm_jko.py --reference-src ~/src/wgfBFMcodes --schemes bdf2

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
    `analytic::barenblatt`)."""
    s = T0 ** (1.0 / (2.0 * (M - 1.0) + 2.0))
    for _ in range(steps):
        s = jko_step_scale(s, tau)
    return s


def jko_step_scale(s, tau):
    """The scale after one exact JKO step of τ from scale s: the root of s' − τβ s'^{1−1/β} = s
    (bisection to round-off)."""
    beta = 1.0 / (2.0 * (M - 1.0) + 2.0)
    lift = lambda x: tau * beta * x ** (1.0 - 1.0 / beta)  # noqa: E731
    lo, hi = s, s + lift(s)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid - lift(mid) < s:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def bdf2_scale(steps, tau):
    """The Barenblatt scale after `steps` exact BDF2 steps from t = T0 (otgrid's
    `Barenblatt::bdf2_scale`): a JKO step of τ first, then from the extrapolated scale
    (4s_k − s_{k−1})/3 a JKO step of 2τ/3 — dilations extend to dilations."""
    beta = 1.0 / (2.0 * (M - 1.0) + 2.0)
    previous = T0 ** beta
    if steps == 0:
        return previous
    current = jko_step_scale(previous, tau)
    for _ in range(1, steps):
        previous, current = current, jko_step_scale((4.0 * current - previous) / 3.0, 2.0 * tau / 3.0)
    return current


def scheme_scale(scheme, steps, tau):
    return bdf2_scale(steps, tau) if scheme == "bdf2" else jko_scale(steps, tau)


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


def run_otgrid(binary, n, steps, tau, scheme, workdir):
    import h5py

    out = os.path.join(workdir, f"otgrid_{n}_{scheme}.h5")
    command = [
        binary, "flow", "-q", "--grid", f"{n}x{n}", "--initial", barenblatt_expression(),
        "--energy", "porous:2", "--tau", repr(tau), "--steps", str(steps), "--scheme", scheme,
        "--out", out, "--json",
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
    parser.add_argument("--steps", type=int, default=10, help="time steps from t = 1e-3 to 4e-3")
    parser.add_argument(
        "--schemes",
        nargs="+",
        choices=["jko", "bdf2"],
        default=["jko", "bdf2"],
        help="otgrid's time schemes to run (`otgrid flow --scheme`); the reference runs the JKO scheme",
    )
    parser.add_argument("--reference-src", help="a checkout of wonjunee/wgfBFMcodes (default: clone it)")
    parser.add_argument(
        "--sigma",
        type=float,
        nargs="*",
        default=[0.05, 0.4],
        help="the reference's ascent steps to run (0.05 is its example's; 0.4 was its fastest at 128²; "
        "none: otgrid only, the reference not built)",
    )
    parser.add_argument("--theta1", type=float, default=1.0, help="the reference's metric weight (its example's)")
    parser.add_argument("--theta2", type=float, default=0.001, help="the reference's metric weight (its example's)")
    parser.add_argument("--otgrid", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "otgrid"))
    parser.add_argument("--json-out", help="write the rows as JSON here")
    args = parser.parse_args()
    if not os.access(args.otgrid, os.X_OK):
        sys.exit(f"error: {args.otgrid} not found; run cargo build --release first")
    tau = (T1 - T0) / args.steps
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        if args.sigma:
            bfmgf, build = build_reference(reference_checkout(args.reference_src), workdir)
            driver = reference_driver(build)
        for n in args.sizes:
            exact = barenblatt(n, T1)
            mass = barenblatt(n, T0).mean()
            # Each scheme's own solution after K steps (the exact recursion of the Barenblatt
            # scale): a solver's error without the scheme's error in τ.
            own = {scheme: barenblatt_at_scale(n, scheme_scale(scheme, args.steps, tau)) for scheme in ("jko", "bdf2")}
            runs = []
            for scheme in args.schemes:
                rho, whole, summary = run_otgrid(args.otgrid, n, args.steps, tau, scheme, workdir)
                runs.append({
                    "code": f"otgrid --scheme {scheme}",
                    "scheme": scheme,
                    "seconds_per_step": whole / args.steps,
                    "seconds_per_step_reported": summary_seconds_per_step(summary),
                    "rho": rho,
                })
            for sigma in args.sigma:
                rho, seconds, iterations = run_reference(bfmgf, driver, n, args.steps, tau, sigma, args.theta1, args.theta2)
                runs.append({
                    "code": f"reference σ = {sigma}",
                    "scheme": "jko",
                    "sigma": sigma,
                    "seconds_per_step": float(np.median(seconds)),
                    "seconds_per_step_all": seconds,
                    "iterations": iterations,
                    "rho": rho,
                })
            for run in runs:
                rho = run.pop("rho")
                run.update({
                    "n": n,
                    "steps": args.steps,
                    "tau": tau,
                    "l1_over_mass": float(np.abs(rho - exact).mean() / exact.mean()),
                    "l1_to_own_scheme_over_mass": float(np.abs(rho - own[run["scheme"]]).mean() / exact.mean()),
                    "scheme_l1_over_mass": float(np.abs(own[run["scheme"]] - exact).mean() / exact.mean()),
                    "mass_drift": float(abs(rho.mean() - mass) / mass),
                    "support_radius": support_radius(rho, n),
                    "radius_1e-3": support_radius(rho, n, 1e-3),
                    "exact_support_radius": support_radius(exact, n),
                    "exact_radius_1e-3": support_radius(exact, n, 1e-3),
                })
                rows.append(run)
                print(json.dumps({k: v for k, v in run.items() if not isinstance(v, list)}), flush=True)
    print()
    print(
        "| grid | code | s/step (reference: median of its steps; otgrid: whole process / K; reported) "
        "| L1/M to exact | L1/M to its scheme's exact solution (the scheme's own L1/M) | mass drift "
        "| support radius (exact) | radius of ρ > 1e-3 max (exact) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        reported = f"; {r['seconds_per_step_reported']:.3g}" if "seconds_per_step_reported" in r else ""
        print(
            f"| {r['n']}² | {r['code']} | {r['seconds_per_step']:.3g}{reported} | {r['l1_over_mass']:.3e} | "
            f"{r['l1_to_own_scheme_over_mass']:.2e} ({r['scheme_l1_over_mass']:.3e}) | {r['mass_drift']:.1e} | "
            f"{r['support_radius']:.4f} ({r['exact_support_radius']:.4f}) | "
            f"{r['radius_1e-3']:.4f} ({r['exact_radius_1e-3']:.4f}) |"
        )
    print()
    print("| grid | otgrid scheme | against reference σ | speed-up per step (whole process) | L1/M otgrid / reference |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        ours = [r for r in rows if r["n"] == n and "sigma" not in r]
        theirs = [r for r in rows if r["n"] == n and "sigma" in r]
        for o in ours:
            for t in theirs:
                print(
                    f"| {n}² | {o['scheme']} | {t['sigma']} | {t['seconds_per_step'] / o['seconds_per_step']:.1f}× | "
                    f"{o['l1_over_mass']:.3e} / {t['l1_over_mass']:.3e} |"
                )
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
