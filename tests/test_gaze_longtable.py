"""Long tables of online studies (WebGazer/jsPsych, Gorilla, Labvanced) -> fixation table.

Every table is written here: two participants, several trials each, planted fixations in image
pixels shown in a known on-screen box, so the imported fixation table can be checked number by
number."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gazetune.cli import app
from gazetune.gaze import read_fixation_table
from gazetune.gaze.longtable import (
    TableMapping,
    guess_time_unit,
    import_long_table,
    load_mapping,
    make_mapping,
    read_long_table,
)

SIZE = (400, 300)
# (participant, trial, image, on-screen box, planted fixations (x, y, ms) in image px)
TRIALS = [
    ("p1", 1, "faces/a.png", (300.0, 200.0, 800.0, 600.0), [(50, 60, 400), (300, 100, 350), (200, 250, 450)]),
    ("p1", 2, "faces/b.png", (560.0, 240.0, 400.0, 300.0), [(100, 100, 500), (320, 220, 500)]),
    ("p1", 3, "faces/a.png", (300.0, 200.0, 800.0, 600.0), [(350, 50, 600), (60, 250, 500)]),
    ("p2", 1, "faces/b.png", (100.0, 100.0, 600.0, 450.0), [(200, 150, 450), (40, 40, 350), (360, 260, 400)]),
    ("p2", 2, "faces/a.png", (560.0, 240.0, 400.0, 300.0), [(80, 200, 700), (250, 80, 500)]),
]
RATE = 60.0


def trial_samples(box, planted, seed):
    """Screen-pixel samples at 60 Hz dwelling on ``planted`` with 2 px noise, 50 ms saccades."""
    rng = np.random.default_rng(seed)
    sx, sy = box[2] / SIZE[0], box[3] / SIZE[1]
    pts = [(box[0] + x * sx, box[1] + y * sy) for x, y, _ in planted]
    step = 1000.0 / RATE
    rows, now = [], 0.0
    for i, (_, _, dur) in enumerate(planted):
        for _ in range(int(round(dur / step))):
            rows.append((now, pts[i][0] + rng.normal(0, 2), pts[i][1] + rng.normal(0, 2)))
            now += step
        if i + 1 < len(planted):
            for k in (1, 2):
                a = k / 3
                rows.append((now, pts[i][0] + a * (pts[i + 1][0] - pts[i][0]), pts[i][1] + a * (pts[i + 1][1] - pts[i][1])))
                now += step
    return rows


def write_per_sample(path, time_scale=1.0, with_box=True, delimiter=",", y_up=False):
    """One row per sample: participant, trial, image, time (ms * time_scale), x, y (+ box);
    ``y_up``: y measured upwards from the bottom of a 1080 px screen."""
    header = ["pid", "trial", "img", "t", "gx", "gy"] + (["bx", "by", "bw", "bh"] if with_box else [])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        for k, (pid, trial, image, box, planted) in enumerate(TRIALS):
            start = 10_000.0 * k  # any clock origin
            b = (box[0], 1080 - box[1] - box[3], box[2], box[3]) if y_up else box
            for t, x, y in trial_samples(box, planted, k):
                y = 1080 - y if y_up else y
                w.writerow([pid, trial, image, f"{(start + t) * time_scale:.6f}", f"{x:.2f}", f"{y:.2f}"] + (list(b) if with_box else []))


MAP = {"participant": "pid", "trial": "trial", "image": "img", "time": "t", "x": "gx", "y": "gy"}
BOX = {"box_left": "bx", "box_top": "by", "box_width": "bw", "box_height": "bh"}


def check_table(out, drop=()):
    """The imported table holds every trial's planted fixations (image px, ms)."""
    table = read_fixation_table(out)
    seen = {}
    for pid, _, image, _, planted in TRIALS:
        seen[(image, pid)] = seen.get((image, pid), 0) + 1
        subject = pid if seen[(image, pid)] == 1 else f"{pid}#{seen[(image, pid)]}"
        if (pid, image) in drop:
            continue
        fix = table.for_image(image)[subject]
        assert fix.shape == (len(planted), 3), (pid, image, fix)
        np.testing.assert_allclose(fix[:, :2], np.array(planted)[:, :2], atol=1.5)
        # durations in ms, not s or samples: I-VT's 5-sample velocity filter eats up to ~5 samples
        np.testing.assert_allclose(fix[:, 2], np.array(planted)[:, 2], atol=100)
    return table


