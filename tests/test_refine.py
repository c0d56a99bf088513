"""Gaze-weighted refiner (SimGAN): losses by hand, networks, training on a toy flaw, CLI train/apply."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from typer.testing import CliRunner

from gazetune.cli import app
from gazetune.images import ImageSet, save_image_folder
from gazetune.refine import (
    LocalDiscriminator,
    RefineConfig,
    Refiner,
    load_refiner,
    local_discriminator_loss,
    patch_weights,
    refine_images,
    refiner_adversarial_loss,
    self_regularization_loss,
    train_refiner,
)
from gazetune.refine.train import maps_by_name
from gazetune.tune.maps import MapSet

SIZE = 16


# ------------------------------------------------------------------------------------------------
# losses against hand-computed values


def test_self_regularization_is_the_mean_absolute_difference():
    src = torch.zeros(1, 1, 2, 2)
    refined = torch.tensor([[[[0.2, -0.4], [0.0, 1.0]]]])
    assert self_regularization_loss(refined, src).item() == pytest.approx((0.2 + 0.4 + 0.0 + 1.0) / 4)
    with pytest.raises(ValueError, match="shape"):
        self_regularization_loss(refined, torch.zeros(1, 1, 2, 3))


def test_patch_weights_pool_the_map_then_normalise():
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2, :2] = 1.0  # one patch of four holds all the saliency
    m[..., 2:, 2:] = 0.5  # one holds half of it
    w = patch_weights(m, (2, 2), a=1.0)
    # patch means 1, 0, 0, 0.5 -> mean 0.375 -> weights m / 0.375
    assert w.flatten().tolist() == pytest.approx([1 / 0.375, 0.0, 0.0, 0.5 / 0.375])
    half = patch_weights(m, (2, 2), a=0.5)
    assert half.flatten().tolist() == pytest.approx([0.5 + 0.5 / 0.375, 0.5, 0.5, 0.5 + 0.25 / 0.375])
    assert torch.equal(patch_weights(m, (2, 2), a=0.0), torch.ones(1, 1, 2, 2))
    assert torch.equal(patch_weights(None, (3, 2), a=1.0, n=2), torch.ones(2, 1, 3, 2))


def test_adversarial_losses_by_hand():
    logits_f = torch.tensor([[[[0.0, 2.0]]]])
    logits_r = torch.tensor([[[[1.0, -1.0]]]])
    w_f = torch.tensor([[[[2.0, 0.0]]]])
    w_r = torch.tensor([[[[0.5, 1.5]]]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus
    # refiner: mean w softplus(-l)
    assert refiner_adversarial_loss(logits_f, w_f).item() == pytest.approx((2.0 * sp(0.0) + 0.0 * sp(-2.0)) / 2)
    # discriminator: mean w_r softplus(-l_r) + mean w_f softplus(l_f)
    want = (0.5 * sp(-1.0) + 1.5 * sp(1.0)) / 2 + (2.0 * sp(0.0) + 0.0 * sp(2.0)) / 2
    assert local_discriminator_loss(logits_r, logits_f, w_r, w_f).item() == pytest.approx(want)


# ------------------------------------------------------------------------------------------------
# networks


def test_refiner_starts_as_identity_and_is_fully_convolutional():
    torch.manual_seed(0)
    r = Refiner(channels=3, width=8, blocks=2)
    x = torch.rand(2, 3, 20, 28) * 1.8 - 0.9
    torch.testing.assert_close(r(x), x, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        r(torch.zeros(1, 1, 8, 8))
    d = LocalDiscriminator(channels=3, width=4)
    assert d(x).shape == (2, 1, 5, 7)  # one logit per patch, grid at 1/4 of the image


def test_local_discriminator_is_local():
    torch.manual_seed(0)
    d = LocalDiscriminator(channels=1, width=4)
    x = torch.zeros(1, 1, 32, 32)
    y = x.clone()
    y[..., :4, :4] = 1.0  # change the top-left corner only
    with torch.no_grad():
        diff = (d(y) - d(x)).abs()[0, 0]
    assert diff[0, 0] > 0
    assert float(diff[4:, 4:].abs().max()) == 0.0  # patches far away do not see it


# ------------------------------------------------------------------------------------------------
# training on a toy case: fakes are smooth images with noise in the top-left quadrant


def smooth(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, SIZE // 4, SIZE // 4, generator=g)
    return 0.7 * torch.tanh(F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False))


def roughness(x: torch.Tensor) -> float:
    """Mean |Laplacian| inside the flawed quadrant (away from its border)."""
    k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[None, None]
    return float(F.conv2d(x, k, padding=1)[..., 1:7, 1:7].abs().mean())


@pytest.fixture(scope="module")
def toy():
    real = smooth(48, 0)
    fake = smooth(48, 1)
    g = torch.Generator().manual_seed(2)
    fake[..., :8, :8] += 0.4 * torch.randn(48, 1, 8, 8, generator=g)
    fake = fake.clamp(-1, 1)
    maps = torch.zeros(48, 1, SIZE, SIZE)
    maps[..., :8, :8] = 1.0  # people look at the flawed quadrant
    names = [f"im{i:02d}.png" for i in range(48)]
    return ImageSet(fake.numpy(), names), ImageSet(real.numpy(), names), maps


def toy_config(**kw) -> RefineConfig:
    base = dict(steps=60, batch=8, width=8, blocks=1, residual_scale=1.0, d_width=8, lr=3e-3, d_lr=3e-3, reg_weight=0.1,
                map_mode="direct", log_every=10, history_share=0.5, history_capacity=64)
    base.update(kw)
    return RefineConfig(**base)


def read_log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    fake, real, maps = toy
    run = tmp_path_factory.mktemp("refine") / "run"
    before = torch.get_rng_state()
    train_refiner(toy_config(), fake, real, run, fake_maps=maps, progress=False)
    assert torch.equal(before, torch.get_rng_state())  # the global RNG is left alone
    return run


def test_refiner_trains_toward_real(toy, trained):
    fake, real, _ = toy
    refined = refine_images(load_refiner(trained), fake.images)
    rough_fake, rough_real, rough_refined = roughness(fake.to_tensor()), roughness(real.to_tensor()), roughness(refined)
    assert rough_fake > 5 * rough_real  # the flaw is visible in the statistic
    # the refiner removed at least 40 % of the excess roughness where the flaw is
    assert rough_refined - rough_real < 0.6 * (rough_fake - rough_real)
    log = read_log(trained)
    assert [e["step"] for e in log][-1] == 60
    # the local discriminator separates real from refined patches (not a loss stuck at 2 ln 2)
    assert min(e["loss_d"] for e in log) < 2 * math.log(2) - 0.2
    assert max(0.5 * (e["d_acc_real"] + e["d_acc_refined"]) for e in log) > 0.6
    assert (trained / "samples.png").exists() and (trained / "config.toml").exists()


def test_self_regularization_keeps_the_output_close(toy, trained, tmp_path):
    fake, real, maps = toy
    tight = tmp_path / "tight"
    train_refiner(toy_config(reg_weight=30.0, steps=30), fake, real, tight, fake_maps=maps, progress=False)
    x = fake.to_tensor()
    loose_dist = float((refine_images(load_refiner(trained), x) - x).abs().mean())
    tight_dist = float((refine_images(load_refiner(tight), x) - x).abs().mean())
    assert tight_dist < 0.02
    assert tight_dist < 0.3 * loose_dist
    with pytest.raises(FileExistsError, match="already holds"):
        train_refiner(toy_config(steps=1), fake, real, tight, progress=False)


def test_train_rejects_mismatched_sets(toy, tmp_path):
    fake, real, _ = toy
    small = ImageSet(real.images[:, :, :8, :8].copy(), real.names)
    with pytest.raises(ValueError, match="differ"):
        train_refiner(toy_config(steps=1), fake, small, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="alpha"):
        train_refiner(toy_config(alpha=2.0), fake, real, tmp_path / "y", progress=False)


def test_maps_by_name_matches_names_with_or_without_extension():
    ms = MapSet(real={"a": np.ones((4, 4), np.float32), "sub/b.jpg": np.full((4, 4), 2, np.float32)},
                synthetic={("v1", 3): np.full((4, 4), 3, np.float32)})
    maps, found = maps_by_name(ms, ["a.png", "sub/b.jpg", "synthetic/v1/3.png", "c.png"], (8, 8))
    assert found == 3
    assert maps.shape == (4, 1, 8, 8)
    assert [float(maps[i].mean()) for i in range(4)] == pytest.approx([1.0, 2.0, 3.0, 1.0])


# ------------------------------------------------------------------------------------------------
# command line


def test_cli_train_and_apply(toy, tmp_path):
    fake, real, maps = toy
    save_image_folder(fake, tmp_path / "fake")
    save_image_folder(real, tmp_path / "real")
    MapSet(real={n: maps[i, 0].numpy() for i, n in enumerate(fake.names)}).save(tmp_path / "maps.npz")
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(app, ["refine", "train", "--fake", str(tmp_path / "fake"), "--images", str(tmp_path / "real"),
                              "--maps", str(tmp_path / "maps.npz"), "--steps", "3", "--batch", "4", "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert "48/48 fake" in res.output
    cfg = (run / "config.toml").read_text()
    assert 'map_mode = "direct"' in cfg and f"size = {SIZE}" in cfg
    res = runner.invoke(app, ["refine", "apply", "--model", str(run), "--images", str(tmp_path / "fake"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == sorted(fake.names)


def test_cli_clear_errors(toy, tmp_path):
    fake, real, _ = toy
    save_image_folder(fake, tmp_path / "fake")
    (tmp_path / "empty").mkdir()
    runner = CliRunner()
    res = runner.invoke(app, ["refine", "train", "--fake", str(tmp_path / "empty"), "--images", str(tmp_path / "fake"),
                              "--out", str(tmp_path / "run")])
    assert res.exit_code != 0
    assert "--fake" in res.output and "no png" in res.output
    res = runner.invoke(app, ["refine", "train", "--fake", str(tmp_path / "fake"), "--images", str(tmp_path / "fake"),
                              "--maps", "m.npz", "--saliency-model", "s.pt", "--out", str(tmp_path / "run")])
    assert res.exit_code != 0 and "not both" in res.output
    res = runner.invoke(app, ["refine", "apply", "--model", str(tmp_path / "nowhere"), "--images", str(tmp_path / "fake"),
                              "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "not found" in res.output


def test_cli_train_with_a_saliency_model(toy, tmp_path):
    from gazetune.saliency.model import SaliencyUNet, save_saliency_model

    fake, real, _ = toy
    save_image_folder(fake.subset(range(8)), tmp_path / "fake")
    save_image_folder(real.subset(range(8)), tmp_path / "real")
    torch.manual_seed(0)
    save_saliency_model(SaliencyUNet(in_channels=1, width=4, depth=1, bias_grid=None), tmp_path / "sal.safetensors")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["refine", "train", "--fake", str(tmp_path / "fake"), "--images", str(tmp_path / "real"),
                                   "--saliency-model", str(tmp_path / "sal.safetensors"), "--steps", "2", "--batch", "4",
                                   "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert "maps: predicted" in res.output
    assert 'map_mode = "predicted"' in (run / "config.toml").read_text()
