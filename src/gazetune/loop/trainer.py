"""The trainer node of the two-node loop (patent claims 10-11, ¶72, ¶121).

The study server (node 1) records responses; this node pulls them over HTTP, trains, and sends a
new generator back.  One **cycle**:

1. ``GET /api/trainer/responses?cursor=C`` until no more: every answered trial after the cursor
   (image provenance, answer, response time, gaze samples);
2. gaze -> fixations (:func:`gazetune.gaze.fixations.detect_fixations`, eq 3) -> fixation table
   -> pooled heatmaps per image (:class:`gazetune.tune.maps.MapSet`; synthetic images by
   ``(server generator version, latent seed)``);
3. M_saliency (eq 4-8): trained on the shown images (fetched from the server) and their maps, or
   fine-tuned from the previous cycle's model;
4. the generator is tuned (:func:`gazetune.tune.train.tune`, FIG. 4, eq 9b/10b) from the current
   version with a :class:`~gazetune.tune.maps.MapProvider` in ``auto`` mode;
5. ``POST /api/trainer/generators``: the server renders the new version and shows it to the next
   participants.

State folder (``--state``)::

    config.toml          the loop's settings (written at the first run)
    state.json           cursor, current server version, its checkpoint, M_saliency, history
    versions/v<N>/       per published version: trained_on.json (response ids, cursor range,
                         parent version), responses.jsonl (the data), fixations.csv, maps.npz,
                         saliency.safetensors, tune/ (run), generator.safetensors (published),
                         config.toml
    stimuli/<id>.png     shown images fetched from the server (immutable cache)
    work/<cycle id>/     a cycle in progress (removed when it fails)

Crash safety: ``state.json`` is replaced atomically and only after the server has acknowledged the
new version, so a cycle that fails leaves the previous state and the served version untouched
and is retried from the same cursor next time.  Before publishing, the cycle is recorded as
``pending`` with a random ``cycle_id`` that also goes to the server (``trained_on``); if the
trainer dies between the server's acknowledgement and its own state write, the next run finds the
version by that id and adopts it instead of publishing a duplicate.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from gazetune.config import load_config, save_config
from gazetune.gaze.fixation_table import write_fixation_table
from gazetune.gaze.geometry import ScreenGeometry
from gazetune.images import decode_png
from gazetune.stages import build_maps
from gazetune.study.client import TrainerClient, TrainerError, image_name, response_geometry, responses_to_fixations
from gazetune.atomic import atomic_write, atomic_write_bytes
from gazetune.tune.maps import MapProvider
from gazetune.tune.train import TuneConfig, tune

STATE_FILE = "state.json"
CONFIG_FILE = "config.toml"


LoopError = TrainerError
"""A cycle could not run (server unreachable, token refused, bad state); the message says why.
The loop's error is the trainer API client's (:class:`gazetune.study.client.TrainerError`), so
one ``except`` covers the server and the state folder."""


# ----------------------------------------------------------------------------------------------
# settings and durations


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"30m"``, ``"2h"``, ``"45s"``, ``"1h30m"``, ``"500ms"`` or a bare number of seconds -> seconds.

    >>> parse_duration("30m"), parse_duration("1h30m"), parse_duration("45")
    (1800.0, 5400.0, 45.0)
    """
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        value = float(s)
    else:
        parts = _DURATION.findall(s)
        if not parts or _DURATION.sub("", s).strip():
            raise ValueError(f"duration {text!r} is not understood; use e.g. 45s, 30m, 2h or 1h30m")
        value = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if not value > 0:
        raise ValueError(f"duration {text!r} must be > 0")
    return value


