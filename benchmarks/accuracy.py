"""Honest accuracy of the default `engine train` on three series, one-step and multi-step.

Both are set beside the baselines and an autoregression fitted on the same training part,
scored on the same points.

Series: `course` (`--data synthetic`, split 1000 of 1461), `sunspots` (pmdarima's 2,820
monthly values, `--split 0.8`) and `taylor` (pmdarima's 4,032 half-hourly electricity
demands, `--split 0.8`), written as CSVs and trained with the plain command, e.g.
`engine train --data sunspots.csv --column sunspots --split 0.8`. Each seed is one run.

- One-step: the run's validation MAE (`val_mae`, each forecast from the true previous
  values) beside the engine's baselines on the same points.
- Multi-step: the run's own backtest (`summary["backtest"]`: forecasts fed back, from every
  origin of the validation part) beside naive, seasonal naive and drift on those origins.
- Reference: `statsmodels` AutoReg with a constant, lags 1..30 ("AR(30)") and, for a
  seasonal series (the run's resolved period > 0), lags 1..30 plus period-1, period,
  period+1 ("seasonal AR"). Fitted once on the training part `series[:split]`; its
  parameters stay fixed. One-step forecasts over the whole validation part; multi-step ones
  from exactly the backtest's origins and horizon, fed back recursively, scored with
  `engine.training.backtest.horizon_errors` (the backtest's own MASE scale).

- Intervals: the run's 90% conformal band (calibrated on the selection slice by `engine
  train`, `summary["backtest"]["band"]`): how often it holds the truth at each step over the
  backtest's origins, and its width, beside the AR's 90% prediction interval, statsmodels'
  own (`AutoRegResults.get_prediction(dynamic=True)`: Gaussian, from the training fit's
  residual variance; for a fixed fit its width depends on the step alone), on the same
  origins.

Nothing here chooses anything on the validation part: the engine's defaults, the AR's fixed
lags and the training part's fit are all there is. The README's figures come from the first:

    python benchmarks/accuracy.py                      # all three series, seed 42
    python benchmarks/accuracy.py --series sunspots --seeds 1 2 3 --json
    python benchmarks/accuracy.py --series course -- --epochs 2 --model rnn   # a quick check

Arguments after `--` go to every `engine train`. `--work-dir DIR` keeps the CSVs and the run
dirs (`DIR/runs/SERIES-seedS`, replaced on a rerun). Exit 0 whatever the figures (it is a
measurement); 1 when a training run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.series.load import load_series  # noqa: E402
from engine.training.backtest import horizon_errors  # noqa: E402

SERIES = ("course", "sunspots", "taylor")
STEPS = (1, 2, 5, 10, 20, 30)
AR_LAGS = 30
COVERAGE = 0.9  # the nominal level of both intervals
COURSE_GOAL = 4.25
ORIGIN_KEYS = ("horizon", "stride", "first_origin", "last_origin", "period", "mase_scale")


def write_series(name: str, work: Path) -> tuple[str, str | None, list[str]]:
    """Write the series' CSV into `work`: (data, column, its `engine train` data flags)."""
    if name == "course":
        return "synthetic", None, ["--data", "synthetic"]
    import pmdarima.datasets

    path = work / f"{name}.csv"
    if name == "sunspots":  # index "Jan 1749" -> ISO month "1749-01"
        values = pmdarima.datasets.load_sunspots(as_series=True)
        months = [datetime.strptime(label, "%b %Y").strftime("%Y-%m") for label in values.index]
        rows = ["month,sunspots"] + [f"{m},{v!r}" for m, v in zip(months, values.tolist())]
        column = "sunspots"
    else:
        values = pmdarima.datasets.load_taylor(as_series=True)
        rows = ["demand"] + [repr(v) for v in values.tolist()]
        column = "demand"
    path.write_text("\n".join(rows) + "\n")
    return str(path), column, ["--data", str(path), "--column", column, "--split", "0.8"]


