"""Which rate `engine lr-find` suggests, by two rules, on the course series.

Each sweep is `engine lr-find`'s own (`engine.training.lr_find.find_lr`, its defaults: 1e-7
to 1, 140 steps) for one model, optimizer and seed. On each, two rules read the same
smoothed loss:

- `steepest`: where the smoothed log-loss falls fastest against the log-rate (the rule
  `engine lr-find` used before);
- `valley`: half-way along the longest falling subsequence of the smoothed loss (fastai's
  rule, `engine lr-find`'s now).

A good suggestion lies where the loss is still falling, with a lower loss at a higher
rate: the table gives the smoothed loss at each suggestion and the lowest one after it.

    python benchmarks/lr_find_rules.py
    python benchmarks/lr_find_rules.py --models rnn lstm --optimizers sgd --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.training.config import TrainConfig  # noqa: E402
from engine.training.lr_find import find_lr, suggest  # noqa: E402


def steepest(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    """The earlier rule: the rate where the smoothed log-loss falls fastest."""
    slope = np.gradient(np.log(smoothed), np.log(lrs))
    return float(lrs[int(np.argmin(slope))])


def describe(lrs: np.ndarray, smoothed: np.ndarray, rate: float) -> str:
    """`rate (loss there -> lowest loss at a higher rate)`."""
    index = int(np.argmin(np.abs(lrs - rate)))
    return f"{rate:8.1e} ({smoothed[index]:6.2f} -> {smoothed[index:].min():6.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["rnn", "bilstm", "lstm", "seasonal-gru"])
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    args = parser.parse_args(argv)

    print(f"{'model':14s} {'optimizer':9s} {'seed':>4s}  {'steepest':>26s}  {'valley':>26s}")
    near_start = {"steepest": 0, "valley": 0}
    total = 0
    for model in args.models:
        for optimizer in args.optimizers:
            for seed in args.seeds:
                config = TrainConfig(model=model, optimizer=optimizer, seed=seed)
                sweep = find_lr(config, quiet=True)
                lrs, smoothed = np.asarray(sweep["lrs"]), np.asarray(sweep["smoothed_losses"])
                rules = {"steepest": steepest(lrs, smoothed), "valley": suggest(lrs, smoothed)}
                for name, rate in rules.items():  # within the sweep's first decade
                    near_start[name] += rate < 10 * lrs[0]
                total += 1
                print(
                    f"{model:14s} {optimizer:9s} {seed:4d}  "
                    f"{describe(lrs, smoothed, rules['steepest'])}  "
                    f"{describe(lrs, smoothed, rules['valley'])}",
                    flush=True,
                )
    print(
        f"suggestions within the sweep's first decade (before any real fall): "
        f"steepest {near_start['steepest']} of {total}, valley {near_start['valley']} of {total}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
