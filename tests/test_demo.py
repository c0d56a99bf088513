"""The quick demo end to end: every stage runs and the report shows what it should."""

import json

import pytest

from gazetune.demo import DemoConfig, run_demo

from conftest import MINIMAL_LOOP  # stage 8 at the loop test's settings: the loop is tested in test_loop.py


@pytest.mark.slow
def test_quick_demo_writes_report(tmp_path):
    out = tmp_path / "demo"
    report = run_demo(DemoConfig.quick_settings(out=out, pretrain_steps=20, tune_steps=4, loop_cycles=2,
                                                loop_settings=MINIMAL_LOOP))
    assert report == out / "report.html" and report.stat().st_size > 20_000
    html = report.read_text()
    for needle in ("fool rate", "heatmap", "scanpath", "M_saliency", "NSS", "Human-response model",
                   "Training health", "logit spread (last window)", "eq 2 gain per D step",
                   "sample diversity, fake / real"):
        assert needle in html, needle
    results = json.loads((out / "results.json").read_text())
    rates = results["fool_rates"]
    assert set(rates) >= {"base (pretrained)", "gaze (FIG. 4)", "no gaze (control)"}
    for r in rates.values():
        assert 0.0 <= r["lo"] <= r["rate"] <= r["hi"] <= 1.0
    assert {"share_steps_balanced", "last_window_step_gain", "share_steps_d_frozen", "share_steps_g_collapsed",
            "last_window_sample_diversity"} <= set(results["health"]["pretrain"])
    assert results["gaze"]["detected_fixations"] > 0.5 * results["gaze"]["true_fixations"]
    for name in ("pretrain", "tune_gaze", "tune_control"):
        assert (out / name / "checkpoint.safetensors").exists()
        assert (out / name / "log.jsonl").read_text().strip()
    assert (out / "fixations.csv").read_text().startswith("image,subject,index,x,y,duration_ms")
    # the gaze-tuned run really used maps: its log says which source it resolved
    log = (out / "tune_gaze" / "log.jsonl").read_text()
    assert '"mode"' in log
    # stage 8: the loop over HTTP published two new versions, and each served version has a fool rate
    assert "two nodes over HTTP" in html
    assert len(results["loop"]["rates"]) == 3


def test_demo_refuses_to_overwrite(tmp_path):
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "checkpoint.safetensors").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="already holds a demo run"):
        run_demo(DemoConfig.quick_settings(out=tmp_path))
