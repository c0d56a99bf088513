"""Lab eye tracker over Lab Streaming Layer (LSL): gaze in, trial markers out, one clock.

In ``gaze_mode = "tracker"`` the study server (``gazetune study serve``) runs an
:class:`LslBridge` in background threads:

* it publishes trial markers on an LSL outlet (name ``lsl_marker_outlet``, type ``Markers``,
  one string channel: ``start <trial id>`` / ``end <trial id>``), time-stamped with
  :func:`pylsl.local_clock` at the moment the server records the trial's start and answer.  The
  same time stamps are stored as the trial's ``lsl_onset`` / ``lsl_offset`` (seconds), so a
  recording made by LabRecorder next to the study lines up with the database;
* it resolves the tracker's gaze stream (by name ``lsl_gaze_stream``, else by type
  ``lsl_gaze_type``) and pulls its samples with clock synchronisation (``proc_clocksync`` +
  ``proc_monotonize``): every sample time stamp is on the server's LSL clock;
* each gaze sample whose time stamp falls in a trial's window ``[lsl_onset, lsl_offset)`` is
  assigned to that trial, converted from tracker screen pixels to the page's CSS pixels (divided
  by the browser's device pixel ratio; the browser runs full screen) and then to image pixels with
  the trial's on-screen rectangle, and stored as the canonical samples (source ``tracker``,
  ``t_ms`` = LSL time in ms) through the same idempotent numbered-batch path as browser gaze.
  Batches go in about once a second during the trial; the last one after the answer, once the
  stream has delivered samples past the end of the window (or ``lsl_late_s`` has passed);
* extra streams named in ``lsl_marker_streams`` (heart rate, GSR, facial expression, ... ¶57)
  are read the same way; their samples inside a trial's window are stored in the ``markers``
  table with the trial id, stream name, LSL time and channel values (export ``markers``).

Channel mapping: ``lsl_channels = [x, y]`` or ``[x, y, pupil]`` (indices into the gaze stream's
channels); ``lsl_coords = "pixels"`` (screen pixels, origin top left) or ``"normalized"``
(fractions of ``lsl_screen_px``).
"""

from __future__ import annotations

import bisect
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gazetune.study.config import StudyConfig
    from gazetune.study.store import StudyStore

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
"""A running trial's gaze goes to the database about this often (one numbered batch)."""
KEEP_S = 30.0
"""Samples older than this (and older than every open trial) are dropped from memory."""


class _Buffer:
    """Time-ordered samples of one stream (LSL time stamps, s; rows of channel values)."""

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.rows: list[list[float]] = []

    def extend(self, ts: list[float], rows: list[list[Any]]) -> None:
        for t, r in zip(ts, rows):
            if not self.ts or t >= self.ts[-1]:
                self.ts.append(t)
                self.rows.append(r)

    def latest(self) -> float:
        return self.ts[-1] if self.ts else float("-inf")

    def window(self, t0: float, t1: float) -> tuple[list[float], list[list[Any]]]:
        """Samples with ``t0 <= t < t1``."""
        i, j = bisect.bisect_left(self.ts, t0), bisect.bisect_left(self.ts, t1)
        return self.ts[i:j], self.rows[i:j]

    def prune(self, before: float) -> None:
        k = bisect.bisect_left(self.ts, before)
        if k:
            del self.ts[:k], self.rows[:k]


@dataclass
class _Trial:
    """An open trial window on the LSL clock."""

    t0: float
    t1: Optional[float] = None
    done_until: float = 0.0  # gaze before this time is stored
    seq: int = 0
    last_flush: float = field(default_factory=time.monotonic)
    geometry: Optional[dict] = None