def train(flags: list[str], run_dir: Path) -> dict:
    """One `engine train` in a fresh process; its JSON summary (exit 1 if it fails)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "engine", "train", *flags]
    command += ["--run-dir", str(run_dir), "--quiet", "--json"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
        raise SystemExit(1)
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:  # something else on stdout: the run dir has the same summary
        return json.loads((run_dir / "summary.json").read_text())


def ar_half_widths(train_part, lags, horizon: int, coverage: float = COVERAGE) -> np.ndarray:
    """`[horizon]`: half the width of statsmodels' `coverage` prediction interval of the
    AR fitted on `train_part`, steps 1..horizon (fed back: `dynamic=True`)."""
    from statsmodels.tsa.ar_model import AutoReg

    result = AutoReg(train_part, lags=lags, trend="c").fit()
    end = len(train_part)
    prediction = result.get_prediction(start=end, end=end + horizon - 1, dynamic=True)
    frame = prediction.summary_frame(alpha=1 - coverage)
    return np.asarray(frame["mean_ci_upper"] - frame["mean"], dtype="float64")


def band_of(truth, paths, half_width, coverage: float = COVERAGE) -> dict:
    """How often `truth` lies within `paths +- half_width`, and the width, per step."""
    inside = np.abs(truth - paths) <= half_width[None, :]
    return {
        "coverage": coverage,
        "empirical_coverage": [float(v) for v in inside.mean(axis=0)],
        "width": [float(v) for v in 2 * half_width],
    }


def fit_ar(train_part: np.ndarray, lags: list[int]) -> tuple[float, np.ndarray, np.ndarray]:
    """AutoReg(trend="c") on the training part: (constant, coefficients, their lags)."""
    from statsmodels.tsa.ar_model import AutoReg

    result = AutoReg(train_part, lags=lags, trend="c").fit()
    return float(result.params[0]), np.asarray(result.params[1:]), np.asarray(lags)


def ar_one_step(series, split, const, coefs, lags) -> np.ndarray:
    """`[n - split]`: each validation point forecast from the true values before it."""
    targets = np.arange(split, len(series))
    return const + series[targets[:, None] - lags[None, :]] @ coefs


def ar_paths(series, origins, horizon, const, coefs, lags) -> np.ndarray:
    """`[origins, horizon]`: from each origin, each forecast fed back as the newest value."""
    depth = int(lags.max())
    buffer = np.empty((len(origins), depth + horizon))
    buffer[:, :depth] = series[origins[:, None] - depth + np.arange(depth)[None, :]]
    for step in range(horizon):  # buffer[:, depth + step] is time origin + step
        buffer[:, depth + step] = const + buffer[:, depth + step - lags] @ coefs
    return buffer[:, depth:]


def ar_reference(series: np.ndarray, backtest: dict, period: int) -> dict:
    """AR(30) and, with a period, the seasonal AR: one-step and backtest figures."""
    split = backtest["first_origin"]  # the engine's split: the backtest starts there
    origins = np.arange(split, backtest["last_origin"] + 1, backtest["stride"])
    horizon = backtest["horizon"]
    truth = series[origins[:, None] + np.arange(horizon)[None, :]]
    lag_sets = {"ar30": list(range(1, AR_LAGS + 1))}
    if period:
        lag_sets["seasonal_ar"] = sorted({*lag_sets["ar30"], period - 1, period, period + 1})
    reference = {}
    for name, lags in lag_sets.items():
        const, coefs, lag_array = fit_ar(series[:split], lags)
        error = series[split:] - ar_one_step(series, split, const, coefs, lag_array)
        paths = ar_paths(series, origins, horizon, const, coefs, lag_array)
        half_width = ar_half_widths(series[:split], lags, horizon)
        reference[name] = {
            "lags": lags,
            "mae": float(np.mean(np.abs(error))),
            "mse": float(np.mean(np.square(error))),
            "backtest": horizon_errors(truth, paths, backtest["mase_scale"]),
            "band": band_of(truth, paths, half_width),
        }
    return reference


def measure(name: str, work: Path, seeds: list[int], extra: list[str]) -> dict:
    data, column, flags = write_series(name, work)
    runs = []
    for seed in seeds:
        summary = train([*flags, "--seed", str(seed), *extra], work / "runs" / f"{name}-seed{seed}")
        keys = ("val_mae", "val_mse", "selection_mae", "best_epoch", "epochs_run", "seconds")
        config = {k: summary["config"].get(k) for k in ("model", "model_source", "window_size")}
        config.update({k: summary["config"].get(k) for k in ("period", "period_source", "split")})
        kept = {k: summary[k] for k in (*keys, "data", "baselines", "backtest")}
        runs.append({"seed": seed, **kept, "config": config})
    first = runs[0]
    series = load_series(data, column=column).values  # as the engine trains on it: float32
    series = series.astype("float32").astype("float64")
    backtest = first["backtest"]
    for run in runs[1:]:  # the origins and the period do not depend on the seed
        if any(run["backtest"][key] != backtest[key] for key in ORIGIN_KEYS):
            raise SystemExit(f"{name}: the seeds' backtests differ in their origins")
    reference = ar_reference(series, backtest, first["config"]["period"] or 0)
    models = [run["backtest"]["forecasts"]["model"] for run in runs]
    median = {
        "val_mae": statistics.median(run["val_mae"] for run in runs),
        "mae": [statistics.median(step) for step in zip(*(m["mae"] for m in models))],
        "mase": [statistics.median(step) for step in zip(*(m["mase"] for m in models))]
        if backtest["mase_scale"]
        else None,
    }
    return dict(series=name, length=len(series), runs=runs, median=median, reference=reference)


def print_series(result: dict) -> None:
    runs, reference, median = result["runs"], result["reference"], result["median"]
    first, backtest = runs[0], runs[0]["backtest"]
    config, split = first["config"], backtest["first_origin"]
    print(
        f"\n== {result['series']}: {first['data']}, {split} training, "
        f"{result['length'] - split} validation points"
    )
    period, how = config["period"], config["period_source"]
    print(how if how.startswith(f"period {period}") else f"period {period}: {how}")
    print(f"model {config['model']} ({config['model_source']}), window {config['window_size']}")
    for run in runs:
        print(
            f"seed {run['seed']}: best epoch {run['best_epoch']} of {run['epochs_run']}, "
            f"{run['seconds']:.0f} s, selection MAE {run['selection_mae']:.4f}"
        )
    names = {"ar30": "AR(30)", "seasonal_ar": f"seasonal AR (+ lags {config['period']}+-1)"}
    print(f"\none-step validation{'':14}{'MAE':>10}{'MSE':>14}")
    rows = [(f"model seed {r['seed']}", r["val_mae"], r["val_mse"]) for r in runs]
    rows = rows if len(runs) > 1 else [("model", runs[0]["val_mae"], runs[0]["val_mse"])]
    if len(runs) > 1:
        rows.append(("model (median)", median["val_mae"], None))
    for name in ("naive", "seasonal_naive", "seasonal_difference"):
        if name in first["baselines"]:
            rows.append((name, first["baselines"][name]["mae"], first["baselines"][name]["mse"]))
    rows += [(names[key], ref["mae"], ref["mse"]) for key, ref in reference.items()]
    for label, mae, mse in rows:
        print(f"  {label:<31}{mae:>10.4f}{'' if mse is None else f'{mse:>14.2f}'}")

    steps = [step for step in STEPS if step <= backtest["horizon"]]
    print(
        f"\nbacktest: horizon {backtest['horizon']}, {backtest['origins']} origins "
        f"(stride {backtest['stride']}), MASE scale {backtest['mase_scale'] or float('nan'):.4g}"
    )
    forecasts = backtest["forecasts"]
    lines = [("model" + (" (median)" if len(runs) > 1 else ""), median)]
    if len(runs) > 1:
        lines[:0] = [(f"model seed {r['seed']}", r["backtest"]["forecasts"]["model"]) for r in runs]
    lines += [
        (name, forecasts[name])
        for name in ("naive", "seasonal_naive", "drift")
        if name in forecasts
    ]
    lines += [(names[key], ref["backtest"]) for key, ref in reference.items()]
    for metric in ("mae", "mase"):
        head = "".join(f"{f'h={step}':>9}" for step in steps)
        print(f"  {metric.upper():<31}{head}{'mean':>9}")
        for label, figures in lines:
            values = figures[metric]
            if values is None:
                continue
            cells = "".join(f"{values[step - 1]:>9.3f}" for step in steps)
            print(f"  {label:<31}{cells}{np.mean(values):>9.3f}")
    print_bands(runs, reference, names, steps)


def print_bands(runs, reference, names, steps) -> None:
    """The 90% intervals: empirical coverage and width per step, model beside the ARs."""
    bands = [(f"model seed {run['seed']}", run["backtest"].get("band")) for run in runs]
    if len(runs) == 1:
        bands[0] = ("model (conformal)", bands[0][1])
    bands += [(names[key] + " (Gaussian)", ref["band"]) for key, ref in reference.items()]
    bands = [(label, band) for label, band in bands if band]
    for metric, number in (("empirical_coverage", "{:>9.1%}"), ("width", "{:>9.2f}")):
        head = "".join(f"{f'h={step}':>9}" for step in steps)
        title = f"{COVERAGE:.0%} band, {metric.replace('_', ' ')}"
        print(f"  {title:<31}{head}{'mean':>9}")
        for label, band in bands:
            values = band[metric]
            cells = "".join(number.format(values[step - 1]) for step in steps)
            print(f"  {label:<31}{cells}{number.format(float(np.mean(values)))}")


def goal(text: str, passed: bool | None, figures: str) -> dict:
    return {"goal": text, "pass": passed, "figures": figures}


def goals(results: dict) -> list[dict]:
    """The three goal lines: PASS, MISS, or None (SKIP) where the series was not measured."""
    course, sunspots = results.get("course"), results.get("sunspots")
    skipped = "not measured (add it to --series)"
    texts = (
        f"(a) course one-step MAE <= {COURSE_GOAL}",
        "(b) sunspots one-step MAE below AR(30)'s",
        "(c) course MASE below the seasonal naive's at every horizon step",
    )
    out = [goal(text, None, skipped) for text in texts]
    if course:
        value = course["median"]["val_mae"]
        out[0] = goal(texts[0], value <= COURSE_GOAL, f"model {value:.4f}")
        model = course["median"]["mase"]
        seasonal = course["runs"][0]["backtest"]["forecasts"]["seasonal_naive"]["mase"]
        wins = [m < s for m, s in zip(model, seasonal)]
        worst = int(np.argmax(np.subtract(model, seasonal)))
        figures = f"{sum(wins)} of {len(wins)} steps; the closest or worst, h={worst + 1}: "
        figures += f"model {model[worst]:.3f}, seasonal naive {seasonal[worst]:.3f}"
        out[2] = goal(texts[2], all(wins), figures)
    if sunspots:
        value, ar = sunspots["median"]["val_mae"], sunspots["reference"]["ar30"]["mae"]
        out[1] = goal(texts[1], value < ar, f"model {value:.4f}, AR(30) {ar:.4f}")
    return out


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="arguments after -- go to engine train"
    )
    parser.add_argument("--series", nargs="+", choices=SERIES, default=list(SERIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--work-dir", type=Path, help="keep the CSVs and runs here")
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = {name: measure(name, work, args.seeds, extra) for name in args.series}
    lines = goals(results)
    if args.json:
        print(json.dumps({"extra_flags": extra, "series": results, "goals": lines}, indent=1))
        return
    for result in results.values():
        print_series(result)
    print()
    for line in lines:
        verdict = {True: "PASS", False: "MISS", None: "SKIP"}[line["pass"]]
        print(f"{verdict}  {line['goal']}: {line['figures']}")


if __name__ == "__main__":
    main()
