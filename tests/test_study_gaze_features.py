"""The webcam page's head pose, gaze features, re-fit and expression scores
(``study/static/gaze_features.js``), checked on synthetic face landmarks with node.

The synthetic face and camera are in ``tests/js/gaze_features_synthetic.js``; it prints its
measurements as JSON and the thresholds are here.  Synthetic landmarks only: nothing here says
how well Face Mesh's landmarks of a real face give the pose.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "js" / "gaze_features_synthetic.js"


@pytest.fixture(scope="module")
def measured() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run([node, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_head_pose_recovers_known_rotations(measured):
    # 7 rotations up to 30 deg yaw, 20 pitch, 20 roll
    assert measured["pose_max_err_deg_ortho"] < 0.5
    # perspective camera, face 14 deg off the camera's axis, field of view 56 deg (assumed: 60)
    assert measured["pose_max_err_deg_perspective"] < 3.0
    assert measured["tx_moves_right"]
    assert measured["scale_ratio_closer"] == pytest.approx(600 / 450, rel=0.05)


def test_pose_aware_features_carry_the_calibration_to_new_head_positions(measured):
    r = measured["regression"]
    sight, plane = r["sight"], r["plane"]
    # about the same where the calibration was made
    assert sight["home"] < 1.2 * plane["home"]
    for shift in ("left_60mm", "closer_100mm_yaw8", "down_40mm_pitch6_roll5"):
        # without pose the error grows several-fold after the head moves; with it, it stays near
        # the error at the calibration's position
        assert sight[shift] < 0.5 * plane[shift], (shift, sight[shift], plane[shift])
        assert sight[shift] < 1.6 * sight["home"], (shift, sight[shift], sight["home"])


def test_drift_refit_improves_the_shifted_head(measured):
    for name in ("plane", "pose"):
        r = measured["regression"][name]
        assert r["fits"] == 2
        assert r["closer_100mm_yaw8_after_refit"] < 0.5 * r["closer_100mm_yaw8"], name
        assert r["home_after_refit"] < 1.3 * r["home"], name  # the calibration is not forgotten


def test_calibration_set_caps_and_weights_drift_points(measured):
    c = measured["cap"]
    assert c["groups"] == 9 + 3  # 9 calibration targets, the 3 newest of 5 drift targets
    assert c["drift_x"] == [2, 3, 4]
    assert c["weights"] == pytest.approx([1, 3 * 0.7 ** 2, 3 * 0.7, 3])


def test_expression_scores(measured):
    e = measured["expression"]
    assert e["max_change_when_turned"] < 2e-3  # head rotation alone hardly changes a score (scores 0.1-0.6)
    assert e["brow_raise_up"] > 0.05
    assert e["smile_up"] > 0.03 and e["mouth_width_up"] > 0.1
    assert e["mouth_open_up"] > 0.2
    assert e["brow_raise_unchanged_by_smile"] < 1e-9
    n = e["neutral"]
    assert n["eye_open"] == pytest.approx(10 / 30) and n["brow_gap"] == pytest.approx(24 / 90)
    assert e["mean"]["n_frames"] == 2
