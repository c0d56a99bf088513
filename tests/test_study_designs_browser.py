"""The trial designs in a real headless Debian Chromium: 2AFC with gaze on both images, a catch
trial feeding an exclusion with the Prolific completion redirect, and the HYPE-time staircase
with its mask.  Screenshots go to ``test-artifacts/study/<flow>/``."""

from __future__ import annotations

import csv
import io
import os
import time

import pytest

from conftest import HTTP
from gazetune.study.runner import StudyServer
from test_study_browser import CHROMIUM, INSTRUCTIONS, Flow, _mouse_path

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not installed at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def playwright_sync():
    pw_mod = pytest.importorskip("playwright.sync_api")
    with pw_mod.sync_playwright() as pw:
        yield pw


def _trials(srv: StudyServer) -> list[dict]:
    text = HTTP.get(srv.url + "/api/admin/export/trials.csv", headers=srv.admin_headers()).text
    return list(csv.DictReader(io.StringIO(text)))


def _to_trials(f: Flow, pid: str) -> None:
    """Consent, card (as is), blind spot skipped, the 5 pointer-check dots, instructions."""
    page = f.page
    page.goto(f.server.url + f"/?PROLIFIC_PID={pid}")
    page.wait_for_selector("#screen-consent.active")
    page.click("#consent-agree")
    page.wait_for_selector("#screen-card.active")
    page.click("#card-done")
    page.wait_for_selector("#screen-blindspot.active")
    page.click("#bs-skip")
    page.wait_for_selector("#screen-calib.active")
    page.click("#calib-start")
    assert f.click_targets(INSTRUCTIONS, hold_s=0.6) == 5
    page.wait_for_selector("#screen-instructions.active")
    f.shot("instructions")
    page.click("#instr-start")


def _current(srv: StudyServer, done: int) -> dict:
    """The export row of the trial now on screen (started, index ``done``)."""
    for _ in range(100):
        rows = [r for r in _trials(srv) if r["status"] == "shown" and int(r["idx"]) == done]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"trial {done} never started")


def _right(row: dict) -> str:
    if row["real_side"]:
        return "f" if row["real_side"] == "0" else "j"
    return "j" if row["kind"] in ("real", "catch_real") else "f"


def test_2afc_in_the_browser(tmp_path, playwright_sync):
    n = 3
    with StudyServer(tmp_path, design="2afc", trials_per_participant=n, synthetic_pool=4, fixation_ms=200,
                     max_display_ms=0, drift_check_every=0) as srv:
        f = Flow(playwright_sync, srv, "2afc")
        page = f.page
        try:
            _to_trials(f, "afc-1")
            for k in range(n):
                page.wait_for_selector("#trial-stage.showing", timeout=15000)
                assert page.is_visible("#trial-stage2.showing")
                row = _current(srv, k)
                for sel in ("#trial-stage", "#trial-stage2"):  # look at both images
                    _mouse_path(page, page.locator(sel).bounding_box(), 14, phase=k)
                    time.sleep(0.5)  # dwell: a pointer that never rests makes no fixation
                if k == 0:
                    f.shot("trial_2afc")
                    labels = page.locator("#trial-answers button").all_text_contents()
                    assert labels == ["Left is real (F)", "Right is real (J)"]
                page.keyboard.press(_right(row))
                page.wait_for_function("(n) => window.__study.trialsDone >= n", arg=k + 1, timeout=15000)
            page.wait_for_selector("#screen-done.active", timeout=15000)
            assert not [c for c in f.console if c.startswith("pageerror")], f.console
            assert not f.foreign_requests()
            page.goto(srv.url + f"/admin?token={srv.admin_token}")
            page.wait_for_function("document.getElementById('n-completed').textContent === '1'", timeout=15000)
            assert "2AFC accuracy" in page.text_content("#rates-title")
            f.shot("dashboard_2afc")
        finally:
            f.close()
        h = srv.admin_headers()
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=h).json()
        (v1,) = summ["fool_rate"]
        assert v1["n"] == n and v1["accuracy"] == 1.0
        rows = _trials(srv)
        fx = list(csv.DictReader(io.StringIO(HTTP.get(srv.url + "/api/admin/export/fixations.csv", headers=h).text)))
        shown = {f_["image"] for f_ in fx}
        for r in rows:  # the gaze gave a map on each image of each pair
            assert r["image"] in shown and r["image2"] in shown, (r["image"], r["image2"], shown)


