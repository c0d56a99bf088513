import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from gazetune.gaze import heatmap, pooled_heatmap, read_fixation_table
from gazetune.gaze.cli import app

runner = CliRunner()


def _setup(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (40, 30), (90, 90, 90)).save(imgs / "a.png")
    Image.new("RGB", (40, 30), (10, 10, 10)).save(imgs / "b.png")
    table = tmp_path / "fix.csv"
    table.write_text(
        "image,subject,index,x,y,duration_ms\n"
        "a.png,s1,0,10,10,300\n"
        "a.png,s1,1,30,20,100\n"
        "a.png,s2,0,20,15,200\n"
        "b.png,s1,0,5,5,250\n"
        "gone.png,s1,0,5,5,250\n"
    )
    return imgs, table


def test_maps_pooled_writes_maps_overlays_and_summary(tmp_path):
    imgs, table = _setup(tmp_path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["maps", "--fixations", str(table), "--images", str(imgs), "--out", str(out), "--sigma-px", "3"])
    assert res.exit_code == 0, res.output
    assert "skipped 1 image(s)" in res.output and "gone.png" in res.output
    m = np.load(out / "maps" / "a.npy")
    want = pooled_heatmap([np.array([[10, 10, 300], [30, 20, 100]]), np.array([[20, 15, 200]])], (30, 40), 3.0)
    np.testing.assert_allclose(m, want, rtol=1e-6)
    ov = np.asarray(Image.open(out / "overlays" / "a.png"))
    assert ov.shape == (270, 360, 3)  # a 40x30 image is enlarged 9x (shorter side >= 256) for viewing
    summary = json.loads((out / "maps.json").read_text())
    assert summary["n_written"] == 2 and summary["missing"] == ["gone.png"] and summary["sigma_px"] == 3.0


def test_maps_per_observer_sigma_from_degrees(tmp_path):
    imgs, table = _setup(tmp_path)
    out = tmp_path / "out"
    args = ["maps", "--fixations", str(table), "--images", str(imgs), "--out", str(out), "--per-observer"]
    args += ["--distance-cm", "60", "--display-width", "400", "--no-overlays", "--normalize", "sum"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    z = np.load(out / "maps" / "a.npz")
    assert sorted(z.files) == ["s1", "s2"]
    # 1 degree = 37.866 screen px; the 40 px image is shown 400 px wide -> 3.7866 image px
    sigma = 37.86573143108899 * 40 / 400
    np.testing.assert_allclose(z["s2"], heatmap([[20, 15, 200]], (30, 40), sigma, normalize="sum"), rtol=1e-5)
    assert not (out / "overlays").exists()
    assert json.loads((out / "maps.json").read_text())["sigma_px_per_image"] == sigma


def test_maps_bad_inputs_exit_with_message(tmp_path):
    imgs, table = _setup(tmp_path)
    res = runner.invoke(app, ["maps", "--fixations", str(tmp_path / "no.csv"), "--images", str(imgs), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "no.csv" in res.output
    res = runner.invoke(app, ["maps", "--fixations", str(table), "--images", str(imgs), "--out", str(tmp_path / "o"), "--screen-px", "big"])
    assert res.exit_code != 0 and "--screen-px" in res.output


def test_fixations_command_from_generic_csv(tmp_path):
    # 250 Hz: 300 ms at (100, 100), 40 ms saccade, 300 ms at (600, 400) on an 800x600 image
    rng = np.random.default_rng(0)
    t = np.arange(160) * 4.0
    x = np.r_[np.full(75, 100.0), np.linspace(100, 600, 12)[1:-1], np.full(75, 600.0)][:160]
    y = np.r_[np.full(75, 100.0), np.linspace(100, 400, 12)[1:-1], np.full(75, 400.0)][:160]
    x = x + rng.normal(0, 1, x.size)
    y = y + rng.normal(0, 1, y.size)
    x[5:8] = np.nan  # a short track loss
    x[150] = 900  # off the image
    rows = "\n".join(f"{a},{b},{c}" for a, b, c in zip(t, x, y))
    rec = tmp_path / "p01.csv"
    rec.write_text("t_ms,x,y\n" + rows.replace("nan", "") + "\n")
    out = tmp_path / "fix.csv"
    args = ["fixations", "--samples", str(rec), "--format", "csv", "--out", str(out), "--image", "img.jpg", "--image-size", "800x600"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "2 fixation(s)" in res.output and "lost 3 in 1 run(s)" in res.output and "out of image 1" in res.output
    table = read_fixation_table(out)
    f = table.for_image("img.jpg")["p01"]
    np.testing.assert_allclose(f[:, :2], [[100, 100], [600, 400]], atol=1.0)
    # --append adds a second subject
    res = runner.invoke(app, args[:-4] + ["--image", "img.jpg", "--subject", "p02", "--append"])
    assert res.exit_code == 0, res.output
    assert read_fixation_table(out).subjects("img.jpg") == ["p01", "p02"]


def test_fixations_command_errors(tmp_path):
    rec = tmp_path / "short.csv"
    rec.write_text("t_ms,x,y\n0,1,1\n4,1,1\n8,1,1\n")
    res = runner.invoke(app, ["fixations", "--samples", str(rec), "--format", "csv", "--out", str(tmp_path / "f.csv")])
    assert res.exit_code == 1 and "trial too short" in res.output
    res = runner.invoke(app, ["fixations", "--samples", str(rec), "--format", "pupil", "--out", str(tmp_path / "f.csv")])
    assert res.exit_code != 0 and "--frame-size" in res.output