def test_per_sample_table_in_ms_with_per_trial_boxes(tmp_path):
    path = tmp_path / "gaze.csv"
    write_per_sample(path)
    mapping = TableMapping(columns={**MAP, **BOX}, image_size=SIZE, source="tracker")
    summary = import_long_table(path, mapping, tmp_path / "fix.csv")
    assert summary["time_unit"] == "ms" and summary["method"] == "ivt"
    assert summary["n_trials"] == 5 and summary["n_participants"] == 2 and summary["skipped"] == []
    # p1 saw faces/a.png twice: the second viewing is its own scanpath
    assert summary["n_repeated_views"] == 1
    table = check_table(tmp_path / "fix.csv")
    assert sorted(table.subjects("faces/a.png")) == ["p1", "p1#2", "p2"]


def test_seconds_and_semicolons_and_one_box_per_study_give_the_same_table(tmp_path):
    ms, s = tmp_path / "ms.csv", tmp_path / "s.tsv"
    write_per_sample(ms)
    write_per_sample(s, time_scale=1e-3, delimiter=";")
    m = TableMapping(columns={**MAP, **BOX}, image_size=SIZE, source="tracker")
    import_long_table(ms, m, tmp_path / "a.csv")
    summary = import_long_table(s, m, tmp_path / "b.csv")
    assert summary["time_unit"] == "s"
    a, b = read_fixation_table(tmp_path / "a.csv"), read_fixation_table(tmp_path / "b.csv")
    assert a.images() == b.images() and a.n_fixations() == b.n_fixations() == 12
    for image in a.images():
        for subject, fix in a.for_image(image).items():
            np.testing.assert_allclose(b.for_image(image)[subject], fix, atol=0.01)  # float rounding only
    # per-study box: only the trials shown in that box come out right, the others are moved
    study = tmp_path / "study.csv"
    write_per_sample(study, with_box=False)
    m2 = TableMapping(columns=MAP, image_rect=(560.0, 240.0, 400.0, 300.0), image_size=SIZE, source="tracker")
    import_long_table(study, m2, tmp_path / "c.csv")
    t = read_fixation_table(tmp_path / "c.csv")
    np.testing.assert_allclose(t.for_image("faces/b.png")["p1"][:, :2], [[100, 100], [320, 220]], atol=1.5)
    np.testing.assert_allclose(t.for_image("faces/a.png")["p2"][:, :2], [[80, 200], [250, 80]], atol=1.5)


def test_y_measured_from_the_bottom(tmp_path):
    path = tmp_path / "g.csv"
    write_per_sample(path, y_up=True)
    m = TableMapping(columns={**MAP, **BOX}, image_size=SIZE, source="tracker", y_origin="bottom")
    import_long_table(path, m, tmp_path / "f.csv")
    check_table(tmp_path / "f.csv")


def test_explicit_time_unit_beats_the_guess(tmp_path):
    path = tmp_path / "g.csv"
    write_per_sample(path, time_scale=1e-3)
    trials, counts = read_long_table(path, TableMapping(columns={**MAP, **BOX}))
    assert counts["n_sample_rows"] == counts["n_rows"] and len(trials) == 5
    assert guess_time_unit(trials) == "s"
    # told it is ms, 16.7 ms steps become 0.0167 ms and no trial lasts the 200 ms minimum
    m = TableMapping(columns={**MAP, **BOX}, image_size=SIZE, source="tracker", time_unit="ms")
    summary = import_long_table(path, m, tmp_path / "f.csv")
    assert len(summary["skipped"]) == 5 and "too short" in summary["skipped"][0]["reason"]