class LslBridge:
    """Reads the tracker's LSL gaze stream (and extra streams), publishes trial markers and
    stores the samples of each trial window; see the module notes.

    Parameters
    ----------
    store : StudyStore
    cfg : StudyConfig
        ``lsl_*`` keys.
    """

    def __init__(self, store: "StudyStore", cfg: "StudyConfig") -> None:
        import pylsl

        self.pylsl = pylsl
        self.store = store
        self.cfg = cfg
        info = pylsl.StreamInfo(cfg.lsl_marker_outlet, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                f"gazetune-{os.getpid()}-{secrets.token_hex(4)}")
        self.outlet = pylsl.StreamOutlet(info)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.gaze = _Buffer()
        self.extra = {name: _Buffer() for name in cfg.lsl_marker_streams}
        self.connected: dict[str, Optional[str]] = {"gaze": None, **{n: None for n in self.extra}}
        self.n_stored = {"gaze": 0, "markers": 0}
        self.errors: list[str] = []
        self._trials: dict[int, _Trial] = {}
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ clock and markers
    def now(self) -> float:
        """The LSL clock (s)."""
        return float(self.pylsl.local_clock())

    def trial_start(self, trial_id: int, t: float) -> None:
        """Open the trial's window at LSL time ``t`` and publish ``start <trial id>``.  A restart
        (page reload) moves the start; batches already stored keep their numbers."""
        self.outlet.push_sample([f"start {trial_id}"], t)
        with self._lock:
            old = self._trials.get(trial_id)
            self._trials[trial_id] = _Trial(t0=t, done_until=t, seq=old.seq if old else 0)

    def trial_end(self, trial_id: int, t: float) -> None:
        """Close the trial's window at LSL time ``t`` and publish ``end <trial id>``."""
        self.outlet.push_sample([f"end {trial_id}"], t)
        with self._lock:
            w = self._trials.get(trial_id)
            if w is not None:
                w.t1 = t

    def status(self) -> dict:
        """Which streams are connected, samples stored so far, the last errors."""
        with self._lock:
            return {"marker_outlet": self.cfg.lsl_marker_outlet, "connected": dict(self.connected),
                    "open_trials": sorted(self._trials), "stored": dict(self.n_stored),
                    "errors": self.errors[-5:]}

    # ------------------------------------------------------------------ threads
    def start(self) -> "LslBridge":
        gaze_by = ("name", self.cfg.lsl_gaze_stream) if self.cfg.lsl_gaze_stream else ("type", self.cfg.lsl_gaze_type)
        if self.cfg.gaze_mode == "tracker":
            self._spawn(self._read, "gaze", gaze_by, self.gaze)
        for name, buf in self.extra.items():
            self._spawn(self._read, name, ("name", name), buf)
        self._spawn(self._flush_loop)
        return self

    def _spawn(self, fn, *args) -> None:  # noqa: ANN001
        t = threading.Thread(target=fn, args=args, daemon=True, name=f"lsl-{fn.__name__}-{args[:1]}")
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        """Store what is left of open windows and stop the threads."""
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._flush(final=True)

    def _read(self, key: str, by: tuple[str, str], buf: _Buffer) -> None:
        pylsl = self.pylsl
        inlet = None
        while not self._stop.is_set():
            if inlet is None:
                found = pylsl.resolve_byprop(by[0], by[1], 1, 1.0)
                if not found:
                    continue
                flags = pylsl.proc_clocksync | pylsl.proc_monotonize
                inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=flags)
                inlet.open_stream(5.0)
                with self._lock:
                    self.connected[key] = f"{found[0].name()} ({found[0].type()}, {found[0].channel_count()} ch)"
                log.info("LSL: reading %s stream %s", key, self.connected[key])
                continue
            try:
                rows, ts = inlet.pull_chunk(timeout=0.2)
            except Exception as e:  # stream lost for good: resolve again
                self._error(f"{key}: {e}")
                inlet = None
                continue
            if ts:
                with self._lock:
                    buf.extend(list(ts), rows)

    def _error(self, msg: str) -> None:
        log.warning("LSL: %s", msg)
        with self._lock:
            self.errors.append(msg)

    def _flush_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._flush()
            except Exception as e:  # keep reading; the error shows in status()
                self._error(f"flush: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ trial windows -> database
    def _flush(self, final: bool = False) -> None:
        now_lsl, now = self.now(), time.monotonic()
        with self._lock:
            latest = self.gaze.latest()
            todo = []
            for tid, w in self._trials.items():
                ended = w.t1 is not None and (final or latest >= w.t1 or now_lsl >= w.t1 + self.cfg.lsl_late_s)
                due = ended or now - w.last_flush >= FLUSH_EVERY_S
                if due:
                    hi = w.t1 if ended else min(latest, w.t1 if w.t1 is not None else latest)
                    ts, rows = self.gaze.window(w.done_until, hi) if hi > w.done_until else ([], [])
                    extra = {n: b.window(w.t0, w.t1) for n, b in self.extra.items()} if ended else {}
                    todo.append((tid, w, hi, ts, rows, extra, ended))
        for tid, w, hi, ts, rows, extra, ended in todo:
            if w.geometry is None or w.geometry.get("rect") is None:
                w.geometry = self.store.trial_window(tid)
                if w.geometry is None or w.geometry.get("rect") is None:
                    continue  # the start has not been stored yet
            if ts:
                cols = self.gaze_columns(np.asarray(ts), rows, w.geometry)
                self.store.add_tracker_batch(tid, w.seq, cols, w.geometry["rect"], w.geometry["width"],
                                             w.geometry["height"])
                w.seq += 1
                self.n_stored["gaze"] += len(ts)
            w.done_until = max(w.done_until, hi)
            w.last_flush = now
            if ended:
                recs = [dict(trial_id=tid, stream=name, t_lsl=float(t), value=list(map(_jsonable, r)))
                        for name, (tt, rr) in extra.items() for t, r in zip(tt, rr)]
                self.store.add_markers(recs)
                self.n_stored["markers"] += len(recs)
                with self._lock:
                    if self._trials.get(tid) is w:
                        del self._trials[tid]
        with self._lock:
            starts = [w.t0 for w in self._trials.values()]
            horizon = min(starts + [now_lsl - KEEP_S])
            for b in (self.gaze, *self.extra.values()):
                b.prune(horizon)

    def gaze_columns(self, ts: np.ndarray, rows: list[list[float]], geometry: dict) -> dict[str, np.ndarray]:
        """Tracker rows -> ``t_ms`` (LSL ms), ``screen_x, screen_y`` (page CSS px), ``pupil``."""
        arr = np.asarray(rows, dtype=np.float64)
        ch = self.cfg.lsl_channels
        x, y = arr[:, ch[0]], arr[:, ch[1]]
        if self.cfg.lsl_coords == "normalized":
            x, y = x * self.cfg.lsl_screen_px[0], y * self.cfg.lsl_screen_px[1]
        dpr = float((geometry.get("viewport") or {}).get("dpr") or 1.0)
        return {"t_ms": ts * 1000.0, "screen_x": x / dpr, "screen_y": y / dpr,
                "pupil": arr[:, ch[2]] if len(ch) > 2 else None}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (int, np.integer)):
        return int(v)
    return str(v)


def attach_lsl(app: "FastAPI", cfg: "StudyConfig") -> LslBridge:
    """Start an :class:`LslBridge` for ``app`` (its trial start and answer endpoints then
    publish markers and open/close the trial windows); it stops with the server."""
    bridge = LslBridge(app.state.store, cfg).start()
    app.state.lsl = bridge
    app.router.on_shutdown.append(bridge.close)
    return bridge
