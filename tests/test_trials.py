"""The trial record: answer scales (reversed end, out-of-scale values), long tables of other
studies with an image table and an exclusion column, adapters that agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gazetune.trials import AnswerScale, Trial, read_image_table, read_trials, verdict, write_trials


def test_scale_mapping_by_hand():
    low = AnswerScale.parse("1-7", real_end="low")  # 1 = real ... 7 = synthetic (Lago et al. 2022)
    assert [low.realness(v) for v in (1, 2, 4, 6, 7)] == pytest.approx([1, 5 / 6, 0.5, 1 / 6, 0])
    assert [low.answer_real(v) for v in (1, 3, 4, 5, 7)] == [True, True, None, False, False]
    high = AnswerScale.parse("likert5")
    assert [high.realness(v) for v in (1, 2, 3, 4, 5)] == [0, 0.25, 0.5, 0.75, 1]
    assert [high.answer_real(v) for v in (2, 3, 4)] == [False, None, True]
    b = AnswerScale.parse("binary")
    assert b.binary and b.contains(0) and b.contains(1) and not b.contains(0.5)
    for bad in (-1, 0, 8, 7.5, math.nan):
        assert not low.contains(bad)
    assert low.contains(1) and low.contains(3.5)
    assert verdict(0.5) is None and verdict(0.51) is True and verdict(0.2) is False
    with pytest.raises(ValueError, match="not understood"):
        AnswerScale.parse("seven")
    with pytest.raises(ValueError, match="low < high"):
        AnswerScale(5, 1)


def test_trial_checks_itself():
    t = Trial("p", "i.png", "real", None, True)
    assert t.realness == 1.0 and t.answer == 1.0 and t.correct is True
    assert Trial("p", "i", realness=0.5).answer_real is None
    with pytest.raises(ValueError, match="disagrees"):
        Trial("p", "i", answer_real=True, realness=0.2)
    with pytest.raises(ValueError, match="kind must be"):
        Trial("p", "i", kind="fake", answer_real=True)


def _long_table(tmp_path):
    (tmp_path / "images.csv").write_text("image,source,synthetic\na.jpg,real,0\nb.jpg,PGGAN,1\nc.jpg,StyleGAN,1\n")
    (tmp_path / "judgments.csv").write_text(
        "participant,image,rating,rt_ms,order,outlier\n"
        "s1,a.jpg,1,1500,1,0\n"    # real end: called real
        "s1,b.jpg,7,900,2,0\n"     # called synthetic
        "s1,c.jpg,-1,3000,3,0\n"   # slider left in the middle: no answer
        "s2,a.jpg,4,2000,1,0\n"    # the middle: undecided
        "s2,c.jpg,2,1100,2,0\n"
        "s3,a.jpg,1,800,1,1\n"     # an outlier participant ...
        "s3,b.jpg,9,800,2,0\n"     # ... excluded on all rows, whatever this row says
    )
    return tmp_path / "judgments.csv", tmp_path / "images.csv"


def test_long_table_with_image_table_and_exclusion(tmp_path):
    trials_csv, images_csv = _long_table(tmp_path)
    t = read_trials(trials_csv, "1-7", "low", image_table=images_csv, exclude_column="outlier")
    assert [(x.participant, x.image, x.kind, x.generator) for x in t] == [
        ("s1", "a.jpg", "real", None), ("s1", "b.jpg", "synthetic", "PGGAN"), ("s2", "a.jpg", "real", None),
        ("s2", "c.jpg", "synthetic", "StyleGAN")]
    assert [x.answer_real for x in t] == [True, False, None, True]
    assert t.realness.tolist() == pytest.approx([1.0, 0.0, 0.5, 5 / 6])
    assert t.dropped == {"out of scale: -1": 1, "excluded participant": 2} and t.excluded == ["s3"]
    assert t.rt_ms.tolist() == [1500, 900, 2000, 1100] and not t.has_gaze.any()
    assert "4 trials of 2 participants" in t.summary() and "1 out of scale: -1" in t.summary()
    # without the exclusion, s3's 9 is out of the 1-7 scale: counted, never an answer
    assert read_trials(trials_csv, "1-7", "low", image_table=images_csv).dropped == {
        "out of scale: -1": 1, "out of scale: 9": 1}
    # 1..9 fits neither binary nor 1-5: the reader asks for the scale
    with pytest.raises(ValueError, match="--answer-scale"):
        read_trials(trials_csv, image_table=images_csv)


def test_long_table_errors_name_file_line_column(tmp_path):
    trials_csv, images_csv = _long_table(tmp_path)
    with pytest.raises(ValueError, match="'nope' is not a column"):
        read_trials(trials_csv, "1-7", "low", exclude_column="nope")
    (tmp_path / "t2.csv").write_text("participant,image,rating\ns1,zz.jpg,3\n")
    with pytest.raises(ValueError, match=r"t2.csv:2: image 'zz.jpg' is not in the image table"):
        read_trials(tmp_path / "t2.csv", "1-7", image_table=images_csv)
    (tmp_path / "t3.csv").write_text("participant,image,rating,rt_ms\ns1,a.jpg,3,fast\n")
    with pytest.raises(ValueError, match=r"t3.csv:2: column 'rt_ms': 'fast' is not a number"):
        read_trials(tmp_path / "t3.csv", "1-7")
    (tmp_path / "i2.csv").write_text("image,synthetic\na.jpg,maybe\n")
    with pytest.raises(ValueError, match=r"i2.csv:2: column 'synthetic'"):
        read_image_table(tmp_path / "i2.csv")
    (tmp_path / "t4.csv").write_text("who,image,rating\n")
    with pytest.raises(ValueError, match="no participant column"):
        read_trials(tmp_path / "t4.csv")


def test_record_round_trip_keeps_scale_and_seeds(tmp_path):
    trials_csv, images_csv = _long_table(tmp_path)
    t = read_trials(trials_csv, "1-7", "low", image_table=images_csv, exclude_column="outlier")
    write_trials(t, tmp_path / "out.csv", t.scale)
    back = read_trials(tmp_path / "out.csv", "1-7", "low")
    assert list(back) == list(t)
    (tmp_path / "s.csv").write_text("participant,image,answer\np,synthetic/v3/42,0\np,face.png,1\n")
    s = read_trials(tmp_path / "s.csv")
    assert [(x.kind, x.generator, x.latent_seed) for x in s] == [("synthetic", "v3", 42), ("", None, None)]
    assert s.scale.binary and np.array_equal(s.answer, [0.0, 1.0])
