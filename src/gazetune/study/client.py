"""Client of a study server's trainer API, and adapters from its JSON to gazetune's records.

The trainer API (``/api/trainer/...``, ``Authorization: Bearer <admin token>``) is how every
training process reads a running study: the trainer node of ``gazetune loop``
(:mod:`gazetune.loop.trainer`) and ``gazetune human train --server``
(:mod:`gazetune.human.live`).  This module sits at the study edge of the data flow and imports
only the image and gaze stages:

* :class:`TrainerClient`: paged responses, shown stimuli (PNG bytes), generator versions, publish;
* :func:`image_name`: the name of a response's image in fixation tables and trial records;
* :func:`response_geometry`: the participant's measured viewing geometry;
* :func:`responses_to_fixations`: gaze samples -> fixation table (eq 3), in each participant's
  own geometry;
* :func:`trial_table_from_responses`: answered responses -> the trial record
  (:class:`gazetune.trials.TrialTable`).

Every failure is a :class:`TrainerError` whose message says what to do.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np

from gazetune.gaze import FixationTable
from gazetune.gaze.fixation_table import inside_image
from gazetune.gaze.fixations import detect_fixations
from gazetune.gaze.geometry import ScreenGeometry
from gazetune.gaze.samples import GazeSamples
from gazetune.images.names import synthetic_image_name
from gazetune.trials import AnswerScale, Trial, TrialTable

#: the study server's answer scales (``answer_scale`` of a response)
SERVER_SCALES = {"binary": AnswerScale(0, 1), "rating": AnswerScale(1, 5)}


class TrainerError(RuntimeError):
    """The study server could not be used (unreachable, token refused) or sent an inconsistent
    record; the message says which and what to do."""


class TrainerClient:
    """The trainer API of a study server (``Authorization: Bearer <admin token>``)."""

    def __init__(self, server: str, token: str, timeout_s: float = 300.0) -> None:
        if not server.startswith(("http://", "https://")):
            raise TrainerError(f"server URL {server!r} must start with http:// or https://")
        if not token:
            raise TrainerError("admin token is empty: pass --token (printed by 'gazetune study serve')")
        self.server = server.rstrip("/")
        self.client = httpx.Client(base_url=self.server, timeout=timeout_s,
                                   headers={"Authorization": f"Bearer {token}"})

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.client.request(method, path, **kw)
        except httpx.TransportError as e:
            raise TrainerError(f"cannot reach the study server at {self.server} ({type(e).__name__}: {e}); "
                            "is it running, and is the URL right?") from e
        if r.status_code in (401, 403):
            raise TrainerError(f"the study server at {self.server} refused the admin token "
                            f"(HTTP {r.status_code}: {_detail(r)}); pass the token it printed at start")
        if r.status_code >= 400:
            raise TrainerError(f"{method} {path} failed with HTTP {r.status_code}: {_detail(r)}")
        return r

    def versions(self) -> list[dict]:
        return self._request("GET", "/api/trainer/generators").json()["versions"]

    def responses(self, cursor: int, page_size: int) -> tuple[list[dict], int]:
        """Every response after ``cursor`` (paged); returns ``(responses, last cursor)``."""
        out: list[dict] = []
        while True:
            page = self._request("GET", "/api/trainer/responses",
                                 params={"cursor": cursor, "limit": page_size}).json()
            out += page["responses"]
            if not page["responses"] or page["next_cursor"] <= cursor:
                return out, cursor
            cursor = int(page["next_cursor"])
            if len(page["responses"]) < page_size:
                return out, cursor

    def stimulus(self, stimulus_id: str) -> bytes:
        return self._request("GET", f"/api/trainer/stimuli/{stimulus_id}").content

    def publish(self, checkpoint: bytes, note: str, trained_on: dict) -> dict:
        return self._request("POST", "/api/trainer/generators", content=checkpoint,
                             params={"note": note, "trained_on": json.dumps(trained_on)}).json()

    def close(self) -> None:
        self.client.close()


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", r.text))[:300]
    except (ValueError, AttributeError):
        return r.text[:300]


def response_geometry(r: dict, default: ScreenGeometry) -> tuple[ScreenGeometry, bool]:
    """Viewing geometry of one response's participant, and whether it was measured.

    The server reports the browser viewport (CSS px), the CSS px per mm of the card-size scaling
    and the blind-spot viewing distance (mm).  The screen of :class:`ScreenGeometry` is then the
    viewport (gaze coordinates are viewport CSS px): ``width_cm = width_px / px_per_mm / 10``.
    Whatever was not measured (or a server too old to report it) is taken from ``default``; the
    second value is ``True`` only when scale and distance were both measured.
    """
    screen = r.get("screen") or {}
    vp = screen.get("viewport") or {}
    w = float(vp.get("width") or default.screen_width_px)
    h = float(vp.get("height") or default.screen_height_px)
    ppmm = screen.get("px_per_mm")
    px_per_cm = (10.0 * float(ppmm),) * 2 if ppmm else default.px_per_cm
    dist_mm = screen.get("viewing_distance_mm")
    geometry = ScreenGeometry(screen_width_px=int(round(w)), screen_height_px=int(round(h)),
                              screen_width_cm=w / px_per_cm[0], screen_height_cm=h / px_per_cm[1],
                              distance_cm=float(dist_mm) / 10.0 if dist_mm else default.distance_cm)
    return geometry, bool(ppmm and dist_mm)


def responses_to_fixations(responses: list[dict], geometry: ScreenGeometry,
                           method: str = "ivt") -> tuple[FixationTable, dict[str, Any]]:
    """Fixation table of the responses' gaze samples.

    Images are named by their real file name or :func:`synthetic_image_name` ``(server version,
    seed)``; subjects by server participant id.  Samples are rebuilt in the canonical record
    (image pixels, with the raw screen coordinates and the image rectangle) and passed to
    :func:`detect_fixations` in each participant's own viewing geometry
    (:func:`response_geometry`; ``geometry`` fills in what was not measured).  Trials without
    usable gaze, trials on the default geometry and fixations centred off the image are counted
    in the returned stats, never dropped silently.
    """
    table = FixationTable()
    stats = {"trials": len(responses), "trials_without_gaze": 0, "trials_default_geometry": 0, "fixations": 0,
             "fixations_off_image": 0}
    for r in responses:
        s = r["samples"]
        name = image_name(r)
        if len(s.get("t_ms", [])) < 6 or not r.get("image_rect"):
            stats["trials_without_gaze"] += 1
            continue
        w, h = (int(v) for v in r["image_size"])
        nan = lambda k: np.array([np.nan if v is None else v for v in s[k]], dtype=np.float64)  # noqa: E731
        samples = GazeSamples(t_ms=np.asarray(s["t_ms"], dtype=np.float64), x=nan("x"), y=nan("y"), source="mouse",
                              image_size=(w, h), image_rect=tuple(float(v) for v in r["image_rect"]),
                              screen_x=nan("screen_x"), screen_y=nan("screen_y"))
        own, measured = response_geometry(r, geometry)
        stats["trials_default_geometry"] += int(not measured)
        try:
            fx = detect_fixations(samples, own, method=method)
        except ValueError:  # e.g. every sample lost
            stats["trials_without_gaze"] += 1
            continue
        arr = fx.as_array()
        inside = inside_image(arr, (h, w))
        stats["fixations_off_image"] += int((~inside).sum())
        stats["fixations"] += int(inside.sum())
        table.add(name, str(r["participant_id"]), arr[inside])
    return table, stats


def image_name(r: dict) -> str:
    """Name of a response's image in fixation tables: the real file name, or
    ``synthetic/<server version>/<seed>``."""
    if r["kind"] == "synthetic":
        if r.get("generator_version") is None or r.get("seed") is None:
            raise TrainerError(f"synthetic image {r.get('image')!r} of trial {r.get('trial_id')} has no (version, seed)")
        return synthetic_image_name(str(r["generator_version"]), int(r["seed"]))
    return str(r["image"])


def trial_table_from_responses(responses: list[dict], fixations: FixationTable | None = None) -> TrialTable:
    """The answered ``responses`` of the trainer API as a :class:`~gazetune.trials.TrialTable`.

    Fields read (by name, all documented by the trainer API): ``participant_id``, ``kind``,
    ``image`` / ``generator_version`` / ``seed`` (:func:`image_name`), ``answer``, ``rt_ms`` and
    ``answer_scale`` (``binary`` or ``rating``; one for all).  Responses without an answer are left
    out and counted (``dropped["no answer"]``).  With ``fixations`` (``subject`` = participant id)
    each trial gets its own; a trial without any gets an empty (0, 3) array.
    """
    answered = [r for r in responses if r.get("answer") is not None]
    names = {str(r.get("answer_scale", "binary")) for r in answered}
    unknown = names - set(SERVER_SCALES)
    if unknown or len(names) > 1:
        raise TrainerError(f"the server reports answer scale(s) {sorted(names)}; expected one of {sorted(SERVER_SCALES)}")
    scale = SERVER_SCALES[names.pop()] if names else SERVER_SCALES["binary"]
    trials = []
    for r in answered:
        value = float(r["answer"])
        if not scale.contains(value):
            raise TrainerError(f"trial {r.get('trial_id')}: answer {value:g} is not on the server's {scale.name} scale")
        name, pid = image_name(r), str(r["participant_id"])
        synthetic = r["kind"] == "synthetic"
        trials.append(Trial(
            participant=pid, image=name, kind=str(r["kind"]),
            generator=str(r["generator_version"]) if synthetic else None,
            rt_ms=float("nan") if r.get("rt_ms") is None else float(r["rt_ms"]),
            realness=scale.realness(value), answer=value, latent_seed=r.get("seed") if synthetic else None,
            fixations=None if fixations is None else fixations.for_image(name).get(pid, np.zeros((0, 3))),
        ))
    dropped = {"no answer": len(responses) - len(answered)} if len(responses) > len(answered) else {}
    return TrialTable(trials, scale, dropped, source="study server")
