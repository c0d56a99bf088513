"""Training health: D separates real from fake on the built-in faces, samples improve, and a dead
discriminator is reported (log, console, health.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gazetune.cli import app
from gazetune.evaluate.distances import swd
from gazetune.nets import DCGANGenerator, UNetDiscriminator, load_generator
from gazetune.nets.latent import latents_from_seeds
from gazetune.tune.health import LN4, HealthMonitor, d_separation, health_warmup, sample_diversity
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
    # population variances 2/3 (real) and 1.5625 (fake), pooled: sqrt((2/3 + 1.5625) / 2)
    assert s["health/logit_spread"] == pytest.approx(1.05573, abs=1e-5)
    assert d_separation(torch.tensor([0.3]), torch.tensor([0.3]))["health/logit_spread"] == 0.0


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
    assert events and events[0]["problem"] == "d_chance" and "scores every image alike" in events[0]["message"]
    health = json.loads((out / "health.json").read_text())
    # at chance because it answers alike, and frozen because lr_D = 0
    assert not health["healthy"] and [w["problem"] for w in health["warnings"]] == ["d_chance", "d_frozen"]
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


def _level(spread, gain, n=60, seed=0):
    """Steps whose accuracy and gap are at chance, with the given logit spread and step gains
    (``gain``: ``(mean, sd)`` drawn per probe, every 4th step; ``None``: not logged)."""
    rng = np.random.default_rng(seed)
    for step in range(1, n + 1):
        row = {"health/acc_real": 0.52, "health/acc_fake": 0.5, "health/logit_gap": 0.02, "D/eq2": 1.38}
        if spread is not None:
            row["health/logit_spread"] = spread
        if gain is not None and step % 4 == 1:
            row["health/d_step_gain"] = float(rng.normal(*gain))
        yield step, row


def test_monitor_tells_a_balanced_discriminator_from_a_dead_or_idle_one():
    # responsive (spread 0.3) and learning (each D step lowers its own batch's loss by ~0.01):
    # accuracy 0.51 and gap 0.02 are a balanced game, not a warning
    mon = HealthMonitor(window=40)
    for step, row in _level(0.3, (0.02, 0.01)):
        assert mon.update(step, row) is None
    assert mon.state() == "balanced" and mon.summary()["share_steps_balanced"] > 0.3 and mon.summary()["healthy"]
    # the same accuracy and gap from a D that answers alike for every image (the core issue's D),
    # even while its steps still gain clearly (t ~ 15: bench/health_rule.py's `deadslow`)
    mon = HealthMonitor(window=40)
    got = [w for step, row in _level(0.0005, (0.01, 0.002)) if (w := mon.update(step, row))]
    assert [w["problem"] for w in got] == ["d_chance"] and "scores every image alike" in got[0]["message"]
    # ... and from a responsive D whose steps buy nothing on average (gains are noise around 0)
    mon = HealthMonitor(window=40)
    got = [w for step, row in _level(0.3, (0.0, 0.01)) if (w := mon.update(step, row))]
    assert got and got[0]["problem"] == "d_chance" and "do not improve" in got[0]["message"]
    # logs without spread or gain (older runs): level answers are at chance, as before
    mon = HealthMonitor(window=40)
    assert [w["problem"] for step, row in _level(None, None) if (w := mon.update(step, row))] == ["d_chance"]


def test_monitor_warns_on_a_frozen_discriminator_whatever_its_accuracy():
    mon = HealthMonitor(window=20)
    row = {"health/acc_real": 0.0, "health/acc_fake": 1.0, "health/logit_gap": -0.25, "health/logit_spread": 0.14}
    got = []
    for step in range(1, 41):
        w = mon.update(step, {**row, **({"health/d_step_gain": 0.0} if step % 4 == 1 else {})})
        got += [w] if w else []
    assert [w["problem"] for w in got] == ["d_frozen"] and "change nothing" in got[0]["message"]
    assert mon.state() == "ok"  # not level (gap -0.25): the old rule saw nothing wrong here


def test_a_responsive_discriminator_that_does_not_learn_is_reported_frozen(faces, tmp_path):
    """A healthy architecture and init, but lr_D = 0: its logits differ from image to image, so
    the spread does not flag it; the step gain is exactly 0."""
    out = tmp_path / "lr0"
    cfg = TrainConfig(**FACES, steps=40, checkpoint_every=0, health_window=20, lr_d=0.0)
    pretrain(cfg, faces[0], out, progress=False)
    gains = [r["health/d_step_gain"] for r in _rows(out) if r["kind"] == "step" and "health/d_step_gain" in r]
    assert len(gains) == 10 and all(g == 0.0 for g in gains)
    health = json.loads((out / "health.json").read_text())
    problems = {w["problem"]: w["message"] for w in health["warnings"]}
    assert "d_frozen" in problems and set(problems) <= {"d_frozen", "d_chance"}
    assert "d_chance" not in problems or "do not improve" in problems["d_chance"]
    # re-judged from the log by the CLI: the same verdict, the same steps, a plot and a JSON
    res = CliRunner().invoke(app, ["gan", "health", str(out), "--block", "10", "--plot", str(tmp_path / "h.png"),
                                   "--json", str(tmp_path / "h.json")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "warning (d_frozen): steps 21-40" in res.output and "frozen 10%" in res.output  # row 40 of 31-40
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    replayed = json.loads((tmp_path / "h.json").read_text())
    assert replayed["window"] == 20 and len(replayed["blocks"]) == 4
    assert [w["from_step"] for w in replayed["summary"]["warnings"]] == [w["from_step"] for w in health["warnings"]]


def test_health_cli_on_a_learning_run_and_on_bad_input(short_run, tmp_path):
    res = CliRunner().invoke(app, ["gan", "health", str(short_run[0]), "--block", "50"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "no warning" in res.output and "warning (" not in res.output and "1-50" in res.output
    res = CliRunner().invoke(app, ["gan", "health", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no log.jsonl" in res.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.jsonl").write_text('{"kind": "event"}\nnot json\n')
    res = CliRunner().invoke(app, ["gan", "health", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no step rows with health figures" in res.output
    res = CliRunner().invoke(app, ["gan", "health", str(short_run[0]), "--block", "0"])
    assert res.exit_code == 2 and "--block" in res.output


def test_the_step_gain_probe_changes_nothing_in_the_run(faces, tmp_path):
    """Same losses and the same generator with and without the probe (spectral norm on, so D has
    buffers that a training-mode forward would move); a learning D's gains are mostly positive."""
    runs = {}
    for every in (0, 2):
        cfg = TrainConfig(**FACES, steps=12, checkpoint_every=0, health_window=10, spectral_norm=True,
                          health_probe_every=every)
        pretrain(cfg, faces[0], tmp_path / str(every), progress=False)
        runs[every] = [r for r in _rows(tmp_path / str(every)) if r["kind"] == "step"]
    for a, b in zip(runs[0], runs[2]):
        assert a["D/eq2"] == b["D/eq2"] and a["G/eq1"] == b["G/eq1"]
    assert "health/d_step_gain" not in runs[0][0]
    gains = [r["health/d_step_gain"] for r in runs[2] if "health/d_step_gain" in r]
    assert len(gains) == 6 and np.mean(np.array(gains) > 0) >= 0.5, gains
    g0, g2 = load_generator(tmp_path / "0", which="G"), load_generator(tmp_path / "2", which="G")
    for p0, p2 in zip(g0.parameters(), g2.parameters()):
        assert torch.equal(p0, p2)
    # sparse logs: every logged row carries a gain (probed on logged steps too), so a re-judged
    # log has one per row
    cfg = TrainConfig(**{**FACES, "log_every": 5}, steps=10, checkpoint_every=0, health_probe_every=4)
    pretrain(cfg, faces[0], tmp_path / "sparse", progress=False)
    rows = [r for r in _rows(tmp_path / "sparse") if r["kind"] == "step"]
    assert [r["step"] for r in rows] == [5, 10] and all("health/d_step_gain" in r for r in rows)


