"""Training health: D separates real from fake on the built-in faces, samples improve, and a dead
discriminator is reported (log, console, health.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from gazetune.evaluate.distances import swd
from gazetune.nets import DCGANGenerator, UNetDiscriminator, load_generator
from gazetune.nets.latent import latents_from_seeds
from gazetune.tune.health import LN4, HealthMonitor, d_separation
from gazetune.tune.train import TrainConfig, pretrain

from conftest import FACES_GAN as FACES


@pytest.fixture(scope="module")
def faces(faces_split):
    return faces_split[0], np.concatenate([faces_split[1], faces_split[2]])


@pytest.fixture(scope="module")
def short_run(faces_gan):
    return faces_gan[0], faces_gan[1]


def _rows(run):
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def test_d_separation_hand_computed():
    s = d_separation(torch.tensor([1.0, -1.0, 0.0]), torch.tensor([-2.0, 0.5]))
    assert s["health/acc_real"] == pytest.approx(0.5)  # 1 + 0 + a tie counted half, over 3
    assert s["health/acc_fake"] == pytest.approx(0.5)
    assert s["health/logit_gap"] == pytest.approx(0.0 - (-0.75))


def test_d_separates_real_from_fake_early_in_pretraining(short_run):
    rows = [r for r in _rows(short_run[0]) if r["kind"] == "step"]
    early = rows[20:80]  # steps 21-80
    acc = np.mean([0.5 * (r["health/acc_real"] + r["health/acc_fake"]) for r in early])
    gap = np.mean([r["health/logit_gap"] for r in early])
    assert acc > 0.6 and gap > 0.3, (acc, gap)
    # the image loss is away from 2 ln 2 for most of the run (the dead D sat there throughout)
    away = np.mean([abs(r["D/eq2"] - LN4) > 0.05 for r in rows[10:]])
    assert away > 0.7
    health = json.loads((short_run[0] / "health.json").read_text())
    assert health["healthy"] and health["share_steps_at_chance"] < 0.2


def test_samples_get_closer_to_held_out_faces(short_run, faces):
    """SWD between 200 samples and the held-out faces falls clearly over 150 steps."""
    out, cfg = short_run
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)  # the same initial weights pretrain drew
        g0 = DCGANGenerator(cfg.z_dim, cfg.size, cfg.channels, cfg.g_width).eval()
    g1 = load_generator(out, which="G_ema")
    z = latents_from_seeds(range(200), cfg.z_dim)
    with torch.no_grad():
        before = swd(faces[1], g0(z), seed=0).mean
        after = swd(faces[1], g1(z), seed=0).mean
    assert after < 0.6 * before, (before, after)


def _dead_discriminator() -> nn.Module:
    """The defect of the core issue: PyTorch's default initialisation without normalisation,
    whose image logit barely depends on the input (trained with lr 0 below, so it stays broken)."""
    torch.manual_seed(0)
    d = UNetDiscriminator(25, 1, 8, norm="none")
    for m in d.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
    return d


def test_dead_discriminator_triggers_the_warning(faces, tmp_path, capsys):
    out = tmp_path / "dead"
    cfg = TrainConfig(**FACES, steps=60, checkpoint_every=0, health_window=30, diffaug="", cutmix_prob=0.0,
                      pixel_weight=0.0, lr_d=0.0)
    pretrain(cfg, faces[0], out, progress=False, discriminator=_dead_discriminator())
    events = [r for r in _rows(out) if r["kind"] == "event" and r["event"] == "health_warning"]
    assert events and events[0]["problem"] == "d_chance"
    health = json.loads((out / "health.json").read_text())
    assert not health["healthy"] and health["warnings"][0]["problem"] == "d_chance"
    assert "training health warning" in capsys.readouterr().err


def test_monitor_warns_once_per_stretch_and_on_a_winning_d():
    mon = HealthMonitor(window=5)
    chance = {"health/acc_real": 0.5, "health/acc_fake": 0.5, "health/logit_gap": 0.01, "D/eq2": LN4}
    wins = {"health/acc_real": 1.0, "health/acc_fake": 1.0, "health/logit_gap": 12.0, "D/eq2": 0.01}
    ok = {"health/acc_real": 0.8, "health/acc_fake": 0.7, "health/logit_gap": 1.5, "D/eq2": 1.0}
    got = [mon.update(s, chance) for s in range(1, 11)]
    assert [g is not None for g in got] == [False] * 4 + [True] + [False] * 5
    assert got[4]["from_step"] == 1 and got[4]["to_step"] == 5
    for s in range(11, 16):
        mon.update(s, ok)
    got = [mon.update(s, wins) for s in range(16, 21)]
    assert got[-1] is not None and got[-1]["problem"] == "d_wins"
    assert [w["problem"] for w in mon.warnings] == ["d_chance", "d_wins"]
    assert mon.summary()["share_eq2_away_from_2ln2"] == pytest.approx(10 / 20)
    with pytest.raises(ValueError, match="window"):
        HealthMonitor(window=0)
