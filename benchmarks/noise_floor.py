"""How close a forecaster of the course series can come: the noise floor of each realisation.

The course generator is trend + seasonality + Gaussian noise (`engine.series.course`). The
best possible one-step forecast is the noiseless series itself, and its MAE on a
realisation's validation part, the mean absolute noise there, is that realisation's floor:
5 * sqrt(2/pi) = 3.99 on average, more or less on a given draw. A model's MAE above it, its
excess, is what the model can still win.

    python benchmarks/noise_floor.py                     # the reported series and 3 siblings
    python benchmarks/noise_floor.py --noise-seeds 42 1 2 3 --target 4.25

With `--target`, each line also gives the excess a model may have on that realisation and
still reach the target. With `--runs DIR` (a `defaults_study.py --work-dir`), the
validation MAE of every run found there for a sibling, beside its floor.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.series.course import COURSE_SPLIT, course_series  # noqa: E402


def noise_floor(noise_seed: int, split: int = COURSE_SPLIT) -> float:
    """The MAE of the noiseless series as the forecast of realisation `noise_seed`'s
    validation part `[split:]`: its mean absolute noise there."""
    _, noisy = course_series(seed=noise_seed)
    _, clean = course_series(noise_level=0.0)
    return float(np.mean(np.abs(noisy[split:] - clean[split:])))


def study_runs(work: Path) -> dict[int, list[float]]:
    """`{noise seed: [validation MAE of each single run, one per training seed]}` from a
    defaults_study work dir; an ensemble's members count as the single runs they are, and a
    default run that is also a member counts once. Exits when one seed has two figures:
    runs of different settings, which this cannot tell apart."""
    by_seed: dict[int, dict[int, float]] = {}
    for summary_path in sorted(work.glob("runs/course-noise*/summary.json")):
        noise_seed = int(summary_path.parent.name.removeprefix("course-noise").split("-")[0])
        summary = json.loads(summary_path.read_text())
        members = (summary.get("ensemble") or {}).get("members")
        singles = (
            [(m["seed"], m["val_mae"]) for m in members]
            if members
            else [(summary["config"]["seed"], summary["val_mae"])]
        )
        found = by_seed.setdefault(noise_seed, {})
        for seed, mae in singles:
            if found.setdefault(seed, mae) != mae:
                raise SystemExit(
                    f"{work}: two runs of course-noise{noise_seed} with seed {seed} differ "
                    "(different settings): give a work dir that holds one default"
                )
    return {noise: list(maes.values()) for noise, maes in by_seed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[42, 1, 2, 3])
    parser.add_argument("--target", type=float, help="an MAE goal: the excess it allows")
    parser.add_argument("--runs", type=Path, help="a defaults_study.py --work-dir")
    args = parser.parse_args()
    runs = study_runs(args.runs) if args.runs else {}
    print(f"noise floor: 5 * sqrt(2/pi) = {5 * np.sqrt(2 / np.pi):.4f} on average")
    for seed in args.noise_seeds:
        floor = noise_floor(seed)
        line = f"  noise seed {seed:>3}{' (reported)' if seed == 42 else '':<11} floor {floor:.4f}"
        if args.target is not None:
            line += f"  excess allowed by {args.target}: {args.target - floor:.4f}"
        maes = runs.get(seed, []) if seed != 42 else []  # the study never trains on seed 42
        if maes:
            mean = float(np.mean(maes))
            line += f"  {len(maes)} single runs: MAE {mean:.4f}, excess {mean - floor:.4f}"
        print(line)


if __name__ == "__main__":
    main()