def test_a_run_shorter_than_two_windows_still_has_its_last_window_judged():
    """The demo tunes 80 steps with a 50-step window: a full warm-up window would leave nothing
    judged and call any D healthy."""
    assert (health_warmup(80, 400), health_warmup(50, 80), health_warmup(50, 30)) == (80, 30, 0)
    mon = HealthMonitor(window=50, warmup=health_warmup(50, 80))
    dead = {"health/acc_real": 0.5, "health/acc_fake": 0.5, "health/logit_gap": 0.0, "health/logit_spread": 0.0}
    got = [w for step in range(1, 81) if (w := mon.update(step, dead))]
    assert [(w["problem"], w["from_step"], w["to_step"]) for w in got] == [("d_chance", 31, 80)]


def test_sample_diversity_against_numpy():
    rng = np.random.default_rng(3)
    real = rng.normal(0.0, 0.5, (16, 3, 8, 8)).astype(np.float32)
    fake = rng.normal(0.2, 0.1, (12, 3, 8, 8)).astype(np.float32)
    expected = fake.std(axis=0).mean() / real.std(axis=0).mean()  # numpy's std is the population one
    assert sample_diversity(torch.as_tensor(real), torch.as_tensor(fake)) == pytest.approx(float(expected), rel=1e-5)
    assert sample_diversity(torch.as_tensor(real), torch.as_tensor(real[:5])) == pytest.approx(
        float(real[:5].std(axis=0).mean() / real.std(axis=0).mean()), rel=1e-5)
    one_image = np.repeat(fake[:1], 12, axis=0)
    assert sample_diversity(torch.as_tensor(real), torch.as_tensor(one_image)) == 0.0
    assert np.isnan(sample_diversity(torch.as_tensor(real[:1]), torch.as_tensor(fake)))


