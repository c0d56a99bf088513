"""``gazetune human train|predict`` on a study export written to disk."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
from typer.testing import CliRunner

from gazetune.nets.generator import DCGANGenerator
from gazetune.human.cli import app
from gazetune.human.model import load_human_model_info
from gazetune.human.train import trials_from_simulated, write_study_export
from test_human_train import one_thread, simulated_study  # noqa: F401  (one_thread is autouse)


def _export(tmp_path, n_images=8, n_participants=4):
    images, names, raw = simulated_study(n_images=n_images, n_participants=n_participants, seed=3)
    np.savez(tmp_path / "images.npz", images=images[:, 0], names=np.array(names), value_range=np.array([-1.0, 1.0]))
    trials = trials_from_simulated(raw, names)
    write_study_export(trials, tmp_path / "trials.csv", tmp_path / "fixations.csv")
    return trials


def test_human_train_and_predict_cli(tmp_path):
    trials = _export(tmp_path)
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, [
        "train", "--trials", str(tmp_path / "trials.csv"), "--fixations", str(tmp_path / "fixations.csv"),
        "--images", str(tmp_path / "images.npz"), "--out", str(out), "--variant", "separate",
        "--cyborg", "0.3", "--steps", "3", "--batch", "8", "--net-width", "4", "--rt-weighting", "inverse",
    ])
    assert r.exit_code == 0, r.output
    assert "held out: label AUC" in r.output
    cfg, extra = load_human_model_info(out / "human_model.safetensors")
    assert cfg.variant == "separate" and cfg.in_channels == 1 and cfg.image_size == (25, 25)
    report = json.loads((out / "report.json").read_text())
    assert report["n_train_trials"] + report["n_holdout_trials"] == len(trials) == 32
    assert report["config"]["cyborg_weight"] == 0.3 and extra["report"]["variant"] == "separate"
    assert (out / "config.toml").exists()

    r = runner.invoke(app, ["predict", "--model", str(out / "human_model.safetensors"),
                            "--images", str(tmp_path / "images.npz"), "--out", str(tmp_path / "pred.csv")])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((tmp_path / "pred.csv").open()))
    assert len(rows) == 8 and all(0 < float(row["p_real"]) < 1 for row in rows)
    maps = np.load(tmp_path / "pred.npz")
    assert maps["maps"].shape == (8, 25, 25)


def test_human_train_cli_regenerates_synthetic_images(tmp_path):
    _export(tmp_path, n_images=4, n_participants=2)
    with (tmp_path / "trials.csv").open("a") as fh:  # two trials on a generated image not in --images
        fh.write("p0,synthetic/g@1/7,synthetic,g@1,0,900.0,7\np1,synthetic/g@1/7,synthetic,g@1,1,800.0,7\n")
    args = ["train", "--trials", str(tmp_path / "trials.csv"), "--fixations", str(tmp_path / "fixations.csv"),
            "--images", str(tmp_path / "images.npz"), "--out", str(tmp_path / "m.safetensors"),
            "--steps", "2", "--batch", "4", "--net-width", "4"]
    runner = CliRunner()
    r = runner.invoke(app, args)
    assert r.exit_code != 0 and "--generator" in r.output
    torch.manual_seed(0)
    g = torch.jit.trace(DCGANGenerator(z_dim=8, size=32, channels=3, width=4).eval(), torch.randn(2, 8))
    torch.jit.save(g, str(tmp_path / "g.pt"), _extra_files={"z_dim": "8"})
    r = runner.invoke(app, args + ["--generator", str(tmp_path / "g.pt")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "report.json").read_text())["n_train_trials"] + \
        json.loads((tmp_path / "report.json").read_text())["n_holdout_trials"] == 4 * 2 + 2


def test_human_train_cli_names_missing_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short paths: the error box wraps a long one (as under pytest-xdist) mid-name
    r = CliRunner().invoke(app, ["train", "--trials", "no.csv", "--fixations", "no2.csv", "--out", "m"])
    assert r.exit_code != 0 and "no.csv" in r.output


def test_human_train_cli_rejects_unknown_choices(tmp_path):
    _export(tmp_path, n_images=4, n_participants=2)
    r = CliRunner().invoke(app, ["train", "--trials", str(tmp_path / "trials.csv"), "--fixations", str(tmp_path / "fixations.csv"),
                                 "--images", str(tmp_path / "images.npz"), "--out", str(tmp_path / "m"), "--variant", "both"])
    assert r.exit_code != 0 and "variant must be one of" in r.output


def test_human_train_cli_needs_one_data_source(tmp_path):
    _export(tmp_path, n_images=4, n_participants=2)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "m")])
    assert r.exit_code != 0 and "--server" in r.output and "--trials" in r.output
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--trials", str(tmp_path / "trials.csv"),
                            "--fixations", str(tmp_path / "fixations.csv"), "--server", "http://127.0.0.1:9"])
    assert r.exit_code != 0 and "not both" in r.output
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--server", "http://127.0.0.1:9", "--token", "t"])
    assert r.exit_code != 0 and "cannot reach the study server" in r.output
    assert not (tmp_path / "m").exists()
