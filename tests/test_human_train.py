"""Human-response models (FIG. 5) train on simulated-observer-like trials and beat chance on
held-out participants; study-export round trip; save/load; CAM; CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from gazetune.human.model import (
    HumanModelConfig,
    HumanResponseModel,
    SeparateHumanModel,
    load_human_model,
    load_human_model_info,
    save_human_model,
)
from gazetune.trials import Trial
from gazetune.human.train import (
    HumanTrainConfig,
    HumanTrials,
    auc,
    read_study_export,
    split_participants,
    train_from_trials,
    trials_from_simulated,
    write_study_export,
)

SIZE = 25


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is faster, and far faster on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def simulated_study(n_images: int = 24, n_participants: int = 8, seed: int = 0):
    """Observer-like trials whose answers depend on what the model can see.

    Odd images are "synthetic": a bright 5 x 5 artefact at a random place on a smooth texture.
    Each observer makes 3 central fixations; on a synthetic image they notice the artefact with
    probability .85 (a long fixation on it) and then answer fake with probability .9; otherwise
    they answer real with probability .85.
    """
    rng = np.random.default_rng(seed)
    images, kinds, artefacts = [], [], []
    for i in range(n_images):
        base = gaussian_filter(rng.normal(size=(SIZE, SIZE)), 2.0)
        base = 0.5 * base / np.abs(base).max()
        where = None
        if i % 2:
            cy, cx = rng.integers(4, SIZE - 4, 2)
            base[cy - 2 : cy + 3, cx - 2 : cx + 3] = 1.0
            where = (float(cx), float(cy))
        images.append(base[None].astype(np.float32))
        kinds.append("synthetic" if where else "real")
        artefacts.append(where)
    names = [f"img{i:02d}.png" for i in range(n_images)]
    trials = []
    for p in range(n_participants):
        for i in range(n_images):
            fix = [[SIZE / 2 + rng.normal(0, 2), SIZE / 2 + rng.normal(0, 2), rng.uniform(150, 300)] for _ in range(3)]
            if artefacts[i] is not None and rng.random() < 0.85:
                fix.insert(1, [artefacts[i][0] + rng.normal(0, 0.7), artefacts[i][1] + rng.normal(0, 0.7), rng.uniform(350, 600)])
                answer = 0 if rng.random() < 0.9 else 1
            else:
                answer = 1 if rng.random() < 0.85 else 0
            trials.append({"participant": f"p{p}", "image_index": i, "answer": answer,
                           "rt_ms": float(rng.uniform(600, 1500)), "fixations": np.asarray(fix), "kind": kinds[i]})
    return np.stack(images), names, trials


@pytest.fixture(scope="module")
def study():
    images, names, raw = simulated_study()
    return images, names, trials_from_simulated(raw, names)


def test_auc_hand_values():
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])) == 0.75
    assert auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5  # tie counts half
    assert np.isnan(auc(np.array([0.5]), np.array([True])))


def test_split_is_by_participant():
    train, hold = split_participants(["a", "b", "c", "d", "a"], 0.25, seed=0)
    assert len(hold) == 1 and set(train) | set(hold) == {"a", "b", "c", "d"} and not set(train) & set(hold)
    with pytest.raises(ValueError, match=">= 2 participants"):
        split_participants(["a", "a"], 0.5, seed=0)


@pytest.mark.parametrize("variant,steps", [("joint", 80), ("separate", 120)])
def test_variant_beats_chance_on_held_out_participants(study, variant, steps):
    images, names, trials = study
    cfg = HumanTrainConfig(variant=variant, steps=steps, width=8, batch_size=16, holdout_fraction=0.25, seed=0)
    model, report = train_from_trials(images, names, trials, cfg)
    hold = report.holdout
    assert report.n_holdout_trials == 2 * 24 and len(report.holdout_participants) == 2
    assert not set(report.holdout_participants) & set(report.train_participants)
    # chance is AUC .5 and the majority-class accuracy
    assert hold["label_auc"] > 0.7, hold
    assert hold["label_accuracy"] > hold["majority_accuracy"], hold
    assert hold["gaze_cc"] > 0.5 and hold["gaze_nss"] > 1.0, hold
    assert isinstance(model, HumanResponseModel if variant == "joint" else SeparateHumanModel)


def test_scanpath_head_and_cyborg_and_rt_weighting_train(study):
    images, names, trials = study
    cfg = HumanTrainConfig(variant="joint", gaze_kind="scanpath", scanpath_len=4, steps=3, width=4,
                           batch_size=8, cyborg_weight=0.5, rt_weighting="inverse", answer_scale="binary")
    model, report = train_from_trials(images, names, trials, cfg)
    assert {"gaze", "label_ce", "cyborg_map", "total"} <= set(report.final_losses)
    out = model.outputs(torch.as_tensor(images[:2]))
    sp = out.scanpath.detach()
    assert sp.shape == (2, 4, 3) and float(sp.min()) >= 0 and float(sp.max()) <= 1
    with pytest.raises(ValueError, match="scanpath"):
        HumanTrainConfig(variant="separate", gaze_kind="scanpath", scanpath_len=4)


def test_cam_mean_plus_bias_is_the_logit():
    torch.manual_seed(0)
    for model in (HumanResponseModel(HumanModelConfig(in_channels=1, width=4, image_size=(24, 24))),
                  SeparateHumanModel(HumanModelConfig(variant="separate", in_channels=1, width=4, image_size=(24, 24)))):
        x = torch.randn(3, 1, 24, 24)
        out = model.outputs(x)
        head = model.label_head if isinstance(model, HumanResponseModel) else model.label.head
        # bilinear resize from an exact 2x/4x grid keeps the mean: mean(CAM) + b = logit
        torch.testing.assert_close(out.cam.mean(dim=(1, 2)) + head.bias, out.label_logit, atol=1e-4, rtol=1e-4)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = SeparateHumanModel(HumanModelConfig(variant="separate", in_channels=1, width=4, label_reads_image=True))
    path = save_human_model(model, tmp_path / "h.safetensors", extra={"auc": 0.9})
    loaded = load_human_model(path)
    x = torch.randn(2, 1, 25, 25)
    with torch.no_grad():
        a, b = model.eval()(x), loaded(x)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    cfg, extra = load_human_model_info(path)
    assert cfg.label_reads_image and extra == {"auc": 0.9}
    assert json.loads((tmp_path / "h.safetensors.json").read_text())["config"]["variant"] == "separate"
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(Exception):
        load_human_model(tmp_path / "bad.safetensors")


def test_study_export_roundtrip(tmp_path, study):
    _, _, trials = study
    part = trials.subset(range(5))
    write_study_export(part, tmp_path / "trials.csv", tmp_path / "fix.csv")
    back = read_study_export(tmp_path / "trials.csv", tmp_path / "fix.csv")
    assert back.participant == part.participant and back.image == part.image and back.kind == part.kind
    np.testing.assert_array_equal(back.answer, part.answer)
    np.testing.assert_allclose(back.rt_ms, part.rt_ms, atol=0.05)
    for f, g in zip(back.fixations, part.fixations):
        np.testing.assert_allclose(f, g, atol=0.06)
    (tmp_path / "bad.csv").write_text("participant,image,answer\np1,a.png,maybe\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        read_study_export(tmp_path / "bad.csv")


def test_unknown_trial_images_are_named(study):
    images, names, trials = study
    bad = HumanTrials([Trial("p0", "nope.png", answer_real=True, rt_ms=500.0, fixations=np.zeros((0, 3)))])
    with pytest.raises(ValueError, match="nope.png"):
        train_from_trials(images, names, bad, HumanTrainConfig(steps=1))


@pytest.fixture(scope="module")
def panel_study():
    """The project's simulated observers (lab panel of 8) on 35 real faces and 35 faces with a
    12 x 12 patch of noise (a local flaw), 25 x 25 px."""
    from gazetune.images import load_image_set
    from gazetune.observers import ObserverPanel, PatchRealismCritic, make_items, run_panel

    faces = load_image_set("builtin:faces", size=SIZE)
    critic = PatchRealismCritic().fit(faces.images[:30])
    rng = np.random.default_rng(0)
    syn = faces.images[65:100].copy()
    for k in range(len(syn)):
        y0, x0 = rng.integers(0, SIZE - 12, 2)
        patch = syn[k, :, y0 : y0 + 12, x0 : x0 + 12]
        syn[k, :, y0 : y0 + 12, x0 : x0 + 12] = np.clip(patch + rng.normal(0, 0.5, patch.shape), -1, 1)
    items = make_items(faces.subset(np.arange(30, 65)), syn)
    raw = run_panel(ObserverPanel.lab(8, seed=0), items, critic, seed=0, display_ms=1500)
    return np.stack([it.image for it in items]), [it.image_id for it in items], raw


@pytest.mark.parametrize("variant", ["joint", "separate"])
def test_variants_beat_chance_on_observer_panel(panel_study, variant):
    images, names, raw = panel_study
    trials = trials_from_simulated(raw)
    assert len(trials) == 8 * 70 and set(trials.kind) == {"real", "synthetic"}
    cfg = HumanTrainConfig(variant=variant, steps=120, width=8, batch_size=16, seed=0)
    _, report = train_from_trials(images, names, trials, cfg)
    hold = report.holdout
    assert hold["label_auc"] > 0.6, hold  # held-out observers' answers, chance = .5
    assert hold["truth_auc"] > 0.6, hold
    assert hold["gaze_nss"] > 0.5 and hold["gaze_cc"] > 0.3, hold


def test_simulated_ratings_train_on_the_1_to_5_scale(panel_study):
    images, names, raw = panel_study
    trials = trials_from_simulated(raw[:200], answer="rating")
    assert set(np.unique(trials.answer)) <= {1, 2, 3, 4, 5}
    cfg = HumanTrainConfig(answer_scale="likert5", rt_weighting="inverse", steps=2, width=4, batch_size=8)
    _, report = train_from_trials(images, names, trials, cfg)
    assert np.isfinite(report.final_losses["total"])