@dataclass
class LoopConfig:
    """Settings of the trainer loop (saved as ``config.toml`` in the state folder).

    Attributes
    ----------
    init_checkpoint : str
        Training checkpoint (with D, :func:`gazetune.tune.train.pretrain`) of the generator the
        server shows as ``init_version``; the first cycle tunes from it.
    init_version : int
        Server generator version that ``init_checkpoint`` is (default 1).
    real_images : str
        The study's real image set (:func:`gazetune.images.load_image_set`), loaded at the
        generator's size; names must match the server's real image names.
    min_new : int
        A cycle runs only with at least this many new responses (otherwise it waits).
    page_size : int
        Responses per request (1..1000).
    fixation_method : str
        ``ivt`` or ``idt`` (:func:`detect_fixations`).
    screen_width_px, screen_height_px, screen_width_cm, screen_height_cm, distance_cm
        Fallback viewing geometry (pixel -> degree conversion) for what a participant's browser
        did not measure; each response carries its participant's own viewport, card-size scale
        and blind-spot distance (:func:`response_geometry`).  The defaults are
        :class:`ScreenGeometry`'s.
    sigma_deg : float
        Heatmap Gaussian sd, degrees of visual angle (converted with each trial's rectangle).
    saliency_epochs, saliency_width, saliency_depth, saliency_batch : int
        M_saliency training (fine-tuning after the first cycle).
    tune_steps, batch : int
        Generator tuning steps and batch size per cycle.
    alpha : float
        Saliency weighting of eq 9b/10b (1 = pure equation).
    min_observed : int
        ``auto`` map mode uses measured maps from this many observed images on (hybrid: measured on
        real images, M_saliency on fresh fakes), else M_saliency alone.
    ema_half_life : float
        EMA half-life in images during tuning.
    seed : int
        Seed of cycle ``k`` is ``seed + k``.
    device : str
    timeout_s : float
        HTTP timeout, seconds (publishing renders the new version's images: allow time).
    """

    init_checkpoint: str = ""
    init_version: int = 1
    real_images: str = "builtin:faces"
    min_new: int = 1
    page_size: int = 500
    fixation_method: str = "ivt"
    screen_width_px: int = 1920
    screen_height_px: int = 1080
    screen_width_cm: float = 53.1
    screen_height_cm: float = 29.9
    distance_cm: float = 60.0
    sigma_deg: float = 1.0
    saliency_epochs: int = 8
    saliency_width: int = 8
    saliency_depth: int = 2
    saliency_batch: int = 16
    tune_steps: int = 200
    batch: int = 16
    alpha: float = 1.0
    min_observed: int = 16
    ema_half_life: float = 200.0
    seed: int = 0
    device: str = "cpu"
    timeout_s: float = 300.0

    def geometry(self) -> ScreenGeometry:
        return ScreenGeometry(self.screen_width_px, self.screen_height_px, self.screen_width_cm,
                              self.screen_height_cm, self.distance_cm)


@dataclass
class LoopState:
    """``state.json``: where the loop stands (paths relative to the state folder when inside it).

    Attributes
    ----------
    cursor : int
        Last response id used for training; the next cycle pulls responses after it.
    version : int
        Server generator version the trainer's current checkpoint is.
    checkpoint : str
        Training checkpoint of ``version`` (the next cycle tunes from it).
    saliency_model : str or None
        Latest M_saliency (fine-tuned by the next cycle).
    history : list of dict
        One entry per published version: version, parent, cursor range, responses, map mode.
    pending : dict or None
        A cycle whose version was sent to the server but not yet recorded here.
    """

    cursor: int = 0
    version: int = 1
    checkpoint: str = ""
    saliency_model: Optional[str] = None
    history: list = field(default_factory=list)
    pending: Optional[dict] = None


@dataclass
class CycleResult:
    """What one cycle did: ``status`` is ``published``, ``adopted`` (a pending version found on the
    server), or ``waiting`` (too few new responses)."""

    status: str
    version: int
    n_responses: int = 0
    cursor_from: int = 0
    cursor_to: int = 0
    map_mode: str = ""
    seconds: float = 0.0
    folder: Optional[Path] = None
    message: str = ""


# ----------------------------------------------------------------------------------------------
# state on disk


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, default=str).encode())


def load_state(state_dir: str | os.PathLike) -> LoopState | None:
    """``state.json`` of ``state_dir`` (``None`` when the folder has no state yet)."""
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return LoopState(**data)
    except (ValueError, TypeError) as e:
        raise LoopError(f"{path} is not a loop state file ({e}); move it away to start afresh") from e


def save_state(state_dir: str | os.PathLike, state: LoopState) -> None:
    """Replace ``state.json`` atomically."""
    _write_json(Path(state_dir) / STATE_FILE, dataclasses.asdict(state))


