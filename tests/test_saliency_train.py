"""gazetune.saliency model, training, baselines, evaluation and CLI on small synthetic data.

Synthetic task: gray images with one bright disc at a random place; "observers" fixate around the
disc.  A model that learned anything must beat the content-free centre bias on held-out images.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gazetune.saliency.baselines import gaussian_center_bias, leave_one_out_maps, mean_map_center_bias
from gazetune.saliency.metrics import nss
from gazetune.saliency.model import SaliencyUNet, load_saliency_model, save_saliency_model
from gazetune.saliency.train import (
    SaliencyTrainConfig,
    evaluate_saliency,
    load_fixation_dataset,
    parse_loss,
    predict_maps,
    split_names,
    train_saliency,
)

H, W = 24, 32


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread: on a shared 2-core machine two contending threads are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blob_data(n: int, seed: int = 0, observers: int = 3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    images, fixations = [], []
    for _ in range(n):
        cx, cy = rng.uniform(4, W - 5), rng.uniform(4, H - 5)
        img = 0.2 * rng.standard_normal((H, W)) - 0.6
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 9] = 0.9
        images.append(np.clip(img, -1, 1))
        fixations.append({
            f"s{k}": np.clip(np.stack([cx + rng.normal(0, 1.0, 4), cy + rng.normal(0, 1.0, 4)], 1), 0, [W - 1, H - 1])
            for k in range(observers)
        })
    return np.asarray(images, dtype=np.float32)[:, None], fixations


def _write_folder(tmp_path, images, fixations):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rows = []
    for i, (img, per_subject) in enumerate(zip(images, fixations)):
        name = f"img{i:02d}.png"
        Image.fromarray(((img[0] + 1) * 127.5).round().astype(np.uint8)).convert("RGB").save(folder / name)
        for subject, fx in per_subject.items():
            for j, (x, y) in enumerate(fx):
                rows.append([name, subject, j, f"{x:.2f}", f"{y:.2f}", 200])
    csv_path = tmp_path / "fix.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "subject", "index", "x", "y", "duration_ms"])
        w.writerows(rows)
    return folder, csv_path


def test_model_shapes_gray_and_errors():
    torch.manual_seed(0)
    model = SaliencyUNet(width=4, depth=2)
    assert model(torch.zeros(2, 3, 25, 33)).shape == (2, 1, 25, 33)  # odd sizes pass
    assert model(torch.zeros(1, 1, 24, 32)).shape == (1, 1, 24, 32)  # gray is repeated to RGB
    gray = SaliencyUNet(in_channels=1, width=4, depth=2, center_prior=False, bias_grid=None)
    assert gray(torch.zeros(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="channel"):
        gray(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="N, C, H, W"):
        model(torch.zeros(3, 16, 16))


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = SaliencyUNet(width=4, depth=2, bias_grid=(3, 4)).eval()
    with torch.no_grad():
        model.bias_map.normal_()
    path = save_saliency_model(model, tmp_path / "sub" / "m.safetensors", extra={"size": [24, 32]})
    assert path.exists() and path.with_suffix(".json").exists()
    assert not list(path.parent.glob("*.tmp"))
    assert json.loads(path.with_suffix(".json").read_text())["config"]["bias_grid"] == [3, 4]
    loaded = load_saliency_model(path)
    x = torch.rand(2, 3, 24, 32) * 2 - 1
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(FileNotFoundError):
        load_saliency_model(tmp_path / "missing.safetensors")


def test_parse_loss_and_split():
    assert parse_loss("kl+0.5*cc") == [(1.0, "kl"), (0.5, "cc")]
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        parse_loss("kl+mse")
    names = [f"n{i}" for i in range(10)]
    train, test = split_names(names, 0.8, seed=3)
    assert (train, test) == split_names(list(reversed(names)), 0.8, seed=3)  # order-independent
    assert len(train) == 8 and set(train) | set(test) == set(names) and not set(train) & set(test)
    assert split_names(names, 0.8, seed=4) != (train, test)


def test_baselines():
    rng = np.random.default_rng(0)
    fix = np.stack([rng.normal(20, 3, 400), rng.normal(8, 2, 400)], 1)
    cb = gaussian_center_bias(fix, (H, W))
    assert cb.sum() == pytest.approx(1.0)
    assert np.unravel_index(cb.argmax(), cb.shape) == (8, 20)
    # same framing at double resolution: peak moves to the same relative place
    cb2 = gaussian_center_bias(fix, (2 * H, 2 * W), fit_shape=(H, W))
    assert np.unravel_index(cb2.argmax(), cb2.shape) in {(16, 40), (16, 41), (17, 40), (17, 41)}
    mm = mean_map_center_bias(np.stack([np.eye(3), np.ones((3, 3))]))
    assert mm.sum() == pytest.approx(1.0) and mm[0, 0] == pytest.approx((1 / 3 + 1 / 9) / 2)
    per_subject = {"a": np.array([[5.0, 5.0]]), "b": np.array([[6.0, 5.0]]), "c": np.zeros((0, 2))}
    out = list(leave_one_out_maps(per_subject, (H, W), 1.5))
    assert [s for s, *_ in out] == ["a", "b"]  # the observer without fixations is skipped
    subject, dens, held, own = out[0]
    assert dens.sum() == pytest.approx(1.0) and np.unravel_index(dens.argmax(), dens.shape) == (5, 6)
    assert held.tolist() == [[5.0, 5.0]] and np.unravel_index(own.argmax(), own.shape) == (5, 5)
    # the others' map is the pooled map of the others, mixed with 5 % uniform
    from gazetune.gaze import pooled_heatmap

    three = {"a": np.array([[5.0, 5.0]]), "b": np.array([[6.0, 5.0], [20.0, 10.0]]), "c": np.array([[2.0, 3.0]])}
    _, dens_a, _, _ = next(leave_one_out_maps(three, (H, W), 1.5))
    want = 0.95 * pooled_heatmap([three["b"], three["c"]], (H, W), 1.5, "sum") + 0.05 / (H * W)
    np.testing.assert_allclose(dens_a, want, rtol=1e-5, atol=1e-9)


def test_training_beats_center_bias_on_held_out_blobs():
    images, fixations = _blob_data(32, seed=0)
    from gazetune.gaze import pooled_heatmap

    maps = np.stack([pooled_heatmap(list(f.values()), (H, W), 1.5) for f in fixations])
    cfg = SaliencyTrainConfig(epochs=8, batch_size=8, lr=3e-3, width=8, depth=2, loss="kl+0.5*bce", progress=False)
    model, history = train_saliency(images[:24], maps[:24], cfg, val_images=images[24:], val_maps=maps[24:])
    assert len(history["loss"]) == 8 and history["loss"][-1] < history["loss"][0]
    assert set(history) >= {"kl", "bce", "val_loss", "seconds"}
    preds = predict_maps(model, images[24:])
    assert preds.shape == (8, H, W) and np.allclose(preds.sum(axis=(1, 2)), 1.0, atol=1e-5)
    cb = gaussian_center_bias(np.concatenate([np.concatenate(list(f.values())) for f in fixations[:24]]), (H, W))
    model_nss = np.mean([nss(p, np.concatenate(list(f.values()))) for p, f in zip(preds, fixations[24:])])
    cb_nss = np.mean([nss(cb, np.concatenate(list(f.values()))) for f in fixations[24:]])
    assert model_nss > cb_nss + 1.0, (model_nss, cb_nss)
    # blurring keeps densities
    assert np.allclose(predict_maps(model, images[24:26], blur_sigma=1.0).sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_training_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train_saliency(np.full((2, 3, 8, 8), 5.0, np.float32), np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="target_maps"):
        train_saliency(np.zeros((2, 3, 8, 8), np.float32), np.zeros((2, 8, 9), np.float32))


def test_evaluate_rows_and_inter_observer(tmp_path):
    images, fixations = _blob_data(6, seed=1)
    folder, csv_path = _write_folder(tmp_path, images, fixations)
    data = load_fixation_dataset(folder, csv_path, width=W, sigma_frac=1.5 / W)
    assert data.images.shape == (6, 3, H, W) and data.maps.max() == pytest.approx(1.0)
    # every fixation lasts 200 ms here, so weighting by duration changes nothing
    weighted = load_fixation_dataset(folder, csv_path, width=W, sigma_frac=1.5 / W, duration_weighted=True)
    np.testing.assert_allclose(weighted.maps, data.maps, atol=1e-6)
    cb = gaussian_center_bias(np.concatenate([np.concatenate(list(f.values())) for f in data.fixations]), (H, W))
    # an oracle "prediction": the pooled maps themselves
    result = evaluate_saliency({"oracle": data.maps}, data, cb)
    rows = result["rows"]
    assert list(rows) == ["oracle", "center bias", "inter-observer"]
    assert rows["center bias"]["mean"]["IG"] == pytest.approx(0.0)
    assert rows["oracle"]["mean"]["CC"] == pytest.approx(1.0) and rows["oracle"]["mean"]["KLD"] < 1e-6
    for name in ("oracle", "inter-observer"):
        assert rows[name]["mean"]["NSS"] > rows["center bias"]["mean"]["NSS"] + 1
        assert rows[name]["mean"]["sAUC"] > 0.8
    assert len(rows["oracle"]["per_image"]) == 6


def test_cli_train_then_eval(tmp_path):
    from gazetune.cli import app

    images, fixations = _blob_data(12, seed=2)
    folder, csv_path = _write_folder(tmp_path, images, fixations)
    runner = CliRunner()
    out = tmp_path / "run" / "sal.safetensors"
    res = runner.invoke(app, ["saliency", "train", "--images", str(folder), "--fixations", str(csv_path), "--out", str(out),
                              "--size", "32", "--epochs", "2", "--net-width", "4", "--depth", "2", "--split", "0.75", "--seed", "1", "--feature-width", "128"])
    assert res.exit_code == 0, res.output
    info = json.loads(out.with_suffix(".json").read_text())
    split = info["extra"]["split"]
    assert len(split["train"]) == 9 and len(split["test"]) == 3 and (tmp_path / "run" / "config.toml").exists()
    report = tmp_path / "eval.json"
    res = runner.invoke(app, ["saliency", "eval", "--checkpoint", str(out), "--images", str(folder), "--fixations",
                              str(csv_path), "--json", str(report)])
    assert res.exit_code == 0, res.output
    assert "NSS" in res.output and "inter-observer" in res.output and "center bias" in res.output
    result = json.loads(report.read_text())
    assert result["images"] == split["test"] and result["subset"] == "test"
    res = runner.invoke(app, ["saliency", "eval", "--checkpoint", str(tmp_path / "nope.safetensors"), "--images",
                              str(folder), "--fixations", str(csv_path)])
    assert res.exit_code != 0 and "not found" in res.output


def test_scale_fixations_keeps_pixel_centres():
    from gazetune.saliency.train import scale_fixations, working_shape

    assert working_shape((600, 800), 80) == (60, 80)
    # pixel centre 395.5 of 800 -> (395.5 + 0.5) * 0.1 - 0.5 = 39.1; the last pixel centre maps to the last one
    out = scale_fixations(np.array([[395.5, 0.0, 250.0], [799.0, 599.0, 100.0], [-20.0, 700.0, 50.0]]), (600, 800), (60, 80))
    np.testing.assert_allclose(out, [[39.1, 0.0], [79.0, 59.0], [0.0, 59.0]], atol=1e-9)  # y 0 -> -0.45, clipped to 0
    assert scale_fixations(np.zeros((0, 3)), (600, 800), (60, 80)).shape == (0, 2)