def test_bad_rows_and_missing_columns_are_named(tmp_path):
    path = tmp_path / "g.csv"
    write_per_sample(path)
    lines = path.read_text().splitlines()
    bad = lines[7].split(",")
    bad[4] = "12,5px"  # not a number (quoted so the column count stays)
    lines[7] = ",".join(bad[:4] + ['"12,5px"'] + bad[5:])
    path.write_text("\n".join(lines) + "\n")
    m = TableMapping(columns={**MAP, **BOX}, image_size=SIZE)
    with pytest.raises(ValueError, match=r"g\.csv:8: column 'gx' is not a number: '12,5px'"):
        read_long_table(path, m)
    with pytest.raises(ValueError, match=r"column 'gaze_x' \(mapping key 'x'\) is not in the header"):
        read_long_table(path, TableMapping(columns={**MAP, **BOX, "x": "gaze_x"}))
    write_per_sample(path)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[3], "", 1)  # empty time stamp
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"g\.csv:4: column 't' is empty"):
        read_long_table(path, m)
    write_per_sample(path)
    lines = path.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:-1] + ["-3"])  # negative box height
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"g\.csv:6: the image box must have width and height > 0"):
        read_long_table(path, m)
    with pytest.raises(ValueError, match="mapping: need columns"):
        TableMapping(columns={"participant": "pid", "x": "gx"})
    with pytest.raises(ValueError, match="unknown column key"):
        TableMapping(columns={**MAP, "gaze": "g"})


def test_no_box_or_no_size_is_an_error_naming_the_trial(tmp_path):
    path = tmp_path / "g.csv"
    write_per_sample(path, with_box=False)
    with pytest.raises(ValueError, match="participant 'p1', trial '1', image 'faces/a.png' .*no image box"):
        import_long_table(path, TableMapping(columns=MAP, image_size=SIZE), tmp_path / "f.csv")
    with pytest.raises(ValueError, match="image size unknown"):
        import_long_table(path, TableMapping(columns=MAP, image_rect=(0, 0, 10, 10)), tmp_path / "f.csv")


def test_image_sizes_from_the_image_folder(tmp_path):
    path = tmp_path / "g.csv"
    write_per_sample(path)
    (tmp_path / "img" / "faces").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", SIZE).save(tmp_path / "img" / "faces" / f"{name}.png")
    import_long_table(path, TableMapping(columns={**MAP, **BOX}, source="tracker"), tmp_path / "f.csv", images=tmp_path / "img")
    check_table(tmp_path / "f.csv")


