"""`engine train --ensemble N`: members are ordinary runs that differ only in their seed, the
run's model forecasts their mean, and it resumes, exports and refuses as any run does."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_runner import engine_in_process

from engine.errors import InputError
from engine.training.config import TrainConfig, load_config
from engine.training.prepare import prepare_data
from engine.training.train import train

TINY = TrainConfig(model="ar-gru", units=4, epochs=2, seed=5)


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ensemble") / "run"
    config = TINY.replace(ensemble=2, run_dir=str(run_dir))
    return config, train(config, quiet=True)


def test_each_member_equals_a_run_of_its_own_seed(ensemble_run, tmp_path):
    """Member 1, trained after member 0 in the same process, equals a run of seed 6 alone:
    nothing of one member's training leaks into the next."""
    config, summary = ensemble_run
    members = summary["ensemble"]["members"]
    assert [m["seed"] for m in members] == [5, 6]
    alone = train(TINY.replace(seed=6, run_dir=str(tmp_path / "seed6")), quiet=True)
    assert members[1]["val_mae"] == alone["val_mae"]
    assert members[1]["selection_mae"] == alone["selection_mae"]
    assert members[1]["best_epoch"] == alone["best_epoch"]


def test_the_forecast_is_the_mean_of_the_members(ensemble_run):
    config, summary = ensemble_run
    run_dir = config.run_dir
    import cells  # noqa: F401 - registers the layers the models are made of
    import engine.model.scaling  # noqa: F401

    model = keras.saving.load_model(f"{run_dir}/model.keras")
    members = [keras.saving.load_model(f"{run_dir}/members/{i}/model.keras") for i in (0, 1)]
    data = prepare_data(load_config(f"{run_dir}/config.toml"))
    windows = data.valid_windows
    each = np.stack([m.predict(windows, verbose=0)[:, 0] for m in members]).astype("float64")
    mean = each.mean(axis=0)
    np.testing.assert_allclose(model.predict(windows, verbose=0)[:, 0], mean, rtol=0, atol=1e-4)
    # The reported figures are the mean forecast's, and the members' are kept beside them.
    expected_mae = np.abs(data.valid_targets - mean).mean()
    assert summary["val_mae"] == pytest.approx(expected_mae, rel=1e-5)
    member_maes = [np.abs(data.valid_targets - one).mean() for one in each]
    assert [m["val_mae"] for m in summary["ensemble"]["members"]] == pytest.approx(
        member_maes, rel=1e-5
    )
    # The absolute error is convex: the mean's MAE is never above the members' mean MAE.
    assert summary["val_mae"] <= summary["ensemble"]["member_val_mae_mean"] + 1e-6
    saved = json.loads(open(f"{run_dir}/summary.json").read())
    assert saved["val_mae"] == summary["val_mae"] and saved["config"]["ensemble"] == 2
    assert summary["calibration"]["origins"] > 0 and summary["backtest"]["origins"] > 0


def test_a_resume_reuses_finished_members_and_an_existing_run_is_refused(ensemble_run):
    config, summary = ensemble_run
    with pytest.raises(InputError, match="already holds a run"):
        train(config, quiet=True)
    again = train(config, resume=True, quiet=True)  # both members finished: nothing retrained
    assert again["val_mae"] == summary["val_mae"]
    assert [m["val_mae"] for m in again["ensemble"]["members"]] == [
        m["val_mae"] for m in summary["ensemble"]["members"]
    ]


