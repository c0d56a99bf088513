"""Simulated participants that take part in a study over real HTTP (they stand in for people).

Each participant is a :class:`~gazetune.observers.SimulatedObserver` driving the participant API
of :mod:`gazetune.study.app` exactly as the browser client does:

1. ``POST /api/participants`` (consent), ``POST /api/me/screen`` (the viewing geometry);
2. until ``GET /api/me/next`` says ``done``: download the trial's PNG, let the observer view it
   (its realism map comes from a fitted judge or a :class:`~gazetune.observers.PatchRealismCritic`),
   ``POST .../start`` with the on-screen rectangle, upload the 60 Hz gaze in batches of
   ``batch_ms`` (default 1 s) numbered ``seq = 0, 1, ...``, then ``POST .../answer`` with the
   answer and the response time;
3. ``POST /api/me/complete``.

Gaze goes up in **screen pixels** of the default :class:`~gazetune.gaze.geometry.ScreenGeometry`
(1920 x 1080 px, 53.1 cm wide, 60 cm away), the frame the simulated observer's samples live in;
lost samples are ``null``.  Transport errors are retried with the same ``seq`` (the server stores a
batch once), and ``resend_fraction`` re-sends some batches on purpose to exercise that.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import httpx
import numpy as np

from gazetune.gaze.geometry import ScreenGeometry
from gazetune.gaze.samples import image_to_screen
from gazetune.images import decode_png
from gazetune.observers import ObserverPanel, PatchRealismCritic, SimulatedObserver
from gazetune.observers.judge import RealismJudge

SCREEN = ScreenGeometry()
"""The screen the simulated participants sit at (also what the trainer assumes by default)."""


class ParticipantError(RuntimeError):
    """The server refused a participant request (message names the request and the reply)."""


def quiet_http_logs() -> None:
    """Hide httpx's one INFO line per request (pymovements turns INFO logging on at import);
    called by the demo and the CLI, not on import."""
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class UploadedTrial:
    """What one simulated participant sent for one trial (to check against the server).

    Attributes
    ----------
    trial_id : int
    t_ms : float64 (n,)
        Client time stamps of the samples sent, ms (image onset at ``onset_ms``).
    n_batches : int
        Distinct batches (``seq`` values) sent.
    n_resent : int
        Batches sent a second time on purpose (must be stored once).
    answer : int
    rt_ms : float
    """

    trial_id: int
    t_ms: np.ndarray
    n_batches: int
    n_resent: int
    answer: int
    rt_ms: float


@dataclass
class ParticipantRun:
    """One simulated participant's session: its server id, trials and completion code."""

    observer_id: str
    participant_id: int
    trials: list[UploadedTrial] = field(default_factory=list)
    completion_code: str = ""
    seconds: float = 0.0


class _Http:
    """A participant's HTTP client: JSON requests with retries on transport errors."""

    def __init__(self, base_url: str, timeout_s: float, retries: int) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.retries = retries

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                r = self.client.request(method, path, **kw)
            except httpx.TransportError as e:
                if attempt == self.retries:
                    raise ParticipantError(f"{method} {path}: server unreachable after {attempt + 1} tries: {e}") from e
                time.sleep(0.2 * 2**attempt)
                continue
            if r.status_code >= 400:
                raise ParticipantError(f"{method} {path}: HTTP {r.status_code}: {r.text[:300]}")
            return r
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.close()


