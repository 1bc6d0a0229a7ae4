"""Search for a default training configuration that forecasts the course series well.

Trains one model per seed with Keras `compile`/`fit` (the built-in cells; equivalent to the
engine's own loop) and reports the one-step MAE in raw units over the scored points, the
epoch it was reached at, the last epoch's MAE and the training time. By default the scored
points are the last 100 of the training part, fitted on the 900 before them, so a default
chosen here has never seen the reported validation part; `--score-on validation` scores the
461 validation points instead (how the figures below were recorded, before seqcast kept its
validation part for reporting only).

    python benchmarks/accuracy_search.py --preset seasonal --seeds 1 2 3 4 5
    python benchmarks/accuracy_search.py --model rnn --window-size 30 --seeds 1 2 3

Besides the engine's named models (`--model rnn|lstm|bilstm|gru|conv-lstm`), it builds the
prototype `seasonal-gru` / `seasonal-rnn`: a window of `recent + 364` values, of which the
recurrent stack reads only the last `recent` steps, each step carrying this year's value and
last year's values at the same phase (`SeasonalChannels`). So the model sees the seasonal
discontinuities one year ahead without a 380-step recurrence.

Figures (2 contended CPU cores, seeds 1-5; MAE at the best epoch / at the last epoch):
`--preset seasonal` 4.265/4.270, 4.230/4.239, 4.285/4.305, 4.254/4.311, 4.284/4.295,
about 75 s of training. The course's best statistical baseline is 4.57; the noise floor 3.99.

Each result is printed as one JSON line (and appended to `--log` if given).
Shapes: windows `[batch, window_size]` raw values -> forecasts `[batch, 1]` raw values.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from engine.model.builders import build_model  # noqa: E402
from engine.model.scaling import ScaleWindow, SeasonalChannels, UnscaleForecast  # noqa: E402
from engine.series.course import COURSE_PERIOD, COURSE_SPLIT, course_series  # noqa: E402

TUNING_POINTS = 100  # the end of the training part that scores a configuration
from engine.series.windows import window_pairs  # noqa: E402

# Named configurations worth rerunning (see the module docstring for the command).
PRESETS = {
    # The engine's defaults: SimpleRNN 40 x2, window 20, Adam 1e-3 cosine, batch 32.
    "engine-default": dict(model="rnn", window_size=20, epochs=100, lr=1e-3, batch_size=32),
    # Best found: a GRU over the last 20 steps, each step also carrying last year's values
    # at the same phase; mean anchor; Huber delta 10 (2 noise sigmas, close to MSE).
    "seasonal": dict(
        model="seasonal-gru",
        units=48,
        layers=2,
        recent=20,
        leads=10,
        anchor="mean",
        huber_delta=10.0,
        epochs=60,
        lr=2e-3,
        batch_size=32,
    ),
}


def build_seasonal(args: argparse.Namespace, scale: float) -> keras.Model:
    """Prototype: a recurrent stack over the last `--recent` steps, each step carrying this
    year's value and last year's values at the same phase (see `SeasonalChannels`)."""
    cell = {"seasonal-rnn": keras.layers.SimpleRNN, "seasonal-gru": keras.layers.GRU}[args.model]
    units, layers = args.units or 40, args.layers or 2
    window = keras.Input(shape=(None,), name="window", dtype="float32")
    hidden, anchor = ScaleWindow(scale, args.anchor, name="scale_window")(window)
    hidden = SeasonalChannels(args.recent, COURSE_PERIOD, args.leads)(hidden)
    for index in range(layers):
        hidden = cell(units, return_sequences=index < layers - 1)(hidden)
    output = keras.layers.Dense(1, name="output")(hidden)
    forecast = UnscaleForecast(scale, name="unscale_forecast")([output, anchor])
    return keras.Model(window, forecast, name=args.model.replace("-", "_"))


class BestValidation(keras.callbacks.Callback):
    """Scores the validation windows after each epoch; keeps the best weights.

    `windows [n, window_size]`, `targets [n]`, both raw. Stops after `patience` epochs
    without improvement when `patience` is given.
    """

    def __init__(self, windows, targets, patience: int | None, verbose: bool = False):
        super().__init__()
        self.windows, self.targets, self.patience = windows, targets, patience
        self.verbose = verbose
        self.best, self.best_epoch, self.best_weights, self.history = math.inf, -1, None, []

    def on_epoch_end(self, epoch, logs=None):
        forecast = np.asarray(self.model.predict_on_batch(self.windows))[:, 0]
        score = float(np.mean(np.abs(forecast - self.targets)))
        self.history.append(score)
        if self.verbose:
            print(f"  epoch {epoch + 1}: val MAE {score:.4f}", file=sys.stderr, flush=True)
        if score < self.best:
            self.best, self.best_epoch = score, epoch
            self.best_weights = self.model.get_weights()
        elif self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True


def train_once(args: argparse.Namespace, seed: int) -> dict:
    """Train one model with `seed`; return its figures."""
    keras.utils.set_random_seed(seed)
    _, series = course_series()
    series = series.astype("float32")
    # Tuning scores the last TUNING_POINTS of the training part, fitted on what is before
    # them: the validation part is never seen. `validation` scores the reported part, for
    # comparison with figures recorded that way only; choose no default with it.
    split = COURSE_SPLIT - TUNING_POINTS if args.score_on == "tuning" else COURSE_SPLIT
    end = COURSE_SPLIT if args.score_on == "tuning" else len(series)
    series = series[:end]
    train = series[:split]
    windows, targets = window_pairs(train, args.window_size)  # all inside the training part
    valid_windows, valid_targets = window_pairs(
        series[split - args.window_size :], args.window_size
    )
    scale = float(np.std(train))

    if args.model.startswith("seasonal-"):
        model = build_seasonal(args, scale)
    else:
        model = build_model(
            args.model, "keras", args.units, args.layers, scale=scale, anchor=args.anchor
        )
    steps = math.ceil(len(windows) / args.batch_size) * args.epochs
    lr = args.lr
    if args.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps, alpha=0.0)
    if args.optimizer == "adam":
        optimizer = keras.optimizers.Adam(lr, clipnorm=args.clip_norm)
    else:
        optimizer = keras.optimizers.SGD(lr, momentum=0.9, clipnorm=args.clip_norm)
    # Huber with delta in raw units; `--huber-delta` in units of the training std when scaled.
    delta = args.huber_delta * (scale if args.scaled_delta else 1.0)
    model.compile(optimizer=optimizer, loss=keras.losses.Huber(delta=delta))

    tracker = BestValidation(valid_windows, valid_targets, args.patience, args.verbose)
    start = time.perf_counter()
    model.fit(
        windows,
        targets[:, None],
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[tracker],
    )
    seconds = time.perf_counter() - start
    model.set_weights(tracker.best_weights)
    forecast = np.asarray(model.predict_on_batch(valid_windows))[:, 0]
    final = float(np.mean(np.abs(forecast - valid_targets)))
    if args.save_forecast:
        np.save(f"{args.save_forecast}-seed{seed}.npy", forecast)
    return {
        "seed": seed,
        "mae": round(final, 4),
        "best_epoch": tracker.best_epoch + 1,
        "epochs_run": len(tracker.history),
        "last_epoch_mae": round(tracker.history[-1], 4),
        "train_seconds": round(seconds, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a named config")
    parser.add_argument("--model", default="rnn")
    parser.add_argument("--recent", type=int, default=30, help="seasonal-*: recent steps")
    parser.add_argument("--leads", type=int, default=5, help="seasonal-*: last-year leads")
    parser.add_argument("--units", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--anchor", default="last", choices=("last", "mean"))
    parser.add_argument("--window-size", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", default="cosine", choices=("cosine", "constant"))
    parser.add_argument("--clip-norm", type=float, default=None)
    parser.add_argument("--huber-delta", type=float, default=1.0)
    parser.add_argument(
        "--scaled-delta", action="store_true", help="--huber-delta in training-std units"
    )
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument(
        "--score-on",
        choices=("tuning", "validation"),
        default="tuning",
        help="tuning: the last 100 training points, fitted on the 900 before (default); "
        "validation: the 461 reported points (never for choosing a default)",
    )
    parser.add_argument("--verbose", action="store_true", help="per-epoch MAE on stderr")
    parser.add_argument("--save-forecast", default=None, help="save forecasts [461] as .npy")
    parser.add_argument("--log", default=None, help="append JSON lines to this file")
    args = parser.parse_args(argv)
    if args.preset:
        # A preset sets the fields it names unless the flag was given explicitly.
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv or sys.argv[1:])}
        for key, value in PRESETS[args.preset].items():
            if key not in given:
                setattr(args, key, value)
    if args.model.startswith("seasonal-"):
        args.window_size = max(args.window_size, args.recent + COURSE_PERIOD - 1)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = {
        k: v for k, v in vars(args).items() if k not in ("seeds", "log", "verbose", "save_forecast")
    }
    maes = []
    for seed in args.seeds:
        result = {**config, **train_once(args, seed)}
        maes.append(result["mae"])
        line = json.dumps(result)
        print(line, flush=True)
        if args.log:
            with open(args.log, "a") as handle:
                handle.write(line + "\n")
    if len(maes) > 1:
        print(f"mean MAE {np.mean(maes):.4f} over seeds {args.seeds}: {maes}", flush=True)


if __name__ == "__main__":
    main()
