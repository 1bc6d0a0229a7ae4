"""A run is described by one frozen `TrainConfig`: defaults, then a TOML file, then CLI flags.

The resolved config is written into the run dir as `config.toml`, so a run can be
reproduced, resumed and exported from its directory alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from engine.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("constant", "cosine")
STRATEGIES = ("default", "mirrored", "multi-worker")
LOSSES = ("huber", "mse", "mae")  # engine.training.losses.get_loss builds each


@dataclass(frozen=True)
class TrainConfig:
    # data
    data: str = "synthetic"
    column: str | None = None
    date_column: str | None = None
    split: str | None = None
    window_size: int | None = None  # the model's default: 20, or period + 19 if seasonal
    period: int | None = None  # None: the series' own or inferred; 0: no season
    period_source: str | None = None  # how the period was found (written by resolution)
    selection_fraction: float = 0.1  # end of the training part that picks the best epoch
    interval_horizon: int | None = None  # steps the band is calibrated for; None: backtest's
    batch_size: int = 32
    shuffle_buffer: int = 1000
    # model
    model: str | None = None  # None: seasonal-gru if the series has a season, else ar-gru
    model_source: str | None = None  # why that model (written by resolution)
    cells: str = "custom"
    units: int | None = None
    layers: int | None = None
    anchor: str | None = None  # the model's default
    dropout: float = 0.0  # of each recurrent layer's inputs (Keras semantics)
    recurrent_dropout: float = 0.0  # of each recurrent layer's state
    # optimisation
    epochs: int = 60
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0  # decoupled, as keras.optimizers applies it
    loss: str = "huber"
    huber_delta: float | None = None  # series units; None: scaled to the series (prepare.py)
    clip_norm: float | None = None
    clip_global_norm: float | None = None
    clip_value: float | None = None
    precision: str = "float32"
    # run control
    seed: int = 42
    deterministic: bool = False
    fast: bool = True
    patience: int | None = None
    refit: bool = False  # after the slice picks the epochs, train again on all the training part
    ensemble: int = 1  # members with seeds seed, seed+1, ...; the forecast is their mean
    strategy: str = "default"
    replicas: int = 1
    run_dir: str = "runs/latest"

    def validate(self) -> TrainConfig:
        """Raise `InputError` naming the first bad field."""
        from engine.model.specs import CELLS, MODELS
        from engine.series.period import check_period

        choices = {
            "optimizer": OPTIMIZERS,
            "precision": PRECISIONS,
            "lr_schedule": SCHEDULES,
            "strategy": STRATEGIES,
            "loss": LOSSES,
            "model": tuple(MODELS),
            "cells": CELLS,
            "anchor": ("last", "mean", "none"),
        }
        for name, allowed in choices.items():
            if name in ("anchor", "model") and getattr(self, name) is None:
                continue
            if getattr(self, name) not in allowed:
                raise InputError(
                    f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                    f"not {getattr(self, name)!r}"
                )
        check_period(self.period)
        rates = {
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "selection_fraction": self.selection_fraction * 2,  # at most half the training part
        }
        for name, value in rates.items():
            if not (math.isfinite(value) and 0 <= value < 1):
                top = "0.5" if name == "selection_fraction" else "1"
                raise InputError(
                    f"--{name.replace('_', '-')} must be in [0, {top}), not {getattr(self, name)}"
                )
        if self.huber_delta is not None and not (
            math.isfinite(self.huber_delta) and self.huber_delta > 0
        ):
            raise InputError(f"--huber-delta must be positive, not {self.huber_delta}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(f"--weight-decay must be 0 or more, not {self.weight_decay}")
        for name in (
            "window_size",
            "units",
            "layers",
            "batch_size",
            "epochs",
            "replicas",
            "interval_horizon",
            "ensemble",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"--lr must be a positive number, not {self.lr}")
        clips = {
            name: getattr(self, name)
            for name in ("clip_norm", "clip_global_norm", "clip_value")
            if getattr(self, name) is not None
        }
        if len(clips) > 1:
            raise InputError("give at most one of --clip-norm, --clip-global-norm, --clip-value")
        for name, threshold in clips.items():
            if not (math.isfinite(threshold) and threshold > 0):
                raise InputError(f"--{name.replace('_', '-')} must be positive, not {threshold}")
        if self.ensemble > 1 and self.strategy == "multi-worker":
            raise InputError(
                "--ensemble trains its members one after another in one process: use "
                "--strategy default or mirrored, or run each seed as a multi-worker run of its own"
            )
        if self.patience is not None and self.patience < 1:
            raise InputError("--patience must be at least 1")
        if self.patience is not None and self.selection_fraction == 0:
            raise InputError("--patience needs a selection slice: a --selection-fraction above 0")
        if self.refit and self.selection_fraction == 0:
            raise InputError(
                "--refit needs a selection slice (a --selection-fraction above 0): without one "
                "the run already trains on the whole training part"
            )
        return self

    def replace(self, **changes) -> TrainConfig:
        """A copy with the given fields changed; `None` values leave a field as it is."""
        given = {key: value for key, value in changes.items() if value is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise InputError(f"unknown config keys: {', '.join(sorted(unknown))}")
        try:
            return dataclasses.replace(self, **given)
        except TypeError as error:
            raise InputError(str(error)) from None

    def to_toml(self) -> str:
        lines = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = repr(value)
            else:
                text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{field.name} = {text}")
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> TrainConfig:
    """A `TrainConfig` from a TOML file of `key = value` lines (names as the fields)."""
    return TrainConfig().replace(**read_settings(path))


def read_settings(path: str | Path) -> dict:
    """The settings a TOML file gives, by field name, each checked against its field's type."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such config file")
    try:
        raw = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    known = {f.name: f for f in fields(TrainConfig)}
    values = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known:
            raise InputError(f"{path}: unknown setting {key!r}")
        if name == "split" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # `split = 0.8` or `split = 1000`, as the flag takes them
        values[name] = _typed(path, key, value, known[name].type)
    return values


_TOML_TYPES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}


def _typed(path, key: str, value, annotation: str):
    """`value` checked against the field's type (`"int | None"` -> int); an int is a float."""
    kind = annotation.split("|")[0].strip()
    # bool is an int in Python, but `epochs = true` is a mistake, not 1.
    fits = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind]
    if not fits:
        shown = json.dumps(value, default=str)  # as TOML writes it: true, "fast", [1]
        raise InputError(f"{path}: {key} must be {_TOML_TYPES[kind]}, not {shown}")
    return float(value) if kind == "float" else value
