"""A seed ensemble as one Keras model: every member reads the same window, the forecast is
the mean of theirs. It keeps the models' contract (raw values `[batch, time]` -> raw
forecast `[batch, 1]`), so evaluation, the backtest, the band and the export treat it as
any other model."""

from __future__ import annotations

import keras


def average_models(members: list[keras.Model]) -> keras.Model:
    """`[batch, time] -> [batch, 1]`: the mean of two or more members' forecasts. Members are
    renamed `member_0`, `member_1`, ... (their layers keep their names inside them)."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    window = keras.Input(shape=(None,), name="window", dtype="float32")
    forecasts = []
    for index, member in enumerate(members):
        member.name = f"member_{index}"
        forecasts.append(member(window))
    mean = keras.layers.Average(dtype="float32", name="mean_forecast")(forecasts)
    return keras.Model(window, mean, name="seqcast_ensemble")


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member models of `average_models(...)`, in order; `[]` for a single model."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
