"""Study pieces without a server: config validation, migrations, validation quality."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from gazetune.study import db as T
from gazetune.study.calibration import px_to_deg, validation_quality
from gazetune.study.config import load_study_config


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "study.toml"
    p.write_text('answer_scale = "stars"\n')
    with pytest.raises(ValueError, match="answer_scale = 'stars'"):
        load_study_config(p)
    p.write_text("trials_per_participnt = 3\n")
    with pytest.raises(ValueError, match="trials_per_participnt"):
        load_study_config(p)
    p.write_text('database = "sqlite:///sub/s.db"\ntrials_per_participant = 4\n')
    cfg = load_study_config(p)
    assert cfg.database == f"sqlite:///{tmp_path / 'sub' / 's.db'}" and cfg.trials_per_participant == 4


def test_migrations_are_versioned_and_refuse_newer(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    d = T.Database(url)
    assert d.version == T.SCHEMA_VERSION
    d.dispose()
    assert T.Database(url).version == T.SCHEMA_VERSION  # reopening applies nothing twice
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(T.schema_version.insert().values(version=99, description="future", applied_at=0.0))
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        T.Database(url)


def test_validation_quality_numbers():
    # target at (100, 100); samples 3 px right of it, alternating 1 px up and down
    pts = [{"target": [100, 100], "x": [103, 103, 103, None], "y": [99, 101, 99, 100]}]
    q = validation_quality(pts, px_per_mm=4.0, distance_mm=500.0)
    assert q.accuracy_px == pytest.approx(math.hypot(3, -1 / 3))
    assert q.precision_px == pytest.approx(2.0)
    assert q.accuracy_deg == pytest.approx(math.degrees(2 * math.atan(q.accuracy_px / 4 / 1000)))
    assert q.points[0]["n_lost"] == 1
    one_deg_px = 2 * 500 * 4.0 * math.tan(math.radians(0.5))  # 1 degree at 500 mm, 4 px/mm
    assert px_to_deg(one_deg_px, 4.0, 500.0) == pytest.approx(1.0, rel=1e-9)
    lost = validation_quality([{"target": [0, 0], "x": [None], "y": [None]}], None, None)
    assert math.isinf(lost.accuracy_deg) and not lost.passed(2.5)
