import numpy as np
import pytest

from gazetune.gaze import FixationTable, heatmap, pooled_heatmap, read_fixation_table, write_fixation_table


def test_heatmap_matches_hand_computed_gaussians():
    # two fixations, 300 ms at (1, 2) and 100 ms at (4, 0); sigma 1.5 px; raw sum in seconds
    fix = np.array([[1.0, 2.0, 300.0], [4.0, 0.0, 100.0]])
    m = heatmap(fix, (4, 6), sigma=1.5, normalize="none")
    assert m.dtype == np.float32 and m.shape == (4, 6)
    for (y, x) in [(0, 0), (2, 1), (3, 5), (0, 4)]:
        want = 0.3 * np.exp(-((x - 1) ** 2 + (y - 2) ** 2) / (2 * 1.5**2)) + 0.1 * np.exp(
            -((x - 4) ** 2 + (y - 0) ** 2) / (2 * 1.5**2)
        )
        assert m[y, x] == pytest.approx(want, rel=1e-6)


def test_heatmap_normalisations():
    fix = np.array([[10.0, 5.0, 200.0], [3.0, 20.0, 50.0]])
    unit = heatmap(fix, (25, 30), 2.0, normalize="max")
    dens = heatmap(fix, (25, 30), 2.0, normalize="sum")
    assert unit.max() == pytest.approx(1.0)
    assert dens.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.unravel_index(np.argmax(unit), unit.shape) == (5, 10)  # the longer fixation wins


def test_heatmap_empty_and_bad_input():
    assert not heatmap(np.zeros((0, 3)), (5, 5), 1.0).any()
    with pytest.raises(ValueError, match="shape"):
        heatmap(np.zeros((2, 4)), (5, 5), 1.0)
    with pytest.raises(ValueError, match="negative duration"):
        heatmap([[1, 1, -5]], (5, 5), 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        heatmap([[np.nan, 1, 5]], (5, 5), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        heatmap([[1, 1, 5]], (5, 5), 0.0)


def test_pooled_heatmap_weighs_observers_equally():
    a = np.array([[2.0, 2.0, 1000.0]])  # one long fixation
    b = np.array([[12.0, 12.0, 10.0]])  # one short one, other place
    pooled = pooled_heatmap([a, b], (15, 15), 1.0, normalize="none")
    assert pooled[2, 2] == pytest.approx(pooled[12, 12], rel=1e-4)


def test_fixation_table_roundtrip_and_errors(tmp_path):
    t = FixationTable()
    t.add("img1.jpg", "s1", np.array([[1.0, 2.0, 300.0], [3.0, 4.0, 150.0]]))
    t.add("img1.jpg", "s2", np.array([[5.0, 6.0, 200.0]]))
    p = tmp_path / "fix.csv"
    write_fixation_table(t, p)
    back = read_fixation_table(p)
    assert back.images() == ["img1.jpg"] and back.subjects("img1.jpg") == ["s1", "s2"]
    np.testing.assert_allclose(back.for_image("img1.jpg")["s1"], t.data["img1.jpg"]["s1"])
    bad = tmp_path / "bad.csv"
    bad.write_text("image,subject,index,x,y,duration_ms\na,s,0,1,2,300\na,s,1,oops,2,100\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: column 'x'"):
        read_fixation_table(bad)
    with pytest.raises(ValueError, match="missing column"):
        (tmp_path / "c.csv").write_text("image,x,y\n")
        read_fixation_table(tmp_path / "c.csv")


def test_reads_osie_table(shared_data):
    t = read_fixation_table(shared_data / "osie" / "fixations.csv")
    assert len(t.images()) == 700
    assert t.n_fixations() == 98321
