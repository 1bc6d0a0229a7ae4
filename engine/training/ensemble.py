"""`engine train --ensemble N`: N whole runs that differ only in their seed, and the mean of
their forecasts as the run's model.

Member `i` is an ordinary run with seed `seed + i` in `RUN_DIR/members/i/` (its own
checkpoints, selection, band, backtest and plots), so it equals `engine train --seed
SEED+i` run alone, and `--resume` resumes the member that was cut off and skips the ones
that finished. The run dir itself then holds what any run holds, for the mean forecast:
model.keras (one Keras model, `engine.model.ensemble.average_models`), summary.json,
calibration.json (the mean's errors on the selection slice, which no member trained on:
with `--refit`, the mean of the members' best-epoch models, kept as model.selected.keras),
the backtest and the plots.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.series.metrics import figure
from engine.training.config import TrainConfig, load_config
from engine.training.progress import Progress

MEMBERS_DIR = "members"


def member_config(config: TrainConfig, index: int) -> TrainConfig:
    """Member `index`'s config: the run's own, with seed `seed + index`, in `members/index`."""
    return config.replace(
        ensemble=1,
        seed=config.seed + index,
        run_dir=str(Path(config.run_dir) / MEMBERS_DIR / str(index)),
    )


def finished(member: TrainConfig) -> bool:
    """Whether the member's run dir holds a finished run of `member.epochs` epochs."""
    member_dir = Path(member.run_dir)
    done = (member_dir / "summary.json").is_file() and (member_dir / "model.keras").is_file()
    return done and load_config(member_dir / "config.toml").epochs == member.epochs


def train_ensemble(config: TrainConfig, resume: bool, quiet: bool) -> dict:
    """Train (or resume, or reuse) each member, then report the mean of their forecasts."""
    import keras

    import cells  # noqa: F401 - registers our layers for loading the members
    import engine.model.scaling  # noqa: F401
    from engine.model.ensemble import average_models
    from engine.training.backtest import default_horizon
    from engine.training.intervals import calibrate
    from engine.training.plots import plot_member_losses
    from engine.training.prepare import prepare_data
    from engine.training.step import make_predict, predict_in_batches
    from engine.training.train import (
        SELECTED_MODEL_FILE,
        finish_run,
        read_metrics,
        selection_errors,
        train,
    )

    progress = Progress(quiet)
    run_dir = Path(config.run_dir)
    (run_dir / "plots").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(config.to_toml())
    started = time.perf_counter()
    members = []
    for index in range(config.ensemble):
        member = member_config(config, index)
        member_dir = Path(member.run_dir)
        if finished(member):
            progress.line(f"member {index + 1}/{config.ensemble} (seed {member.seed}): done before")
            summary = json.loads((member_dir / "summary.json").read_text())
        else:  # not begun, cut off, or resumed with more --epochs than it ran
            progress.line(f"member {index + 1}/{config.ensemble} (seed {member.seed})")
            interrupted = (member_dir / "checkpoints").exists()
            summary = train(member, resume=resume and interrupted, quiet=quiet)
        members.append((member, summary))

    def mean_of(file_name: str):
        """The mean of the members' `file_name` models, and its predict function."""
        paths = [Path(m.run_dir) / file_name for m, _ in members]
        mean = average_models([keras.saving.load_model(path) for path in paths])
        return mean, make_predict(mean)

    data = prepare_data(config)
    # The slice picks and calibrates with the best epochs' models, which never trained on it;
    # with --refit the refitted members' mean is then the one reported and exported.
    refitted = [s["refit"] for _, s in members if s["refit"]]
    model, predict = mean_of(SELECTED_MODEL_FILE if refitted else "model.keras")
    selection = selection_errors(predict, data)
    calibration, band_note = calibrate(
        lambda windows: predict_in_batches(predict, windows),
        data,
        config.window_size,
        config.interval_horizon or default_horizon(data.period),
    )
    if refitted:
        model, predict = mean_of("model.keras")
    facts = {
        "epochs_run": max(s["epochs_run"] for _, s in members),
        "best_epoch": max(s["best_epoch"] for _, s in members),  # the latest member's
        "refit": {
            "epochs": max(r["epochs"] for r in refitted),  # the latest member's
            "points": refitted[0]["points"],
            "seconds": sum(r["seconds"] for r in refitted),
        }
        if refitted
        else None,
        "seconds": sum(s["seconds"] for _, s in members),
        "stop_reason": "; ".join(sorted({s["stop_reason"] for _, s in members})),
        "replicas": members[0][1]["replicas"],
        "ensemble": {
            "members": [
                {
                    "seed": m.seed,
                    "run_dir": str(Path(MEMBERS_DIR) / str(index)),
                    "val_mae": s["val_mae"],
                    "selection_mae": s["selection_mae"],
                    "best_epoch": s["best_epoch"],
                    "refit_epochs": s["refit"]["epochs"] if s["refit"] else None,
                }
                for index, (m, s) in enumerate(members)
            ],
            "member_val_mae_mean": sum(s["val_mae"] for _, s in members) / len(members),
        },
    }
    summary, backtest_note = finish_run(
        model, predict, config, data, run_dir, selection, calibration, facts
    )
    plot_member_losses(
        [read_metrics(Path(m.run_dir) / "metrics.jsonl", m.epochs) for m, _ in members],
        run_dir / "plots" / "loss.png",
    )
    member_maes = ", ".join(figure(s["val_mae"]) for _, s in members)
    progress.line(
        f"ensemble of {config.ensemble} done in {time.perf_counter() - started:.1f}s: "
        f"validation MAE {figure(summary['val_mae'])} (members {member_maes}; naive "
        f"{figure(summary['baselines']['naive']['mae'])})"
    )
    progress.line(band_note)
    progress.line(backtest_note)
    return summary
