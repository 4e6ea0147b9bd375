"""``dynsweep data pendulum`` (generate simulations) and ``dynsweep data pendulum-lyapunov``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cliargs import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from trainables.common.commands import DataCommand, add_root
from trainables.common.progress import progress_printer


def _add_pendulum(p: argparse.ArgumentParser) -> None:
    from .dataset import INTEGRATORS

    p.add_argument("--sims", type=positive_int, required=True, help="number of simulations")
    p.add_argument("--t-end", type=positive_float, default=20.0, help="simulated span per simulation, s (default 20)")
    p.add_argument("--dt", type=positive_float, default=0.01, help="sample spacing, s (default 0.01)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--random-params", action="store_true",
                   help="draw l1, l2 (m) and m1, m2 (kg) per simulation, uniform in [0.5, 1.5]")
    p.add_argument("--integrator", choices=INTEGRATORS, default="dop853",
                   help="dop853 / rk45 (scipy, tolerances 1e-10) or verlet (symplectic; default dop853)")
    p.add_argument("--substeps", type=positive_int, default=10, help="verlet steps per sample (default 10)")
    p.add_argument("--theta-max", type=non_negative_float, default=135.0,
                   help="initial angles in [-x, x] degrees (default 135)")
    p.add_argument("--omega-max", type=non_negative_float, default=0.0,
                   help="initial angular velocities in [-x, x] rad/s (default 0)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="processes (default: the cores this process may use)")
    p.add_argument("--out", type=Path, default=None,
                   help="file to write (default: <datasets folder>/<standard name>.parquet)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    add_root(p)


def _run_pendulum(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from .dataset import (
        ENERGY_KEY,
        PendulumSpec,
        default_root,
        ensure_dataset,
        write_dataset,
    )

    spec = PendulumSpec(sims=args.sims, t_end=args.t_end, dt=args.dt, seed=args.seed, random_params=args.random_params,
                        integrator=args.integrator, theta_max_deg=args.theta_max, omega_max=args.omega_max,
                        substeps=args.substeps)
    show = progress_printer(f"data pendulum {spec.name}", "simulations")
    if args.out is not None or args.overwrite:
        path = args.out or (args.root or default_root()) / f"{spec.name}.parquet"
        write_dataset(spec, path, overwrite=args.overwrite, workers=args.workers, progress=show)
        created = True
    else:
        path, created = ensure_dataset(spec, args.root, progress=show)
    md = pq.read_metadata(path)
    drift = (md.metadata or {}).get(ENERGY_KEY.encode(), b"?").decode()
    print(("wrote " if created else "exists, same parameters: ")
          + f"{path}  ({spec.sims} simulations x {spec.samples} samples = {md.num_rows} rows; "
            f"max relative energy error {drift})")
    return 0


def _add_lyapunov(p: argparse.ArgumentParser) -> None:
    p.add_argument("--angle", type=float, default=120.0, help="both arms released from rest at this angle, degrees")
    p.add_argument("--t-end", type=positive_float, default=200.0, help="integration span, s (default 200)")
    p.add_argument("--tau", type=positive_float, default=0.1, help="renormalisation interval, s (default 0.1)")
    p.add_argument("--plot", type=Path, default=None, help="draw the running estimate into this PNG")


def _run_lyapunov(args: argparse.Namespace) -> int:
    import numpy as np

    from .lyapunov import convergence_table, true_exponent

    est = true_exponent(np.radians([args.angle, args.angle, 0.0, 0.0]), t_end=args.t_end, tau=args.tau)
    print(f"double pendulum, l = 1 m, m = 1 kg, g = 9.81 m/s^2, released from rest at {args.angle:g} degrees")
    print("  t (s)   running largest Lyapunov exponent (1/s)")
    for t, value in convergence_table(est, tuple(sorted({10, 25, 50, 100, 150, 200, 400, args.t_end}))):
        print(f"  {t:6.0f}  {value:8.4f}")
    lyap_time = f"{1 / est.exponent:.2f} s" if est.exponent > 0 else "infinite"
    print(f"largest Lyapunov exponent {est.exponent:.4f} 1/s, Lyapunov time {lyap_time}"
          + ("" if est.exponent > 0.05 else "  (regular motion: the estimate decays like log(t)/t)"))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(est.times, est.running)
        ax.set(xlabel="t (s)", ylabel="running estimate (1/s)", xscale="log",
               title=f"largest Lyapunov exponent, {args.angle:g} degrees: {est.exponent:.3f} 1/s")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return 0 if math.isfinite(est.exponent) else 1


COMMANDS: dict[str, DataCommand] = {
    "pendulum": DataCommand("generate double-pendulum simulations (Parquet)", _add_pendulum, _run_pendulum),
    "pendulum-lyapunov": DataCommand("largest Lyapunov exponent of the true double pendulum, with its convergence",
                                     _add_lyapunov, _run_lyapunov),
}


def describe(path: Path) -> str | None:
    """``dynsweep data ls`` line for a pendulum simulation file (None for anything else)."""
    if path.suffix != ".parquet" or not path.is_file():
        return None
    import pyarrow.parquet as pq

    from trainables.common.errors import DataError
    from trainables.common.parquet_store import read_dynsweep_metadata

    from .dataset import ENERGY_KEY, FORMAT

    try:
        meta = read_dynsweep_metadata(path)
    except DataError:
        return None
    if meta.get("format") != FORMAT:
        return None
    md = pq.read_metadata(path)
    p = meta.get("params", {})
    drift = (md.metadata or {}).get(ENERGY_KEY.encode(), b"?").decode()
    what = (f"{p['sims']} simulations x {p['t_end']:g} s at dt {p['dt']:g} s, {p['integrator']}, " if p else "")
    return (f"{path}  (double pendulum: {what}{md.num_rows} rows, max energy error {drift}, "
            f"sha256 {meta['content_sha256'][:12]})")
