"""Peak memory of `engine train` against the same job trained the Keras way.

Both run as fresh processes under `/usr/bin/time -v` and the table gives its "Maximum
resident set size":

- engine: `engine train` with its defaults (the seasonal GRU on the course series, our
  cells), `--epochs` epochs, writing its whole run directory (checkpoints, metrics,
  TensorBoard, plots);
- keras_fit: the same model from the Keras built-ins (`--cells keras`), the same data,
  windows, batches, optimizer and loss, trained with `model.compile` + `model.fit` and
  validated every epoch on the same validation windows.

    python benchmarks/train_memory.py [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"


def keras_fit(epochs: int) -> None:
    """The Keras way, run in the measured child process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    import keras

    from engine.series.windows import windowed_dataset
    from engine.training.config import TrainConfig
    from engine.training.prepare import (
        build_run_model,
        make_optimizer,
        prepare_data,
        resolve_config,
        steps_per_epoch,
    )

    config = resolve_config(TrainConfig(epochs=epochs, cells="keras"))
    keras.utils.set_random_seed(config.seed)
    data = prepare_data(config)
    model = build_run_model(config, data)
    model.compile(
        optimizer=make_optimizer(config, total_steps=steps_per_epoch(config, data) * epochs),
        loss=keras.losses.Huber(config.huber_delta),
    )
    dataset = windowed_dataset(
        data.train, config.window_size, config.batch_size, config.shuffle_buffer, seed=config.seed
    ).map(lambda windows, targets: (windows, targets[:, None]))
    model.fit(
        dataset,
        epochs=epochs,
        validation_data=(data.valid_windows, data.valid_targets[:, None]),
        verbose=0,
    )


def peak_rss_mb(command: list[str]) -> float:
    done = subprocess.run(
        [TIME, "-v", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if not match:
        raise SystemExit(f"{TIME} -v printed no maximum resident set size")
    return int(match.group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--keras-fit-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.keras_fit_child is not None:
        keras_fit(args.keras_fit_child)
        return
    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} is needed (Debian: apt install time)")

    engine = str(Path(sys.executable).parent / "engine")
    peaks: dict[str, list[float]] = {"keras_fit": [], "engine": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            run_dir = Path(scratch) / f"run{repeat}"
            peaks["keras_fit"].append(
                peak_rss_mb([sys.executable, __file__, "--keras-fit-child", str(args.epochs)])
            )
            peaks["engine"].append(
                peak_rss_mb(
                    [engine, "train", "--epochs", str(args.epochs), "--run-dir", str(run_dir)]
                    + ["--quiet"]
                )
            )
    keras_mb = statistics.median(peaks["keras_fit"])
    engine_mb = statistics.median(peaks["engine"])
    print(f"peak RSS, median of {args.repeats} runs of {args.epochs} epochs each")
    for name, median in (("keras_fit", keras_mb), ("engine", engine_mb)):
        runs = ", ".join(f"{peak:.0f}" for peak in peaks[name])
        print(f"{name:<10} {median:7.0f} MB   runs: {runs}")
    print(f"ratio      {engine_mb / keras_mb:7.2f}")


if __name__ == "__main__":
    main()
