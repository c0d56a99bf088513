"""The two-node loop over real HTTP: a study server child process on 127.0.0.1, simulated
participants talking to it, the trainer pulling, tuning and publishing (claims 10-11)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from conftest import HTTP, MINIMAL_LOOP
from gazetune.images import decode_png, load_image_set
from gazetune.loop import trainer as trainer_mod
from gazetune.loop.cli import loop_command
from gazetune.loop.participants import run_participants
from gazetune.loop.trainer import LoopConfig, LoopError, Trainer, parse_duration
from gazetune.observers import PatchRealismCritic
from gazetune.study.runner import StudyServer, free_port
from gazetune.tune.train import TrainConfig, pretrain

SIZE = 16


@pytest.fixture(scope="module")
def faces():
    return load_image_set("builtin:faces", size=SIZE, channels=1)


@pytest.fixture(scope="module")
def base(faces, tmp_path_factory):
    """A tiny pretrained GAN: the generator the server shows as version 1."""
    cfg = TrainConfig(size=SIZE, channels=1, z_dim=16, g_width=8, d_width=8, batch=8, steps=8, log_every=4,
                      sample_every=0, checkpoint_every=0, n_samples=4, seed=0)
    return pretrain(cfg, faces.images, tmp_path_factory.mktemp("pretrain"), progress=False)


@pytest.fixture(scope="module")
def critic(faces):
    return PatchRealismCritic(seed=0).fit(faces.images)


@pytest.fixture(scope="module")
def server(base, tmp_path_factory):
    with StudyServer(tmp_path_factory.mktemp("server"), generator=str(base), image_size=SIZE, channels=1,
                     trials_per_participant=6, synthetic_pool=8, max_display_ms=1500, drift_check_every=0,
                     real_fraction=0.5) as srv:
        yield srv


def loop_cfg(base) -> LoopConfig:
    return LoopConfig(init_checkpoint=str(base), tune_steps=3, batch=8, saliency_epochs=1, saliency_batch=8,
                      min_observed=4, timeout_s=120)


def all_responses(srv: StudyServer) -> list[dict]:
    r = HTTP.get(srv.url + "/api/trainer/responses", params={"cursor": 0, "limit": 1000},
                 headers=srv.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["responses"]


def versions(srv: StudyServer) -> list[dict]:
    return HTTP.get(srv.url + "/api/trainer/generators", headers=srv.admin_headers(), timeout=60).json()["versions"]


def test_parse_duration():
    assert parse_duration("30m") == 1800 and parse_duration("2h") == 7200 and parse_duration("45s") == 45
    assert parse_duration("1h30m") == 5400 and parse_duration("500ms") == 0.5 and parse_duration("90") == 90
    for bad in ("", "10x", "m", "0s", "-5m"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_response_geometry_is_the_participants_own():
    """Pixels -> degrees in the participant's measured geometry (hand-computed), the trainer's
    fallback where the browser measured nothing."""
    import math

    from gazetune.gaze.geometry import ScreenGeometry
    from gazetune.loop.trainer import sigma_pixels
    from gazetune.study.client import response_geometry

    default = ScreenGeometry()
    r = {"image_size": [64, 64], "image_rect": [0.0, 0.0, 320.0, 320.0],
         "screen": {"viewport": {"width": 1500.0, "height": 900.0}, "px_per_mm": 4.2, "viewing_distance_mm": 575.0}}
    g, measured = response_geometry(r, default)
    assert measured and (g.screen_width_px, g.screen_height_px) == (1500, 900)
    assert g.screen_width_cm == pytest.approx(1500 / 42.0) and g.distance_cm == pytest.approx(57.5)
    # 1 deg at 57.5 cm and 42 px/cm: 2 * 57.5 * 42 * tan(0.5 deg) = 42.150 px
    assert g.px_per_deg == pytest.approx(2 * 57.5 * 42 * math.tan(math.radians(0.5)), rel=1e-6)
    # sigma: image px per degree = 64 / (320 / 42.150) = 8.430
    assert sigma_pixels([r], default, 1.0) == pytest.approx(64 / (320 / g.px_per_deg), rel=1e-6)
    # nothing measured (or an older server): the fallback geometry, flagged as such
    for screen in (None, {"viewport": None, "px_per_mm": None, "viewing_distance_mm": None}):
        g0, measured0 = response_geometry({"screen": screen}, default)
        assert not measured0 and g0 == default
    g1, measured1 = response_geometry({"screen": {"viewport": None, "px_per_mm": None, "viewing_distance_mm": 400.0}},
                                      default)
    assert not measured1 and g1.distance_cm == 40.0 and g1.screen_width_cm == pytest.approx(default.screen_width_cm)


def test_participant_uploads_arrive_complete(server, critic):
    runs = run_participants(server.url, 2, critic, seed=3, resend_fraction=0.5, id_prefix="up")
    stored = {r["trial_id"]: r for r in all_responses(server)}
    assert sum(t.n_resent for run in runs for t in run.trials) > 0  # duplicates were really sent
    for run in runs:
        assert len(run.trials) == 6 and run.completion_code
        for t in run.trials:
            s = stored[t.trial_id]
            got = np.asarray(s["samples"]["t_ms"], dtype=float)
            assert len(got) == len(t.t_ms) == 90  # 1.5 s at 60 Hz: nothing lost, nothing twice
            np.testing.assert_allclose(got, t.t_ms, atol=1e-3)
            assert s["answer"] == t.answer and s["rt_ms"] == pytest.approx(t.rt_ms, abs=1e-2)
            x = np.array([np.nan if v is None else v for v in s["samples"]["x"]])
            assert np.isfinite(x).mean() > 0.5 and np.nanmax(np.abs(x - SIZE / 2)) < SIZE  # image pixels
    # simulated participants' gaze is labelled as such, never as a person's mouse or webcam
    export = HTTP.get(server.url + "/api/admin/export/samples.csv", headers=server.admin_headers(), timeout=60).text
    rows = list(csv.DictReader(io.StringIO(export)))
    assert rows and {r["source"] for r in rows} == {"simulated"}, export[:200]


def test_trainer_publishes_and_cursor_advances(server, critic, base, tmp_path):
    state_dir = tmp_path / "state"
    run_participants(server.url, 2, critic, seed=11, id_prefix="a")
    before = {r["cursor"] for r in all_responses(server)}
    tr = Trainer(server.url, server.admin_token, state_dir, loop_cfg(base))
    r1 = tr.cycle()
    assert r1.status == "published" and r1.cursor_from == 0 and r1.cursor_to == max(before)
    listed = {v["version"]: v for v in versions(server)}
    assert r1.version in listed and listed[r1.version]["trained_on"]["parent_version"] == 1
    on1 = json.loads((state_dir / "versions" / f"v{r1.version}" / "trained_on.json").read_text())
    assert set(on1["response_ids"]) == before

    # nothing new: the cycle waits and publishes nothing
    n_versions = len(listed)
    assert tr.cycle().status == "waiting" and len(versions(server)) == n_versions

    # the next participant sees the new version, traceable by seed to the published generator
    (run,) = run_participants(server.url, 1, critic, seed=12, id_prefix="b")
    mine = [r for r in all_responses(server) if r["participant_id"] == run.participant_id]
    syn = [r for r in mine if r["kind"] == "synthetic"]
    assert syn and {r["generator_version"] for r in syn} == {r1.version}
    from gazetune.study.stimuli import generator_stimuli

    published = state_dir / "versions" / f"v{r1.version}" / "generator.safetensors"
    for r in syn:
        served = decode_png(HTTP.get(server.url + f"/api/trainer/stimuli/{r['stimulus_id']}",
                                     headers=server.admin_headers()).content)
        (mine_png,) = generator_stimuli(published, [r["seed"]], r1.version, SIZE, 1)
        assert r["image"] == mine_png.name
        np.testing.assert_allclose(served, decode_png(mine_png.png), atol=2.5 / 127.5)

    # the second cycle uses only the new responses and tunes from the published version
    r2 = tr.cycle()
    assert r2.status == "published" and r2.version > r1.version
    assert r2.cursor_from == r1.cursor_to
    on2 = json.loads((state_dir / "versions" / f"v{r2.version}" / "trained_on.json").read_text())
    assert set(on2["response_ids"]) == {r["cursor"] for r in mine}
    assert on2["parent_version"] == r1.version and on2["versions_seen"] == [r1.version]
    state = json.loads((state_dir / "state.json").read_text())
    assert state["cursor"] == r2.cursor_to and state["version"] == r2.version and state["pending"] is None
    assert [h["version"] for h in state["history"]] == [r1.version, r2.version]
    assert (state_dir / state["checkpoint"]).is_file() and (state_dir / state["saliency_model"]).is_file()


def test_failing_cycles_change_nothing_and_are_retried(server, critic, base, tmp_path, monkeypatch):
    state_dir = tmp_path / "state"
    run_participants(server.url, 1, critic, seed=21, id_prefix="c")
    tr = Trainer(server.url, server.admin_token, state_dir, loop_cfg(base))
    trainer_mod.init_state(state_dir, tr.cfg)
    state0 = (state_dir / "state.json").read_bytes()
    served0 = versions(server)

    def broken_tune(*a, **k):
        raise RuntimeError("injected failure in tuning")

    monkeypatch.setattr(trainer_mod, "tune", broken_tune)
    with pytest.raises(RuntimeError, match="injected"):
        tr.cycle()
    assert (state_dir / "state.json").read_bytes() == state0 and versions(server) == served0
    assert not any((state_dir / "work").iterdir())
    monkeypatch.undo()

    # server down / wrong token: clear messages, nothing changes
    down = Trainer(f"http://127.0.0.1:{free_port()}", "t", state_dir)
    with pytest.raises(LoopError, match="cannot reach the study server"):
        down.cycle()
    wrong = Trainer(server.url, "not-the-token", state_dir)
    with pytest.raises(LoopError, match="refused the admin token"):
        wrong.cycle()
    assert (state_dir / "state.json").read_bytes() == state0 and versions(server) == served0

    # the trainer dies after the server acknowledged the version but before recording it
    real_commit = Trainer._commit

    class Killed(BaseException):
        pass

    def die(self, *a, **k):
        raise Killed("killed after publishing")

    monkeypatch.setattr(Trainer, "_commit", die)
    with pytest.raises(Killed):
        tr.cycle()
    monkeypatch.setattr(Trainer, "_commit", real_commit)
    assert len(versions(server)) == len(served0) + 1
    pending = json.loads((state_dir / "state.json").read_text())["pending"]
    assert pending and pending["trained_on"]["cursor_from"] == 0
    again = tr.cycle()  # adopts the version the server has instead of publishing a duplicate
    assert again.status == "adopted" and again.version == versions(server)[-1]["version"]
    assert len(versions(server)) == len(served0) + 1
    state = json.loads((state_dir / "state.json").read_text())
    assert state["version"] == again.version and state["pending"] is None and state["cursor"] > 0


def test_cli_messages(server, base, tmp_path):
    app = typer.Typer()
    app.command()(loop_command)
    runner = CliRunner()
    r = runner.invoke(app, ["--server", server.url, "--token", "wrong", "--once", "--state", str(tmp_path / "s"),
                            "--init", str(base)])
    assert r.exit_code == 1 and "refused the admin token" in " ".join(r.output.split())
    r = runner.invoke(app, ["--server", server.url, "--token", "t", "--every", "10x", "--state", str(tmp_path / "s")])
    assert r.exit_code == 2 and "duration" in r.output
    r = runner.invoke(app, ["--server", server.url, "--token", server.admin_token, "--once",
                            "--state", str(tmp_path / "new")])
    assert r.exit_code == 1 and "needs --init" in " ".join(r.output.split())
    r = runner.invoke(app, ["--server", server.url, "--token", server.admin_token, "--once", "--state",
                            str(tmp_path / "s"), "--tune-steps", "2", "--saliency-epochs", "1", "--batch", "8"])
    assert r.exit_code == 0, r.output
    assert "cycle: published" in r.output and (tmp_path / "s" / "state.json").exists()


def test_run_loop_demo(tmp_path):
    from gazetune.loop.demo import run_loop_demo

    res = run_loop_demo(tmp_path / "demo", cycles=2, log=None, **MINIMAL_LOOP)
    assert [c["status"] for c in res["cycles"]] == ["published", "published"]
    assert sorted(res["rates"]) == ["v1", "v2", "v3"]  # every served version was judged
    for r in res["rates"].values():
        assert 0.0 <= r["fool_rate"]["rate"] <= 1.0 and r["fool_rate"]["n"] > 0
    assert json.loads((tmp_path / "demo" / "loop_results.json").read_text())["rates"] == res["rates"]


def test_loop_demo_participants_call_real_faces_real_more_often_than_the_base(tmp_path):
    """At the demo's loop settings (100 pretraining steps, 6 participants x 16 trials), the
    participants' fitted judge calls the base's samples real far less often than real faces.  The
    patch critic alone, their judge before, called these samples real 0.96 and real faces 0.83."""
    from gazetune.loop.demo import run_loop_demo

    res = run_loop_demo(tmp_path / "demo", cycles=0, log=None, participants=6, trials=16, pretrain_steps=100)
    fool = res["rates"]["v1"]["fool_rate"]
    assert fool["n"] >= 40
    assert res["real_called_real"] >= 0.7
    assert fool["rate"] < res["real_called_real"] - 0.3


def test_human_train_from_a_live_server(server, critic, tmp_path):
    """``gazetune human train --server``: the answered trials, fixations and shown images come over
    HTTP; the model is trained with a participant hold-out; a wrong token is a clear error."""
    from gazetune.human.cli import app as human_app
    from gazetune.human.live import trials_from_server
    from gazetune.study.client import image_name

    run_participants(server.url, 3, critic, seed=11, id_prefix="hm")
    responses = all_responses(server)
    live = trials_from_server(server.url, server.admin_token)
    answered = [r for r in responses if r["answer"] is not None]
    assert len(live.trials) == len(answered) and live.info["participants"] >= 3
    assert live.images.shape[1:] == (1, SIZE, SIZE) and len(live.names) == len(set(live.trials.image))
    assert live.info["fixations"] == sum(len(f) for f in live.trials.fixations) > 0
    assert live.info["trials_default_geometry"] == 0  # simulated participants report their screen
    # the shown image is the server's PNG, pixel for pixel
    r0 = answered[0]
    png = HTTP.get(server.url + f"/api/trainer/stimuli/{r0['stimulus_id']}", headers=server.admin_headers()).content
    k = live.names.index(image_name(r0))
    np.testing.assert_array_equal(live.images[k], decode_png(png))

    out = tmp_path / "human"
    res = CliRunner().invoke(human_app, ["train", "--server", server.url, "--token", server.admin_token,
                                         "--out", str(out), "--steps", "4", "--batch", "8", "--net-width", "4"])
    assert res.exit_code == 0, res.output
    assert "answered trials of" in res.output and "held out: label AUC" in res.output
    report = json.loads((out / "report.json").read_text())
    assert report["n_train_trials"] + report["n_holdout_trials"] == len(answered)

    res = CliRunner().invoke(human_app, ["train", "--server", server.url, "--token", "wrong", "--out", str(out / "x")])
    assert res.exit_code != 0 and "refused the admin token" in res.output
    assert not (out / "x").exists()