def run_participant(
    base_url: str,
    observer: SimulatedObserver,
    critic: PatchRealismCritic | RealismJudge,
    seed: int = 0,
    batch_ms: float = 1000.0,
    resend_fraction: float = 0.0,
    timeout_s: float = 60.0,
    retries: int = 3,
) -> ParticipantRun:
    """Take part in the study at ``base_url`` once, from consent to completion code.

    Parameters
    ----------
    base_url
        The study server, e.g. ``http://127.0.0.1:8000``.
    observer
        Who looks and answers; ``observer.observer_id`` becomes the participant's external id.
    critic
        Fitted realism judge or critic: anything with ``realism_map(image) -> (H, W)`` in [0, 1]
        (:class:`~gazetune.observers.judge.RealismJudge`, :class:`PatchRealismCritic`); its image
        size and channels must match the served images.
    seed
        Seed of this participant's trials (trial ``k`` uses the generator seeded
        ``(seed, participant id, k)``).
    batch_ms
        Length of one gaze batch, ms of recording.
    resend_fraction
        Share of batches sent twice (as a client would after losing an acknowledgement).
    timeout_s, retries
        Per-request timeout (s) and retries on transport errors.

    Returns
    -------
    ParticipantRun
    """
    if not batch_ms > 0:
        raise ValueError(f"batch_ms must be > 0; got {batch_ms}")
    t_start = time.perf_counter()
    http = _Http(base_url, timeout_s, retries)
    try:
        study = http.request("GET", "/api/study").json()
        display_ms = float(study.get("max_display_ms") or 3000.0)
        rating = study.get("answer_scale") == "rating"
        me = http.request("POST", "/api/participants",
                          json={"consent": True, "external_id": observer.observer_id,
                                "user_agent": "gazetune simulated participant"}).json()
        pid = int(me["participant_id"])
        http.client.headers["X-Participant-Token"] = me["token"]
        http.request("POST", "/api/me/screen", json={
            "px_per_mm": SCREEN.screen_width_px / (SCREEN.screen_width_cm * 10),
            "viewing_distance_mm": SCREEN.distance_cm * 10})
        run = ParticipantRun(observer.observer_id, pid)
        rng_resend = np.random.default_rng([int(seed), pid, 7])
        clock = 10_000.0  # client clock (performance.now() in the browser), ms
        while True:
            nxt = http.request("GET", "/api/me/next").json()
            if nxt["done"]:
                break
            tid = int(nxt["trial_id"])
            image = decode_png(http.request("GET", nxt["image_url"]).content)
            trial = observer.view(image, critic.realism_map(image), rng=[int(seed), pid, int(nxt["index"])],
                                  display_ms=display_ms, image_id=str(tid), order=int(nxt["index"]))
            s = trial.samples
            rect = s.image_rect
            onset = clock
            http.request("POST", f"/api/trials/{tid}/start", json={
                "image_rect": [float(v) for v in rect], "client_onset_ms": onset,
                "viewport": {"width": float(SCREEN.screen_width_px), "height": float(SCREEN.screen_height_px)}})
            sx, sy = image_to_screen(s.x, s.y, rect, (image.shape[2], image.shape[1]))
            t = onset + s.t_ms
            k = np.floor(s.t_ms / batch_ms).astype(np.int64)
            n_resent = 0
            seqs = np.unique(k)
            for seq in seqs:
                sel = k == seq
                body = {"seq": int(seq), "source": "simulated", "t_ms": [round(float(v), 3) for v in t[sel]],
                        "x": _nullable(sx[sel]), "y": _nullable(sy[sel])}
                http.request("POST", f"/api/trials/{tid}/gaze", json=body)
                if resend_fraction > 0 and rng_resend.random() < resend_fraction:
                    dup = http.request("POST", f"/api/trials/{tid}/gaze", json=body).json()
                    if not dup.get("duplicate"):
                        raise ParticipantError(f"trial {tid}: re-sent batch seq {seq} was stored twice")
                    n_resent += 1
            answer = int(trial.rating) if rating else int(trial.answer_real)
            http.request("POST", f"/api/trials/{tid}/answer",
                         json={"answer": answer, "rt_ms": round(float(trial.rt_ms), 3), "timed_out": False})
            run.trials.append(UploadedTrial(tid, np.round(t, 3), len(seqs), n_resent, answer, float(trial.rt_ms)))
            clock = onset + display_ms + 1000.0
        run.completion_code = http.request("POST", "/api/me/complete").json()["completion_code"]
        run.seconds = time.perf_counter() - t_start
        return run
    finally:
        http.close()


def _nullable(v: np.ndarray) -> list[Optional[float]]:
    return [round(float(a), 3) if np.isfinite(a) else None for a in v]


def run_participants(
    base_url: str,
    n: int,
    critic: PatchRealismCritic | RealismJudge,
    seed: int = 0,
    panel: Optional[ObserverPanel] = None,
    workers: int = 2,
    id_prefix: str = "sim",
    progress: Optional[Callable[[ParticipantRun], None]] = None,
    **kw: Any,
) -> list[ParticipantRun]:
    """``n`` simulated participants, ``workers`` at a time, each a full session over HTTP.

    Observers come from ``panel`` (default :meth:`ObserverPanel.lab` with ``n`` observers drawn
    from ``seed``); external ids are ``f"{id_prefix}{i:03d}"``.  ``kw`` goes to
    :func:`run_participant`.  Returns the sessions in participant order; the first failure is
    raised (a :class:`ParticipantError` naming the request).
    """
    if n < 1:
        raise ValueError(f"number of participants must be >= 1; got {n}")
    panel = panel or ObserverPanel.lab(n, seed=seed)
    if len(panel) < n:
        raise ValueError(f"panel has {len(panel)} observers but {n} participants were asked for")
    from dataclasses import replace

    observers: Sequence[SimulatedObserver] = [replace(panel[i], observer_id=f"{id_prefix}{i:03d}") for i in range(n)]

    def one(i: int) -> ParticipantRun:
        r = run_participant(base_url, observers[i], critic, seed=seed, **kw)
        if progress is not None:
            progress(r)
        return r

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, range(n)))
