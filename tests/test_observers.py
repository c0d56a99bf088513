"""gazetune.observers: realism critic, simulated viewing and panels (a test instrument)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from gazetune.images import ImageSet, load_image_set, split_indices
from gazetune.observers import (
    ObserverPanel,
    PanelItem,
    PatchRealismCritic,
    SimulatedObserver,
    make_items,
    priority_map,
    run_panel,
    sample_scanpath,
    track_loss_mask,
)


@pytest.fixture(scope="module")
def faces():
    return load_image_set("builtin:faces", size=32)


@pytest.fixture(scope="module")
def split(faces):
    train, test = split_indices(len(faces), 0.3, seed=1)
    return faces.images[train], faces.images[test]


@pytest.fixture(scope="module")
def critic(split):
    return PatchRealismCritic().fit(split[0])


def _noise(like: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0, 0.5, like.shape), -1, 1).astype(np.float32)


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(images, (0, 0, sigma, sigma)).astype(np.float32)


# ------------------------------------------------------------------------------ critic


def test_critic_ranks_real_above_blur_and_noise(critic, split) -> None:
    held_out = split[1]
    real = critic.realism_maps(held_out)
    assert real.shape == (len(held_out), 32, 32) and real.dtype == np.float32
    assert 0.0 <= real.min() and real.max() <= 1.0
    m_real = real.mean()
    m_noise = critic.realism_maps(_noise(held_out)).mean()
    m_blur = [critic.realism_maps(_blur(held_out, s)).mean() for s in (1.0, 1.5, 2.5)]
    assert m_real > 0.7
    assert m_noise < 0.35
    assert m_blur[-1] < 0.5
    assert m_real > m_blur[0] > m_blur[1] > m_blur[2]  # the more blur, the less real
    # per image, nearly every held-out face beats its own blurred copy
    per_real = real.mean(axis=(1, 2))
    per_blur = critic.realism_maps(_blur(held_out, 2.5)).mean(axis=(1, 2))
    assert (per_real > per_blur).mean() > 0.9


def test_critic_is_local(critic, split) -> None:
    """Blurring one half of a face lowers realism there, not in the other half."""
    img = split[1][3].copy()
    img[:, :, :16] = _blur(img[None], 2.5)[0, :, :, :16]
    m = critic.realism_map(img)
    clean = critic.realism_map(split[1][3])
    assert m[:, :12].mean() < clean[:, :12].mean() - 0.15
    assert abs(m[:, 20:].mean() - clean[:, 20:].mean()) < 0.05


def test_critic_errors_and_position_free(split) -> None:
    c = PatchRealismCritic()
    with pytest.raises(RuntimeError, match="fit"):
        c.realism_map(split[1][0])
    with pytest.raises(ValueError, match="at least 2"):
        c.fit(split[0][:1])
    c.fit(split[0])
    with pytest.raises(ValueError, match="32x32.*position_window=None"):
        c.realism_map(np.zeros((1, 16, 16), np.float32))
    with pytest.raises(ValueError, match="3 channels"):
        c.realism_map(np.zeros((3, 32, 32), np.float32))
    free = PatchRealismCritic(position_window=None).fit(split[0])
    assert free.realism_map(np.zeros((1, 16, 16), np.float32)).shape == (16, 16)
    assert free.realism_maps(split[1]).mean() > free.realism_maps(_noise(split[1])).mean() + 0.3


def test_critic_fast_enough(faces) -> None:
    import time

    rgb = load_image_set("builtin:faces", size=32, channels=3).images
    batch = np.concatenate([rgb, rgb])  # 200 images of 32 x 32 RGB
    t = time.perf_counter()
    maps = PatchRealismCritic().fit(rgb[:80]).realism_maps(batch)
    assert maps.shape == (200, 32, 32)
    assert time.perf_counter() - t < 5.0


# ------------------------------------------------------------------------------ viewing


def test_view_is_deterministic_and_sampled_at_60hz(faces) -> None:
    obs = SimulatedObserver("o", noise_deg=0.5, track_loss_rate=0.0)
    img = faces.images[0]
    rmap = np.full((32, 32), 0.8, np.float32)
    a = obs.view(img, rmap, rng=7, display_ms=2000)
    b = obs.view(img, rmap, rng=7, display_ms=2000)
    c = obs.view(img, rmap, rng=8, display_ms=2000)
    np.testing.assert_array_equal(a.samples.x, b.samples.x)
    np.testing.assert_array_equal(a.fixations.x, b.fixations.x)
    assert (a.rt_ms, a.answer_real, a.rating) == (b.rt_ms, b.answer_real, b.rating)
    assert not np.array_equal(a.samples.x, c.samples.x)
    s = a.samples
    assert s.source == "simulated" and s.image_size == (32, 32)
    assert len(s) == 120  # 2 s at 60 Hz
    np.testing.assert_allclose(np.diff(s.t_ms), 1000 / 60)
    assert np.isfinite(s.x).all()  # no track loss asked for
    assert a.fixations.onset_ms[0] == 0.0
    assert a.fixations.offset_ms[-1] == pytest.approx(2000.0)


def test_fixation_durations_and_saccades(faces) -> None:
    obs = SimulatedObserver("o", noise_deg=0.0, track_loss_rate=0.0)
    rmap = np.ones((32, 32), np.float32)
    durs, gaps = [], []
    for k in range(20):
        f = obs.view(faces.images[k], rmap, rng=k, display_ms=3000).fixations
        durs.append(f.duration_ms[:-1])  # the last one is cut by the end of the display
        gaps.append(f.onset_ms[1:] - f.offset_ms[:-1])
    durs, gaps = np.concatenate(durs), np.concatenate(gaps)
    assert durs.min() >= 120 and durs.max() <= 600
    assert 150 <= np.median(durs) <= 400
    assert gaps.min() >= 21 and gaps.max() < 80  # saccades: main sequence on a 10 deg image
    # between fixations the eye moves over a few samples: sample steps are 0 on fixations, large
    # during saccades
    t = obs.view(faces.images[0], rmap, rng=1, display_ms=3000)
    step = np.hypot(np.diff(t.samples.x), np.diff(t.samples.y))
    assert np.median(step) < 1e-6 and step.max() > 2.0


def test_track_loss_runs(faces) -> None:
    obs = SimulatedObserver("o", track_loss_rate=0.15)
    lost = []
    for k in range(30):
        s = obs.view(faces.images[k], np.ones((32, 32)), rng=k, display_ms=3000).samples
        miss = ~np.isfinite(s.x)
        np.testing.assert_array_equal(miss, ~np.isfinite(s.y))
        lost.append(miss)
    lost = np.concatenate(lost)
    assert 0.08 < lost.mean() < 0.2
    # NaNs come in runs (blinks, dropouts) of several samples, not isolated samples
    starts = np.flatnonzero(np.diff(lost.astype(int)) == 1)
    assert lost.sum() / max(len(starts), 1) >= 4
    rng = np.random.default_rng(0)
    assert not track_loss_mask(1000, 0.0, rng, 60.0).any()
    with pytest.raises(ValueError, match="track_loss_rate"):
        track_loss_mask(10, 1.5, rng, 60.0)


def test_noise_scales_with_noise_deg(faces) -> None:
    img, rmap = faces.images[0], np.ones((32, 32))

    def err_sd(noise_deg: float) -> float:
        obs = SimulatedObserver("o", noise_deg=noise_deg, track_loss_rate=0.0, px_per_deg=4.0)
        t = obs.view(img, rmap, rng=3, display_ms=3000)
        # sample times inside fixations (away from saccades): error = sample - true fixation
        f, s = t.fixations, t.samples
        i = np.searchsorted(f.onset_ms, s.t_ms, side="right") - 1
        inside = s.t_ms < f.offset_ms[i]
        return float(np.std(s.x[inside] - f.x[i][inside]))

    lab, webcam = err_sd(0.5), err_sd(3.5)
    assert lab == pytest.approx(0.5 * 4.0, rel=0.2)
    assert webcam == pytest.approx(3.5 * 4.0, rel=0.2)


def test_gaze_prefers_content_and_centre() -> None:
    """A textured block in the upper left, flat elsewhere: gaze goes to the block, not to the flat
    lower-right corner; a flat image gets central fixations."""
    rng = np.random.default_rng(0)
    img = np.zeros((1, 40, 40), np.float32)
    img[0, 4:16, 4:16] = rng.uniform(-1, 1, (12, 12))
    pri = priority_map(img, px_per_deg=4.0)
    assert pri.sum() == pytest.approx(1.0)
    assert pri[4:16, 4:16].mean() > 10 * pri[28:, 28:].mean()
    xs, ys = [], []
    for k in range(30):
        f = sample_scanpath(pri, np.random.default_rng(k), px_per_deg=4.0, display_ms=3000)
        xs.append(f.x[1:])  # the first fixation is on the fixation cross
        ys.append(f.y[1:])
    x, y = np.concatenate(xs), np.concatenate(ys)
    in_block = ((x < 16) & (y < 16)).mean()
    in_corner = ((x >= 28) & (y >= 28)).mean()
    assert in_block > 0.4 and in_block > 5 * in_corner
    flat = priority_map(np.zeros((1, 40, 40), np.float32), px_per_deg=4.0)
    paths = [sample_scanpath(flat, np.random.default_rng(k), 4.0) for k in range(20)]
    dx = np.abs(np.concatenate([p.x for p in paths]) - 19.5)
    dy = np.abs(np.concatenate([p.y for p in paths]) - 19.5)
    centre = ((dx < 10) & (dy < 10)).mean()  # central square: a quarter of the image
    corners = ((dx >= 15) & (dy >= 15)).mean()  # four corner squares: a quarter of the image too
    assert centre > 0.35 and centre > 3 * corners


def test_few_refixations(faces) -> None:
    """Inhibition of return: consecutive fixations rarely land on the same spot."""
    pri = priority_map(faces.images[5], px_per_deg=3.2)
    f = sample_scanpath(pri, np.random.default_rng(2), px_per_deg=3.2, display_ms=3000)
    d = np.hypot(np.diff(f.x), np.diff(f.y))
    assert np.mean(d < 1.0) < 0.2


# ------------------------------------------------------------------------------ panels


def test_panel_is_deterministic_and_varied() -> None:
    a, b = ObserverPanel(4, seed=3), ObserverPanel(4, seed=3)
    assert a.describe() == b.describe()
    assert a.describe() != ObserverPanel(4, seed=4).describe()
    assert len({o.threshold for o in a}) == 4 and len({o.rt_base_ms for o in a}) == 4
    web = ObserverPanel.webcam(2, seed=0)
    assert web[0].noise_deg == 3.5 and web[0].offset_deg != (0.0, 0.0)
    assert ObserverPanel(1, observer={"rate_hz": 30.0})[0].rate_hz == 30.0
    with pytest.raises(ValueError, match="n_observers"):
        ObserverPanel(0)
    with pytest.raises(ValueError, match="track_loss_rate"):
        ObserverPanel(2, track_loss_rate=1.0)


def test_run_panel_blinded_mix(critic, split) -> None:
    real = split[1][:12]
    fake_noise = _noise(real[:6], seed=4)
    fake_blur = _blur(real[6:12], 2.5)
    items = [(real[i], "real", f"face{i}") for i in range(12)]
    items += [(fake_noise[i], "synthetic", 100 + i) for i in range(6)]
    items += [PanelItem(fake_blur[i], "synthetic", f"blur{i}") for i in range(6)]
    panel = ObserverPanel.lab(4, seed=1)
    trials = run_panel(panel, items, critic, seed=5, display_ms=1500)
    again = run_panel(panel, items, critic, seed=5, display_ms=1500)
    assert len(trials) == 4 * 24
    assert [t.summary() for t in trials] == [t.summary() for t in again]
    # each observer sees every item once, in its own order
    orders = []
    for o in panel:
        mine = [t for t in trials if t.observer_id == o.observer_id]
        assert sorted(t.order for t in mine) == list(range(24))
        assert len({t.image_id for t in mine}) == 24
        orders.append([t.image_id for t in sorted(mine, key=lambda t: t.order)])
    assert len({tuple(o) for o in orders}) == 4
    seeded = [t for t in trials if t.image_id == "seed000100"]
    assert seeded and all(t.latent_seed == 100 and t.kind == "synthetic" for t in seeded)
    # verdicts follow the realism where they looked
    p_real = np.mean([t.answer_real for t in trials if t.kind == "real"])
    p_fake = np.mean([t.answer_real for t in trials if t.kind == "synthetic"])
    assert p_real > 0.7 and p_fake < 0.2
    for t in trials:
        assert 1 <= t.rating <= 5
        assert (t.rating >= 4 and t.answer_real) or (t.rating <= 2 and not t.answer_real) or t.rating == 3
        assert t.correct == (t.answer_real == (t.kind == "real"))


def test_slower_on_ambiguous_items(critic, split) -> None:
    """Mildly blurred faces sit near the observers' threshold: more uncertain, slower answers."""
    real = split[1][:10]
    items = make_items(
        ImageSet(real, [f"real{i}.png" for i in range(len(real))]),
        np.concatenate([_noise(real), _blur(real, 1.2)]),
        latent_seeds=list(range(20)),
    )
    trials = run_panel(ObserverPanel.lab(6, seed=2), items, critic, seed=0, display_ms=1500)
    p = np.array([t.p_real for t in trials])
    rt = np.array([t.rt_ms for t in trials])
    unsure = np.abs(p - 0.5) < 0.25
    sure = np.abs(p - 0.5) > 0.45
    assert unsure.sum() >= 10 and sure.sum() >= 10
    assert np.median(rt[unsure]) > 1.2 * np.median(rt[sure])