def test_monitor_warns_on_a_collapsed_generator_whatever_d_does():
    # D near-winning (accuracy 0.91, gap 8.5: not "wins", not level), G's samples all alike: the
    # plain convolutional reference at 64 px (docs/benchmarks.md), which the D rules never flagged
    row = {"health/acc_real": 0.95, "health/acc_fake": 0.87, "health/logit_gap": 8.5, "health/logit_spread": 3.7}
    mon = HealthMonitor(window=20)
    got = [w for step in range(1, 41) if (w := mon.update(step, {**row, "health/sample_diversity": 0.02}))]
    assert [w["problem"] for w in got] == ["g_collapsed"] and "0.02 times" in got[0]["message"]
    assert got[0]["from_step"] == 1 and got[0]["to_step"] == 20
    assert mon.summary()["share_steps_g_collapsed"] == pytest.approx(21 / 40)
    # the same D with a generator that varies: no warning; and logs without the figure: none either
    for extra in ({"health/sample_diversity": 0.6}, {}):
        mon = HealthMonitor(window=20)
        assert not [w for step in range(1, 41) if mon.update(step, {**row, **extra})]


def test_a_collapsed_generator_is_reported(faces, tmp_path):
    """A built-in generator whose latent projection is zero and frozen: every z gives the same
    image, however G trains, so the run must warn g_collapsed (log, health.json, gazetune gan health)."""
    cfg = TrainConfig(**FACES, steps=40, checkpoint_every=0, health_window=20)
    torch.manual_seed(0)
    G = DCGANGenerator(cfg.z_dim, cfg.size, cfg.channels, cfg.g_width)
    with torch.no_grad():
        G.project.weight.zero_()
    G.project.weight.requires_grad_(False)
    out = tmp_path / "collapsed"
    pretrain(cfg, faces[0], out, progress=False, generator=G)
    rows = [r for r in _rows(out) if r["kind"] == "step"]
    assert all(r["health/sample_diversity"] < 1e-4 for r in rows)
    health = json.loads((out / "health.json").read_text())
    assert "g_collapsed" in [w["problem"] for w in health["warnings"]]
    assert health["last_window_sample_diversity"] < 1e-4
    res = CliRunner().invoke(app, ["gan", "health", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "warning (g_collapsed)" in res.output and "G collapsed" in res.output


def test_a_healthy_run_logs_a_varied_generator(short_run):
    """The built-in generator on the same faces (the fixtures' 150-step run): varied samples, no collapse."""
    run = short_run[0]
    rows = [r for r in _rows(run) if r["kind"] == "step"]
    divs = [r["health/sample_diversity"] for r in rows]
    assert len(divs) == len(rows) and min(divs) > 0.1
    assert not json.loads((run / "health.json").read_text()).get("share_steps_g_collapsed")
