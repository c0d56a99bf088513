"""Human realism rates: fool rate, HYPE error rate, Wilson and two-way bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from gazetune.evaluate.human import (
    Trial,
    error_rate,
    fool_rate,
    read_trials_csv,
    study_rates,
    two_way_bootstrap,
    wilson_interval,
    write_trials_csv,
)


def _trials() -> list[Trial]:
    t = []
    # p1 calls everything real; p2 is always right
    for p, always_real in (("p1", True), ("p2", False)):
        for i in range(3):
            t.append(Trial(p, f"r{i}", "real", None, True, 1000.0))
            t.append(Trial(p, f"a{i}", "synthetic", "A", always_real, 1500.0))
        t.append(Trial(p, "b0", "synthetic", "B", True, 2000.0))
    return t


def test_fool_and_error_rate_known_counts():
    trials = _trials()
    fa = fool_rate(trials, "A", method="wilson")
    assert fa.rate == pytest.approx(0.5) and fa.n == 6
    assert fool_rate(trials, "B", method="wilson").rate == 1.0
    # errors for A: p1 is wrong on its 3 fakes; reals are all called real -> 3 / 12
    ea = error_rate(trials, "A", method="wilson")
    assert ea.rate == pytest.approx(3 / 12) and ea.n == 12
    assert fool_rate(trials, method="wilson").n == 8
    with pytest.raises(ValueError, match="no synthetic trials of generator 'C'"):
        fool_rate(trials, "C")


def test_wilson_interval_reference_values():
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    with pytest.raises(ValueError, match="k must be in"):
        wilson_interval(11, 10)


def test_bootstrap_interval_is_reproducible_and_contains_rate():
    trials = _trials()
    a = fool_rate(trials, "A", n_boot=300, seed=3)
    b = fool_rate(trials, "A", n_boot=300, seed=3)
    assert a == b
    assert a.lo <= a.rate <= a.hi and a.n_participants == 2 and a.n_images == 3


def _simulate(rng, mu, sd_p, sd_i, n_p, n_i, keep=0.7):
    a, b = rng.normal(0, sd_p, n_p), rng.normal(0, sd_i, n_i)
    pp, ii = (g.ravel() for g in np.meshgrid(np.arange(n_p), np.arange(n_i), indexing="ij"))
    seen = rng.random(pp.size) < keep
    pp, ii = pp[seen], ii[seen]
    y = rng.random(pp.size) < expit(mu + a[pp] + b[ii])
    return y, pp.astype(str), ii.astype(str)


@pytest.mark.parametrize("sd_p,sd_i", [(0.6, 0.9), (0.0, 0.0)])
def test_bootstrap_coverage_in_simulated_studies(sd_p, sd_i):
    """200 simulated studies with participant and image random effects: the 95% intervals cover
    the population rate about 95% of the time, while Wilson under-covers when answers cluster."""
    rng = np.random.default_rng(0)
    mu = -0.4
    z = rng.normal(size=(2, 1_000_000))
    true = float(expit(mu + sd_p * z[0] + sd_i * z[1]).mean())
    n_studies, covered, covered_wilson = 200, 0, 0
    for s in range(n_studies):
        y, pp, ii = _simulate(rng, mu, sd_p, sd_i, n_p=15, n_i=20)
        est = two_way_bootstrap(y, pp, ii, n_boot=400, seed=s)
        covered += est.lo <= true <= est.hi
        lo, hi = wilson_interval(int(y.sum()), y.size)
        covered_wilson += lo <= true <= hi
    coverage = covered / n_studies
    assert 0.88 <= coverage <= 0.99, coverage  # 12 seeds averaged 0.935 (plain: 0.97)
    if sd_p > 0:
        assert covered_wilson / n_studies < 0.85  # ignoring the clustering is too optimistic


def test_study_rates_and_csv_roundtrip(tmp_path):
    trials = _trials()
    path = tmp_path / "trials.csv"
    write_trials_csv(trials, path)
    back = read_trials_csv(path)
    assert list(back) == trials
    rows = study_rates(back, n_boot=200)
    assert [r.generator for r in rows] == ["A", "B"]
    assert rows[0].fool.rate == 0.5 and rows[0].median_rt_ms == 1500.0
    assert rows[1].error is not None and rows[1].error.rate == pytest.approx(2 / 8)


def test_read_trials_csv_names_bad_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("participant,image,kind,generator,answer_real,rt_ms\np,i,synthetic,v1,maybe,10\n")
    with pytest.raises(ValueError, match=r"t.csv:2: column 'answer_real': 'maybe'"):
        read_trials_csv(path)
    path.write_text("participant,image,kind,generator,answer_real\np,i,synthetic,,1\n")
    with pytest.raises(ValueError, match=r"1 synthetic trials have no generator version, e.g. image 'i'"):
        study_rates(read_trials_csv(path))


def test_read_study_export(tmp_path):
    """The study's trials export (participant_id, generator_version, status, answer) reads too."""
    path = tmp_path / "export.csv"
    path.write_text(
        "trial_id,participant_id,image,kind,generator_version,seed,status,answer,rt_ms\n"
        "1,p1,a.png,real,,,answered,1,900\n"
        "2,p1,s1,synthetic,v2,5,answered,0,1200\n"
        "3,p1,s2,synthetic,v2,6,pending,,\n"
    )
    trials = read_trials_csv(path)
    assert [(t.participant, t.kind, t.generator, t.answer_real) for t in trials] == [
        ("p1", "real", None, True), ("p1", "synthetic", "v2", False)]
    path.write_text(
        "participant_id,image,kind,generator_version,status,answer,rt_ms\n"
        "p1,a.png,real,,answered,5,900\np1,s1,synthetic,v2,answered,3,1200\np1,s2,synthetic,v2,answered,4,1200\n"
    )
    # ratings 1-5: 4-5 are "real", 1-2 "fake", 3 undecided (left out of every rate)
    assert [t.answer_real for t in read_trials_csv(path)] == [True, None, True]
    assert fool_rate(read_trials_csv(path), "v2", method="wilson").n == 1