def test_view_validates_inputs(faces) -> None:
    obs = SimulatedObserver("o7")
    with pytest.raises(ValueError, match="o7.*realism_map shape"):
        obs.view(faces.images[0], np.ones((8, 8)))
    with pytest.raises(ValueError, match="display_ms"):
        obs.view(faces.images[0], np.ones((32, 32)), display_ms=0)
    with pytest.raises(ValueError, match="kind"):
        PanelItem(faces.images[0], "fake", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="critic or precomputed"):
        run_panel(ObserverPanel(1), [(faces.images[0], "real", "a")])


def test_detection_recovers_simulated_fixations(faces) -> None:
    """The samples carry an on-screen rectangle, so the project's fixation detector finds
    (most of) the true fixations in lab-quality simulated gaze."""
    from gazetune.gaze.fixations import detect_fixations

    obs = SimulatedObserver("o", noise_deg=0.3, track_loss_rate=0.0, px_per_deg=3.2)
    n_true, n_found, err = 0, 0, []
    for k in range(4):
        t = obs.view(faces.images[k], np.ones((32, 32)), rng=k, display_ms=3000)
        assert t.samples.image_rect is not None
        found = detect_fixations(t.samples)
        n_true += len(t.fixations)
        n_found += len(found)
        for x, y in zip(found.x, found.y):
            err.append(np.min(np.hypot(t.fixations.x - x, t.fixations.y - y)))
    assert 0.6 * n_true <= n_found <= 1.1 * n_true
    assert np.median(err) < 1.0 * 3.2  # within a degree of a true fixation


def test_panel_ids_are_stable_per_seed_and_distinct_across_seeds():
    a, again, b = ObserverPanel.lab(3, seed=0), ObserverPanel.lab(3, seed=0), ObserverPanel.lab(3, seed=7)
    assert [o.observer_id for o in a] == [o.observer_id for o in again] == ["sim0-000", "sim0-001", "sim0-002"]
    assert not {o.observer_id for o in a} & {o.observer_id for o in b}  # two panels never merge people
