"""Run directories: reading a finished one back (its config, model and figures), and
checking that a new one can be made."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError, first_line
from engine.training.config import TrainConfig, load_config


@dataclass
class LoadedRun:
    config: TrainConfig
    model: object  # keras.Model: raw windows [batch, time] -> raw forecast [batch, 1]
    summary: dict
    metadata: dict  # what an exported model records about its origin
    rebuilt_note: str
    calibration: dict | None = None  # the interval band's residuals (intervals.py)


def load_run(run_dir: str | Path, for_export: bool = True) -> LoadedRun:
    """Load `model.keras` and the run's figures. With `for_export`, a model of Keras
    built-in cells is rebuilt from our cells with the same weights, so its graph never
    carries `CudnnRNN*` ops (a model traced with cuDNN cannot run on a CPU server)."""
    import keras

    import cells  # noqa: F401 - registers our layers for deserialisation
    import engine.model.scaling  # noqa: F401
    from engine.model.builders import rebuild_with_custom_cells
    from engine.model.ensemble import average_models, ensemble_members
    from engine.model.specs import MODELS
    from engine.training.intervals import read_calibration

    run_dir = Path(run_dir)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise InputError(f"{run_dir}: no trained model (model.keras) in this run dir")
    config = load_config(run_dir / "config.toml")
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{summary_path}: not a run's summary ({error})") from None
    try:
        model = keras.saving.load_model(model_path)
    except (ValueError, OSError) as error:  # Keras says ValueError for a damaged file
        raise InputError(
            f"{model_path}: not a readable Keras model ({first_line(error)})"
        ) from None
    note = f"exported as trained ({config.cells} cells)"
    if for_export and config.cells == "keras":
        spec = MODELS[config.model]
        members = ensemble_members(model) or [model]
        rebuilt = [
            rebuild_with_custom_cells(
                member, config.model, config.units or spec.units, config.layers or spec.layers
            )
            for member in members
        ]
        model = average_models(rebuilt) if len(rebuilt) > 1 else rebuilt[0]
        note = "rebuilt with seqcast cells (weights copied from the Keras built-ins): CPU-servable"
    metadata = {
        "window_size": config.window_size,
        "model": config.model,
        "cells": config.cells,
        "precision": config.precision,
        "data": summary.get("data", config.data),
        "validation": {key: summary[key] for key in ("val_mae", "val_mse") if key in summary},
        "baselines": summary.get("baselines", {}),
        "config": config.as_dict(),
    }
    return LoadedRun(config, model, summary, metadata, note, read_calibration(run_dir))


def check_creatable(directory: str | Path, flag: str) -> None:
    """Refuse, before any work and without creating anything, a directory that cannot be
    made: one under a file, or in a folder this process cannot write."""
    path = Path(directory)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag} {directory}: {existing} is a file, not a directory")
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {directory}: cannot create it in {existing} (not writable)")