def test_a_resume_with_more_epochs_trains_every_member_on(ensemble_run, tmp_path):
    config, _ = ensemble_run
    shutil.copytree(config.run_dir, tmp_path / "run")
    longer = train(config.replace(run_dir=str(tmp_path / "run"), epochs=3), resume=True, quiet=True)
    assert longer["epochs_run"] == 3
    for index in (0, 1):
        metrics = (tmp_path / f"run/members/{index}/metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in metrics] == [1, 2, 3]


def test_a_member_cut_off_resumes_from_its_checkpoint(ensemble_run, tmp_path, monkeypatch):
    """Interrupted in member 1's second epoch: `--resume` keeps member 0, resumes member 1
    after its first epoch, and ends where the uninterrupted run ended."""
    config, whole = ensemble_run
    import engine.training.train as loop

    passes, real_run_epoch = [], loop.run_epoch

    def interrupted(*args, **kwargs):
        passes.append(1)
        if len(passes) == 4:  # member 0: epochs 1, 2; member 1: epoch 1, then this
            raise KeyboardInterrupt
        return real_run_epoch(*args, **kwargs)

    cut = config.replace(run_dir=str(tmp_path / "run"))
    monkeypatch.setattr(loop, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cut, quiet=True)
    assert (tmp_path / "run/members/0/summary.json").is_file()
    assert not (tmp_path / "run/members/1/summary.json").exists()
    passes.clear()

    def counted(*args, **kwargs):
        passes.append(1)
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "run_epoch", counted)
    resumed = train(cut, resume=True, quiet=True)
    assert len(passes) == 1  # member 1's second epoch, nothing else trained again
    member_1 = json.loads((tmp_path / "run/members/1/metrics.jsonl").read_text().splitlines()[-1])
    assert member_1["epoch"] == 2
    assert resumed["val_mae"] == whole["val_mae"]


def test_with_refit_the_band_stays_the_best_epochs_mean_and_the_refits_mean_is_kept(
    ensemble_run, tmp_path
):
    config, plain = ensemble_run
    refitted = train(config.replace(refit=True, run_dir=str(tmp_path / "refit")), quiet=True)
    # The slice picked and calibrated with the same best-epoch members as without --refit ...
    assert refitted["selection_mae"] == plain["selection_mae"]
    band = json.loads((tmp_path / "refit" / "calibration.json").read_text())
    band_plain = json.loads(open(f"{config.run_dir}/calibration.json").read())
    assert band["residuals"] == band_plain["residuals"]
    # ... and the model reported is the mean of the refitted members, each its own run's.
    assert refitted["refit"]["points"] == 1000
    assert [m["refit_epochs"] for m in refitted["ensemble"]["members"]] == [2, 2]
    assert refitted["val_mae"] != plain["val_mae"]
    member_maes = [m["val_mae"] for m in refitted["ensemble"]["members"]]
    for index, mae in enumerate(member_maes):
        alone = json.loads((tmp_path / f"refit/members/{index}/summary.json").read_text())
        assert alone["val_mae"] == mae and alone["refit"] is not None


def test_the_exported_ensemble_serves_the_mean(ensemble_run, tmp_path, capsys):
    config, _ = ensemble_run
    base = tmp_path / "models"
    code, out, err = engine_in_process(
        capsys, "export", config.run_dir, "--model-base-path", str(base), "--no-verify"
    )
    assert code == 0, err
    import cells  # noqa: F401
    import engine.model.scaling  # noqa: F401

    model = keras.saving.load_model(f"{config.run_dir}/model.keras")
    served = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    windows = prepare_data(load_config(f"{config.run_dir}/config.toml")).valid_windows[:4]
    answer = served(window=tf.constant(windows))["forecast"].numpy()
    np.testing.assert_allclose(answer, model.predict(windows, verbose=0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--ensemble", "0"], "--ensemble must be at least 1"),
        (["--ensemble", "2", "--strategy", "multi-worker"], "one after another in one process"),
    ],
)
def test_bad_ensemble_flags_are_one_line_and_exit_2(flags, fragment, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = engine_in_process(capsys, "train", "--run-dir", str(run_dir), *flags)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_an_ensemble_of_keras_cells_is_rebuilt_member_by_member_for_export(tmp_path):
    from engine.model.ensemble import ensemble_members
    from engine.training.runs import load_run

    config = TINY.replace(ensemble=2, cells="keras", epochs=1, run_dir=str(tmp_path / "run"))
    train(config, quiet=True)
    as_trained = load_run(config.run_dir, for_export=False).model
    rebuilt = load_run(config.run_dir).model
    members = ensemble_members(rebuilt)
    assert len(members) == 2
    recurrent = [layer for m in members for layer in m.layers if "recurrent" in layer.name]
    assert recurrent and all(type(layer).__module__.startswith("cells") for layer in recurrent)
    windows = prepare_data(load_config(f"{config.run_dir}/config.toml")).valid_windows[:8]
    np.testing.assert_allclose(
        rebuilt.predict(windows, verbose=0), as_trained.predict(windows, verbose=0), atol=1e-4
    )