def test_catch_trial_excludes_and_prolific_redirect(tmp_path, playwright_sync):
    n, catch = 2, 1
    with StudyServer(tmp_path, trials_per_participant=n, catch_trials=catch, synthetic_pool=4, fixation_ms=200,
                     max_display_ms=0, drift_check_every=0, exclude_catch_accuracy_below=1.0,
                     completion_platform="prolific") as srv:
        f = Flow(playwright_sync, srv, "catch_redirect")
        page = f.page
        landed = []
        page.route("https://app.prolific.com/**", lambda route: (landed.append(route.request.url), route.fulfill(
            status=200, content_type="text/html", body="<h1>Prolific: submission complete</h1>")))
        try:
            _to_trials(f, "prolific-7")
            for k in range(n + catch):
                page.wait_for_selector("#trial-stage.showing", timeout=15000)
                row = _current(srv, k)
                _mouse_path(page, page.locator("#trial-stage").bounding_box(), 10, phase=k)
                key = _right(row)
                if row["catch"] == "true":  # a careless answer on the obvious image
                    f.shot("catch_trial")
                    key = "j" if key == "f" else "f"
                page.keyboard.press(key)
                page.wait_for_function("(n) => window.__study.trialsDone >= n", arg=k + 1, timeout=15000)
            page.wait_for_selector("#screen-done.active", timeout=15000)
            code = page.text_content("#done-code").strip()
            href = page.get_attribute("#done-redirect", "href")
            assert href == f"https://app.prolific.com/submissions/complete?cc={code}"
            f.shot("done_redirect")
            page.wait_for_url("https://app.prolific.com/**", timeout=15000)
            assert landed == [href]
            page.goto(srv.url + f"/admin?token={srv.admin_token}")
            page.wait_for_function("document.querySelectorAll('#excluded tbody tr').length === 1", timeout=15000)
            assert "catch trials: 0 of 1 right" in page.text_content("#excluded")
            f.shot("dashboard_excluded")
        finally:
            f.close()
        resp = HTTP.get(srv.url + "/api/trainer/responses", headers=srv.admin_headers()).json()["responses"]
        assert resp == []  # the excluded participant's trials never reach the trainer


def test_hype_time_staircase_in_the_browser(tmp_path, playwright_sync):
    n = 4
    with StudyServer(tmp_path, design="hype_time", trials_per_participant=n, synthetic_pool=4, fixation_ms=200,
                     max_display_ms=0, drift_check_every=0, hype_start_ms=300, hype_step_ms=100,
                     mask_ms=60000) as srv:
        f = Flow(playwright_sync, srv, "hype_time")
        page = f.page
        try:
            _to_trials(f, "hype-1")
            for k in range(n):
                page.wait_for_selector("#trial-stage.showing", timeout=15000)
                row = _current(srv, k)
                # the image goes after the exposure and the noise mask covers it
                page.wait_for_selector("#trial-mask:not([hidden])", timeout=5000)
                assert "url(" in page.eval_on_selector("#trial-mask", "el => el.style.backgroundImage")
                if k == 0:
                    f.shot("hype_mask")
                key = "j" if _right(row) == "f" else "f"  # always wrong: the exposure must grow
                page.keyboard.press(key)
                page.wait_for_function("(n) => window.__study.trialsDone >= n", arg=k + 1, timeout=15000)
            page.wait_for_selector("#screen-done.active", timeout=15000)
            assert not [c for c in f.console if c.startswith("pageerror")], f.console
        finally:
            f.close()
        rows = sorted(_trials(srv), key=lambda r: int(r["idx"]))
        assert [float(r["exposure_ms"]) for r in rows] == [300.0, 400.0, 500.0, 600.0]
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=srv.admin_headers()).json()
        v1 = next(r for r in summ["fool_rate"] if r["group"] == "v1")
        assert v1["hype_time"] is not None and v1["hype_infinity"]["error_rate"] == 1.0


def test_dropped_upload_is_retried_flagged_and_said(tmp_path, playwright_sync):
    """Trial 0: its first gaze batch fails 5 times, then gets through in the retry before the
    answer (trial complete).  Trial 1: every upload of its first batch fails (network error): the
    page says the connection is lost, moves on after its retries, and the trial is flagged."""
    with StudyServer(tmp_path, trials_per_participant=2, synthetic_pool=2, fixation_ms=200, max_display_ms=0,
                     drift_check_every=0) as srv:
        f = Flow(playwright_sync, srv, "dropped_upload")
        page = f.page
        tried: dict[str, int] = {}
        ids: list[str] = []

        def gaze_route(route):  # noqa: ANN001
            body = route.request.post_data or ""
            tid = route.request.url.split("/api/trials/")[1].split("/")[0]
            if '"seq":0' in body.replace(" ", "") and tid in ids:
                tried[tid] = tried.get(tid, 0) + 1
                if ids.index(tid) == 1 or tried[tid] <= 5:
                    route.abort("internetdisconnected")
                    return
            route.continue_()

        page.route("**/api/trials/*/gaze", gaze_route)
        try:
            _to_trials(f, "flaky-net")
            warned = False
            for k in range(2):
                page.wait_for_selector("#trial-stage.showing", timeout=15000)
                ids.append(_current(srv, k)["trial_id"])
                _mouse_path(page, page.locator("#trial-stage").bounding_box(), 40, phase=k)  # > 1 s: a batch goes up
                page.keyboard.press("j")
                if k == 1:
                    page.wait_for_function("document.getElementById('trial-warning').textContent.includes('connection')",
                                           timeout=20000)
                    warned = True
                    f.shot("connection_lost")
                page.wait_for_function("(n) => window.__study.trialsDone >= n", arg=k + 1, timeout=60000)
            page.wait_for_selector("#screen-done.active", timeout=15000)
            assert warned
        finally:
            f.close()
        rows = {r["trial_id"]: r for r in _trials(srv)}
        first, second = rows[ids[0]], rows[ids[1]]
        assert tried[ids[0]] == 6 and first["gaze_complete"] == "true"  # arrived on the 6th try
        assert tried[ids[1]] >= 8 and second["gaze_complete"] == "false"
        assert int(second["n_batches"]) == int(second["gaze_batches_sent"]) - 1
