"""``gazetune study import``: recordings made elsewhere stored with the study's trials."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from gazetune.cli import app
from gazetune.config import save_config
from gazetune.study.config import StudyConfig
from gazetune.study.export import export_table
from gazetune.study.importing import IMPORT_SEQ
from gazetune.study.store import StudyStore

_ASC_SAMPLES = [(200, "700.0", "340.0", "778.0"), (202, "710.0", "350.0", "779.0"), (204, ".", ".", "0.0"),
                (206, "720.0", "360.0", "780.0"), (208, "730.0", "370.0", "781.0")]
ASC = "\n".join(
    ["** CONVERTED FROM s01.edf using edfapi 4.2.1", "**", "MSG\t100 DISPLAY_COORDS 0 0 1919 1079",
     "START\t200 \tRIGHT\tSAMPLES\tEVENTS", "PUPIL\tAREA"]
    + [f"{kind}\tGAZE\tRIGHT\tRATE\t500.00\tTRACKING\tCR\tFILTER\t2" for kind in ("EVENTS", "SAMPLES")]
    + ["\t".join(map(str, row)) + "\t..." for row in _ASC_SAMPLES]
    + ["END\t210 \tSAMPLES\tEVENTS\tRES\t  38.54\t  31.12", ""])

TOBII = (
    "Recording timestamp [μs]\tSensor\tGaze point X [DACS px]\tGaze point Y [DACS px]\n"
    "5000000\tEye Tracker\t600\t300\n"
    "5016667\tEye Tracker\t650\t320\n"
    "5033333\tEye Tracker\t700\t340\n"
)

RECTS = {0: [100.0, 50.0, 400.0, 400.0], 1: [300.0, 100.0, 256.0, 256.0], 2: [200.0, 40.0, 320.0, 320.0]}
DPR = {0: 1.0, 1: 2.0, 2: 1.0}


@pytest.fixture()
def study(tmp_path):
    """A study database with participant 'lab-01' whose trials 0-2 were shown; trial 3 was not."""
    cfg = StudyConfig(database=f"sqlite:///{tmp_path / 'study.db'}", trials_per_participant=4, synthetic_pool=4,
                      data_dir=str(tmp_path / "data"), gaze_mode="tracker")
    save_config(cfg, tmp_path / "study.toml")
    store = StudyStore(cfg)
    p = store.create_participant("lab-01", None, None)
    ref = store.participant(p["token"])
    for k in range(3):
        tid = store.next_trial(ref)["trial_id"]
        store.start_trial(ref, tid, RECTS[k], {"dpr": DPR[k]}, 0.0)
        store.answer(ref, tid, 1, 900.0, False)
    yield tmp_path, store
    store.db.dispose()


def _samples(store: StudyStore) -> dict[int, dict[str, np.ndarray]]:
    t = export_table(store, "samples").to_pydict()
    out: dict[int, dict[str, list]] = {}
    for i, tid in enumerate(t["trial_id"]):
        d = out.setdefault(tid, {k: [] for k in t})
        for k in t:
            d[k].append(t[k][i])
    def arr(k: str, v: list) -> np.ndarray:
        return np.asarray(v) if k in ("source", "image") else np.array([np.nan if a is None else a for a in v], float)

    return {tid: {k: arr(k, v) for k, v in d.items()} for tid, d in out.items()}


def test_import_csv_file_then_again_is_idempotent(study):
    tmp, store = study
    (tmp / "g.csv").write_text("t_ms,x,y,pupil\n0,300,250,4\n10,,,4.1\n20,500,450,4.2\n")
    args = ["study", "import", "--config", str(tmp / "study.toml"), "--format", "csv", "--file", str(tmp / "g.csv"),
            "--participant", "lab-01", "--trial", "0"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "3 samples stored" in r.output
    tid, _ = store.find_trial("lab-01", 0)
    s = _samples(store)[tid]
    assert set(s["source"]) == {"tracker"} and set(s["seq"]) == {IMPORT_SEQ}
    # screen (300, 250) in rect [100, 50, 400, 400] of a 64 px image -> (32, 32)
    np.testing.assert_allclose(s["x"], [32.0, np.nan, 64.0])
    np.testing.assert_allclose(s["y"], [32.0, np.nan, 64.0])
    np.testing.assert_allclose(s["pupil"], [4.0, 4.1, 4.2], rtol=1e-6)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "already stored" in again.output
    assert len(_samples(store)[tid]["t_ms"]) == 3


def test_import_mapping_asc_and_tobii_with_windows(study):
    tmp, store = study
    (tmp / "s01.asc").write_text(ASC)
    (tmp / "rec.tsv").write_text(TOBII, encoding="utf-8")
    (tmp / "map.csv").write_text(
        "file,format,participant,trial,start_ms,end_ms\n"
        "s01.asc,asc,lab-01,1,202,208\n"  # keeps 202, 204 (lost), 206
        "rec.tsv,tobii,lab-01,2,,\n")
    r = CliRunner().invoke(app, ["study", "import", "--config", str(tmp / "study.toml"), "--mapping", str(tmp / "map.csv")])
    assert r.exit_code == 0, r.output
    got = _samples(store)
    t1, _ = store.find_trial("lab-01", 1)
    t2, _ = store.find_trial("lab-01", 2)
    a = got[t1]
    np.testing.assert_allclose(a["t_ms"], [202.0, 204.0, 206.0])
    # device pixel ratio 2: tracker px / 2 = CSS px; rect [300, 100, 256, 256] -> 64 px image
    np.testing.assert_allclose(a["screen_x"], [355.0, np.nan, 360.0])
    np.testing.assert_allclose(a["x"], [(355 - 300) / 4, np.nan, (360 - 300) / 4])
    np.testing.assert_allclose(a["y"], [(175 - 100) / 4, np.nan, (180 - 100) / 4])
    b = got[t2]
    np.testing.assert_allclose(b["t_ms"], [5000.0, 5016.667, 5033.333], atol=1e-3)
    np.testing.assert_allclose(b["x"], [(600 - 200) * 0.2, (650 - 200) * 0.2, (700 - 200) * 0.2], rtol=1e-6)


def test_import_errors_name_the_problem(study):
    tmp, store = study
    (tmp / "g.csv").write_text("t_ms,x,y\n0,1,2\n")
    base = ["study", "import", "--config", str(tmp / "study.toml"), "--format", "csv", "--file", str(tmp / "g.csv")]
    r = CliRunner().invoke(app, base + ["--participant", "lab-01", "--trial", "3"])
    assert r.exit_code == 1 and "never shown" in r.output
    r = CliRunner().invoke(app, base + ["--participant", "nobody", "--trial", "0"])
    assert r.exit_code == 1 and "'nobody'" in r.output
    r = CliRunner().invoke(app, base + ["--participant", "lab-01", "--trial", "9"])
    assert r.exit_code == 1 and "no trial 9" in r.output
    (tmp / "p.csv").write_text("gaze_timestamp,confidence,norm_pos_x,norm_pos_y\n1.0,0.9,0.5,0.5\n")
    r = CliRunner().invoke(app, ["study", "import", "--config", str(tmp / "study.toml"), "--format", "pupil",
                                 "--file", str(tmp / "p.csv"), "--participant", "lab-01", "--trial", "0"])
    assert r.exit_code == 1 and "--screen-px" in r.output
    assert _samples(store) == {}