def test_rates_and_human_training_read_an_export_alike(tmp_path):
    """One export, read by the rates and by the human model: the same rows (empty status kept,
    other statuses and unanswered rows dropped) and the same rule (realness > 0.5 = called real,
    the middle undecided), the disagreement issue 14 found."""
    from gazetune.human.losses import label_targets
    from gazetune.human.train import read_study_export

    path = tmp_path / "export.csv"
    path.write_text(
        "participant_id,image,kind,generator_version,status,answer,rt_ms\n"
        "p1,a.png,real,,answered,5,900\n"     # real end: called real
        "p1,s1,synthetic,v2,,4,1000\n"        # empty status: an answer like any other
        "p1,s2,synthetic,v2,answered,3,1100\n"  # the middle: undecided
        "p2,s1,synthetic,v2,timed_out,,\n"    # no answer: dropped
        "p2,s2,synthetic,v2,answered,2,700\n"
        "p2,a.png,real,,answered,1,800\n"
    )
    rates = read_trials_csv(path)
    human = read_study_export(path)
    assert [(t.participant, t.image) for t in rates] == [(t.participant, t.image) for t in human] == [
        ("p1", "a.png"), ("p1", "s1"), ("p1", "s2"), ("p2", "s2"), ("p2", "a.png")]
    assert rates.dropped == human.dropped == {"status timed_out": 1}
    targets = label_targets(human.answer, human.scale.name, human.scale.real_end)
    assert targets.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]  # (rating - 1) / 4 by hand
    verdicts = [t.answer_real for t in rates]
    assert verdicts == [True, True, None, False, False]
    assert verdicts == [None if v == 0.5 else bool(v > 0.5) for v in targets]
    # the fool rate counts the decided synthetic answers only: s1 called real, s2 by p2 called fake
    assert fool_rate(rates, "v2", method="wilson").rate == 0.5