def init_state(state_dir: str | os.PathLike, cfg: LoopConfig) -> LoopState:
    """Create the state folder (config + initial state) or read the existing one.

    An existing folder keeps its ``config.toml``; ``cfg`` then only supplies what is missing.
    """
    d = Path(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = load_state(d)
    if state is not None:
        return state
    if not cfg.init_checkpoint:
        raise LoopError("a new state folder needs --init: the training checkpoint of the generator the "
                        f"server shows as version {cfg.init_version}")
    ck = Path(cfg.init_checkpoint)
    ck = ck / "checkpoint.safetensors" if ck.is_dir() else ck
    if not ck.is_file():
        raise LoopError(f"--init checkpoint not found: {ck}")
    save_config(cfg, d / CONFIG_FILE)
    state = LoopState(cursor=0, version=int(cfg.init_version), checkpoint=str(ck.resolve()))
    save_state(d, state)
    return state


def load_loop_config(state_dir: str | os.PathLike) -> LoopConfig:
    return load_config(LoopConfig, Path(state_dir) / CONFIG_FILE)


def _rel(state_dir: Path, p: Path) -> str:
    try:
        return str(p.resolve().relative_to(state_dir.resolve()))
    except ValueError:
        return str(p.resolve())


def _abs(state_dir: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else state_dir / q


# ----------------------------------------------------------------------------------------------
# data -> fixations -> maps


def sigma_pixels(responses: list[dict], geometry: ScreenGeometry, sigma_deg: float) -> float:
    """Heatmap sigma in image pixels: ``sigma_deg`` times the median image pixels per degree
    (image width / on-screen width in degrees, each in its participant's geometry, see
    :func:`response_geometry`)."""
    ppd = [int(r["image_size"][0]) / (float(r["image_rect"][2]) / response_geometry(r, geometry)[0].px_per_deg)
           for r in responses if r.get("image_rect")]
    if not ppd:
        raise LoopError("no response has an on-screen image rectangle: cannot size the heatmaps")
    return float(sigma_deg * np.median(ppd))


# ----------------------------------------------------------------------------------------------
# one cycle


class Trainer:
    """The trainer node: state folder + server connection; :meth:`cycle` runs one cycle.

    Parameters
    ----------
    server, token
        Study server URL and admin token.
    state_dir
        State folder (created on first use; needs ``cfg.init_checkpoint`` then).
    cfg
        Settings for a new state folder; an existing folder's ``config.toml`` wins unless
        ``override`` is given.
    override
        Settings to change in an existing folder's config (e.g. from the command line).
    log
        Called with one line of text per step.
    """

    def __init__(self, server: str, token: str, state_dir: str | os.PathLike, cfg: LoopConfig | None = None,
                 override: dict | None = None, log: Callable[[str], None] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.log = log or (lambda _msg: None)
        if (self.state_dir / CONFIG_FILE).exists():
            self.cfg = load_loop_config(self.state_dir)
        else:
            self.cfg = cfg or LoopConfig()
        if override:
            self.cfg = dataclasses.replace(self.cfg, **override)
        self.client = TrainerClient(server, token, self.cfg.timeout_s)

    def close(self) -> None:
        self.client.close()

    # -- recovery --------------------------------------------------------------------------
    def _recover(self, state: LoopState, versions: list[dict]) -> CycleResult | None:
        """Adopt a pending version the server has, or forget a pending one it never got."""
        p = state.pending
        if not p:
            return None
        hit = [v for v in versions if isinstance(v.get("trained_on"), dict) and v["trained_on"].get("cycle_id") == p["cycle_id"]]
        work = _abs(self.state_dir, p["work"])
        if not hit:
            self.log(f"cycle {p['cycle_id']} was never acknowledged by the server: it will be redone")
            shutil.rmtree(work, ignore_errors=True)
            state.pending = None
            save_state(self.state_dir, state)
            return None
        version = int(hit[0]["version"])
        self.log(f"cycle {p['cycle_id']} reached the server as version {version}: recording it")
        return self._commit(state, p, version, work)

    def _commit(self, state: LoopState, p: dict, version: int, work: Path) -> CycleResult:
        folder = self.state_dir / "versions" / f"v{version}"
        if not work.exists() and not folder.exists():
            raise LoopError(f"version {version} is on the server but its files ({work}) are gone from the state "
                            "folder; restore them or start a new state folder with --init")
        if work.exists():
            if folder.exists():
                shutil.rmtree(folder)
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.replace(work, folder)
        trained_on = {**p["trained_on"], "version": version}
        _write_json(folder / "trained_on.json", {**trained_on, "response_ids": p["response_ids"]})
        state.cursor = int(p["trained_on"]["cursor_to"])
        state.version = version
        state.checkpoint = _rel(self.state_dir, folder / "tune" / "checkpoint.safetensors")
        state.saliency_model = _rel(self.state_dir, folder / "saliency.safetensors")
        state.history.append(trained_on)
        state.pending = None
        save_state(self.state_dir, state)
        return CycleResult("adopted", version, p["trained_on"]["n_responses"], p["trained_on"]["cursor_from"],
                           state.cursor, p["trained_on"].get("map_mode", ""), folder=folder)

    # -- the cycle -------------------------------------------------------------------------
    def cycle(self) -> CycleResult:
        """Pull -> fixations -> maps -> M_saliency -> tune -> publish.  Raises :class:`LoopError`
        (or the training error) with the state and the served version untouched."""
        t0 = time.perf_counter()
        state = init_state(self.state_dir, self.cfg)
        versions = self.client.versions()  # also checks reachability and the token
        adopted = self._recover(state, versions)
        if adopted is not None:
            return adopted
        known = {int(v["version"]) for v in versions}
        if state.version not in known:
            raise LoopError(f"the server has no generator version {state.version} (it has {sorted(known)}); "
                            "is this state folder for another study?")
        responses, cursor_to = self.client.responses(state.cursor, self.cfg.page_size)
        n = len(responses)
        if n < max(1, self.cfg.min_new):
            msg = f"{n} new responses after cursor {state.cursor} (< --min-new {max(1, self.cfg.min_new)}): waiting"
            self.log(msg)
            return CycleResult("waiting", state.version, n, state.cursor, state.cursor, message=msg,
                               seconds=time.perf_counter() - t0)
        cycle_id = uuid.uuid4().hex[:12]
        work = self.state_dir / "work" / cycle_id
        work.mkdir(parents=True)
        try:
            result = self._train_and_publish(state, responses, cursor_to, cycle_id, work)
        except BaseException:
            if state.pending is None:  # nothing reached the server: forget the cycle's files
                shutil.rmtree(work, ignore_errors=True)
            raise
        result.seconds = time.perf_counter() - t0
        return result

    def _train_and_publish(self, state: LoopState, responses: list[dict], cursor_to: int, cycle_id: str,
                           work: Path) -> CycleResult:
        import torch

        from gazetune.images import load_image_set
        from gazetune.nets.generator import load_generator
        from gazetune.saliency.model import load_saliency_model, save_saliency_model
        from gazetune.saliency.train import SaliencyTrainConfig, train_saliency
        from gazetune.tune.checkpoint import read_checkpoint, write_checkpoint

        cfg = self.cfg
        cycle_no = len(state.history) + 1
        cursor_from = state.cursor
        self.log(f"cycle {cycle_no}: {len(responses)} responses (cursor {cursor_from} -> {cursor_to}), "
                 f"tuning generator version {state.version}")
        with atomic_write(work / "responses.jsonl", "w") as fh:
            for r in responses:
                fh.write(json.dumps(r) + "\n")
        save_config(cfg, work / CONFIG_FILE)

        # gaze -> fixations -> maps
        geometry = cfg.geometry()
        table, fstats = responses_to_fixations(responses, geometry, cfg.fixation_method)
        write_fixation_table(table, work / "fixations.csv")
        if not table.images():
            raise LoopError(f"none of the {len(responses)} new responses has usable gaze: no maps to train on")
        sizes = {tuple(int(v) for v in r["image_size"]) for r in responses}
        if len(sizes) != 1:
            raise LoopError(f"responses show images of several sizes {sorted(sizes)}; the loop needs one size")
        w, h = sizes.pop()
        sigma = sigma_pixels(responses, geometry, cfg.sigma_deg)
        maps = build_maps(table, sigma, (h, w))
        maps.save(work / "maps.npz")
        self.log(f"  {fstats['fixations']} fixations on {len(table.images())} images; maps sigma {sigma:.2f} px; "
                 f"{fstats['trials_default_geometry']} trial(s) on the fallback screen geometry")

        # M_saliency on the shown images
        names, images = self._shown_images(responses, table.images())
        target = np.stack([maps.real[n] if n in maps.real else maps.synthetic[_key(n)] for n in names])
        prev = _abs(self.state_dir, state.saliency_model) if state.saliency_model else None
        model = load_saliency_model(prev) if prev is not None and prev.exists() else None
        scfg = SaliencyTrainConfig(epochs=cfg.saliency_epochs, batch_size=cfg.saliency_batch, width=cfg.saliency_width,
                                   depth=cfg.saliency_depth, bias_grid=[4, 4], seed=cfg.seed + cycle_no, progress=False)
        model, hist = train_saliency(images, target, scfg, model=model)
        save_saliency_model(model, work / "saliency.safetensors")
        self.log(f"  M_saliency {'fine-tuned' if prev else 'trained'} on {len(names)} images, "
                 f"final loss {hist['loss'][-1] if hist['loss'] else float('nan'):.4f}")

        # tune the generator
        init = _abs(self.state_dir, state.checkpoint)
        meta = read_checkpoint(init).metadata
        gcfg = json.loads(meta["generator_config"])
        real = load_image_set(cfg.real_images, size=int(gcfg["size"]), channels=int(gcfg["channels"]))
        decided: dict = {}
        provider = MapProvider("auto", maps=maps, saliency_model=model, generator_version=str(state.version),
                               min_observed=cfg.min_observed, log=decided.update)
        tcfg = TuneConfig(batch=cfg.batch, steps=cfg.tune_steps, seed=cfg.seed + cycle_no, device=cfg.device,
                          alpha=cfg.alpha, mode="auto", min_observed=cfg.min_observed, log_every=10, sample_every=0,
                          checkpoint_every=0, n_samples=16, ema_half_life=cfg.ema_half_life)
        tune(tcfg, real.images, provider, work / "tune", init_checkpoint=init, names=real.names, progress=False)
        self.log(f"  generator tuned {cfg.tune_steps} steps, maps {decided.get('mode')} ({decided.get('reason')})")

        # publish: a generator-only checkpoint (the server renders G_ema)
        g = load_generator(work / "tune")
        tuned_meta = read_checkpoint(work / "tune" / "checkpoint.safetensors").metadata
        with torch.no_grad():
            write_checkpoint(work / "generator.safetensors", {"G_ema": g}, metadata={
                "generator_config": tuned_meta["generator_config"],
                "generator_version": tuned_meta["generator_version"]})
        ids = [int(r["cursor"]) for r in responses]
        trained_on = {
            "cycle_id": cycle_id, "parent_version": state.version, "cursor_from": cursor_from, "cursor_to": cursor_to,
            "n_responses": len(responses), "first_response": min(ids), "last_response": max(ids),
            "n_participants": len({r["participant_id"] for r in responses}),
            "versions_seen": sorted({int(r["generator_version"]) for r in responses if r["kind"] == "synthetic"}),
            "map_mode": decided.get("mode", ""), "tune_steps": cfg.tune_steps, "fixations": fstats,
        }
        state.pending = {"cycle_id": cycle_id, "work": _rel(self.state_dir, work), "trained_on": trained_on,
                         "response_ids": ids}
        save_state(self.state_dir, state)
        # if this fails the version may or may not have arrived: the next cycle asks (_recover)
        reply = self.client.publish((work / "generator.safetensors").read_bytes(),
                                    note=f"gazetune loop cycle {cycle_no}", trained_on=trained_on)
        result = self._commit(state, state.pending, int(reply["version"]), work)
        result.status = "published"
        self.log(f"  published generator version {result.version} ({reply.get('n_images')} images rendered)")
        return result

    def _shown_images(self, responses: list[dict], observed: list[str]) -> tuple[list[str], np.ndarray]:
        """The observed images as shown, fetched once from the server (cached in ``stimuli/``):
        names and ``(N, C, H, W)`` float32 in [-1, 1]."""
        by_name = {}
        for r in responses:
            by_name.setdefault(image_name(r), r["stimulus_id"])
        cache = self.state_dir / "stimuli"
        cache.mkdir(exist_ok=True)
        names, arrays = [], []
        for n in observed:
            sid = by_name[n]
            path = cache / f"{sid}.png"
            if not path.exists():
                atomic_write_bytes(path, self.client.stimulus(sid))
            names.append(n)
            arrays.append(decode_png(path.read_bytes()))
        return names, np.stack(arrays).astype(np.float32)


def _key(name: str) -> tuple[str, int]:
    """``(generator version, latent seed)`` of a synthetic image name; :class:`LoopError` for
    any other name (a response the server named neither as a real image nor as a synthetic one)."""
    from gazetune.tune.maps import parse_synthetic_name

    key = parse_synthetic_name(name)
    if key is None:
        raise LoopError(f"image {name!r} has no map: it is neither a real image with a map nor a synthetic "
                        "image name (synthetic/<version>/<seed>)")
    return key


# ----------------------------------------------------------------------------------------------
# periodic running


def run_loop(trainer: Trainer, every_s: float, once: bool = False, max_cycles: int | None = None,
             sleep: Callable[[float], None] = time.sleep) -> list[CycleResult]:
    """Run :meth:`Trainer.cycle` now and then every ``every_s`` seconds.

    A failing cycle is reported through ``trainer.log`` and retried at the next period (with
    ``once`` it is raised).  Stops after ``max_cycles`` cycles (``None``: never) or on Ctrl-C.
    """
    results: list[CycleResult] = []
    k = 0
    while True:
        start = time.monotonic()
        try:
            results.append(trainer.cycle())
        except Exception as e:  # noqa: BLE001 -- any failure: keep the previous version, retry later
            if once:
                raise
            trainer.log(f"cycle failed, state and served version unchanged; retrying in {every_s:.0f} s: "
                        f"{type(e).__name__}: {e}")
        k += 1
        if once or (max_cycles is not None and k >= max_cycles):
            return results
        sleep(max(0.0, every_s - (time.monotonic() - start)))