def write_jspsych(path, bad_json_row=None):
    """jsPsych + WebGazer: one row per trial, samples and the image's rect as JSON cells."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "trial_index", "trial_type", "stimulus", "rt", "webgazer_data", "webgazer_targets"])
        w.writerow(["p1", 0, "html-keyboard-response", "", 500, "", ""])  # a trial without gaze
        for k, (pid, trial, image, box, planted) in enumerate(TRIALS):
            data = [{"x": round(x, 1), "y": round(y, 1), "t": round(t)} for t, x, y in trial_samples(box, planted, k)]
            target = {"#jspsych-image-keyboard-response-stimulus": {
                "x": box[0], "y": box[1], "width": box[2], "height": box[3],
                "top": box[1], "left": box[0], "right": box[0] + box[2], "bottom": box[1] + box[3]}}
            cell = json.dumps(data) if bad_json_row != k else json.dumps(data)[:-5]
            w.writerow([pid, 10 * k + trial, "image-keyboard-response", image, 900, cell, json.dumps(target)])


def test_jspsych_webgazer_preset(tmp_path):
    path = tmp_path / "jspsych.csv"
    write_jspsych(path)
    mapping = make_mapping("jspsych", {"image_size": list(SIZE), "source": "tracker"})
    summary = import_long_table(path, mapping, tmp_path / "fix.csv")
    assert summary["n_trials"] == 5 and summary["n_other_rows"] == 1  # the trial without gaze
    check_table(tmp_path / "fix.csv")
    write_jspsych(path, bad_json_row=2)
    with pytest.raises(ValueError, match=r"jspsych\.csv:5: column 'webgazer_data' is not JSON"):
        read_long_table(path, mapping)


def write_gorilla(path, extra_zone=False):
    """Gorilla: prediction rows (samples) and zone rows (boxes) of several screens in one file."""
    cols = ["participant_id", "spreadsheet_row", "screen_index", "stimulus", "type", "time_stamp", "x_pred", "y_pred",
            "face_conf", "zone_name", "zone_x", "zone_y", "zone_width", "zone_height"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for k, (pid, trial, image, box, planted) in enumerate(TRIALS):
            base = {"participant_id": pid, "spreadsheet_row": trial, "screen_index": 1, "stimulus": image}
            w.writerow({**base, "type": "start"})
            w.writerow({**base, "type": "zone", "zone_name": "image", "zone_x": box[0], "zone_y": box[1],
                        "zone_width": box[2], "zone_height": box[3]})
            if extra_zone:
                w.writerow({**base, "type": "zone", "zone_name": "button", "zone_x": 10, "zone_y": 10,
                            "zone_width": 50, "zone_height": 20})
            for t, x, y in trial_samples(box, planted, k):
                w.writerow({**base, "type": "prediction", "time_stamp": f"{1.7e12 + t:.1f}", "x_pred": f"{x:.2f}",
                            "y_pred": f"{y:.2f}", "face_conf": 0.9})
            w.writerow({**base, "type": "end"})


def test_gorilla_preset_with_zone_rows(tmp_path):
    path = tmp_path / "gorilla.csv"
    write_gorilla(path)
    mapping = make_mapping("gorilla", {"columns": {"image": "stimulus"}, "image_size": SIZE, "source": "tracker"})
    summary = import_long_table(path, mapping, tmp_path / "fix.csv")
    assert summary["n_box_rows"] == 5 and summary["n_other_rows"] == 10
    check_table(tmp_path / "fix.csv")
    # two zones per screen: which one is the image must be said
    write_gorilla(path, extra_zone=True)
    with pytest.raises(ValueError, match="two different image boxes"):
        read_long_table(path, mapping)
    ok = make_mapping("gorilla", {"columns": {"image": "stimulus"}, "box_rows": {"type": "zone", "zone_name": "image"},
                                  "image_size": SIZE, "source": "tracker"})
    import_long_table(path, ok, tmp_path / "fix2.csv")
    check_table(tmp_path / "fix2.csv")


def test_mapping_file_and_cli(tmp_path):
    path = tmp_path / "g.csv"
    write_per_sample(path)
    toml = tmp_path / "map.toml"
    toml.write_text(
        'source = "tracker"\nimage_size = [400, 300]\n[columns]\nparticipant = "pid"\ntrial = ["trial"]\n'
        'image = "img"\ntime = "t"\nx = "gx"\ny = "gy"\n'
    )
    preset, overrides = load_mapping(toml)
    assert preset is None and overrides["columns"]["x"] == "gx"
    runner = CliRunner()
    out, summary = tmp_path / "fix.csv", tmp_path / "summary.json"
    res = runner.invoke(app, ["gaze", "import", "--table", str(path), "--mapping", str(toml), "--out", str(out),
                              "--column", "box_left=bx", "--column", "box_top=by", "--column", "box_width=bw",
                              "--column", "box_height=bh", "--summary", str(summary)])
    assert res.exit_code == 0, res.output
    assert json.loads(summary.read_text())["n_fixations"] == 12
    check_table(out)
    bad = tmp_path / "bad.toml"
    bad.write_text('colums = {x = "gx"}\n')
    res = runner.invoke(app, ["gaze", "import", "--table", str(path), "--mapping", str(bad), "--out", str(out)])
    assert res.exit_code == 1 and "unknown key(s) ['colums']" in res.output


def test_labvanced_preset_and_webcam_default(tmp_path):
    """Labvanced column names (an assumption, see PRESETS) with one box for the study; the
    webcam source detects with I2MC by default."""
    path = tmp_path / "lv.csv"
    box = (560.0, 240.0, 400.0, 300.0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Rec_Session_Id", "Task_Name", "Trial_Nr", "X", "Y", "T", "C"])
        for k, (pid, trial, _, _, planted) in enumerate(TRIALS[:2]):
            for t, x, y in trial_samples(box, planted, k):
                w.writerow([pid, "faces", trial, f"{x:.1f}", f"{y:.1f}", f"{1.7e12 + t:.0f}", 1.0])
    mapping = make_mapping("labvanced", {"image_rect": box, "image_size": SIZE})
    assert mapping.source == "webcam"
    with pytest.raises(ValueError, match="no trial has an image name"):  # the preset has no image column
        import_long_table(path, mapping, tmp_path / "f.csv")
    mapping = make_mapping("labvanced", {"columns": {"image": "Task_Name"}, "image_rect": box, "image_size": SIZE})
    summary = import_long_table(path, mapping, tmp_path / "f.csv")
    assert summary["method"] == "i2mc" and summary["n_trials_written"] == 2
    fix = read_fixation_table(tmp_path / "f.csv").for_image("faces")["p1"]
    np.testing.assert_allclose(fix[:, :2], np.array(TRIALS[0][4])[:, :2], atol=3.0)
