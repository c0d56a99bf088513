"""Study configuration (``study.toml``) and its validation.

A study config names what is shown (real image set, generator checkpoint or folder of synthetic
images), how (trials per participant, real/synthetic ratio, answer scale, maximum display time,
gaze mode) and where responses are stored (database URL).  Every key has a default, so
``gazetune study serve --demo`` needs no file at all.

Example ``study.toml``::

    title = "Real or generated?"
    real_images = "builtin:faces"          # folder of images, .npz, or builtin:faces
    generator = "runs/gan/G.pt"            # checkpoint; or synthetic_dir = "fakes/"
    trials_per_participant = 20
    real_fraction = 0.5
    answer_scale = "binary"                # or "rating" (1 = surely generated .. 5 = surely real)
    max_display_ms = 3000                  # 0: the image stays until the answer
    gaze_mode = "mouse"                    # mouse | webcam | tracker
    database = "sqlite:///study.db"        # or postgresql+psycopg://user@host/db
    guide_model = "runs/sal_inception"     # optional: guided variants (docs/study.md, section 3c)
    guide_region = [0.2, 0.25, 0.6, 0.3]   # left, top, width, height (fractions of the image)
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from gazetune.config import from_dict, load_config

ANSWER_SCALES = ("binary", "rating")
GAZE_MODES = ("mouse", "webcam", "tracker")
DESIGNS = ("single", "2afc", "hype_time")
GUIDE_CONDITIONS = ("toward", "away")
"""Directions of gaze guidance; a variant's stimulus condition is ``guided_<direction>``."""
COMPLETION_PLATFORMS = {
    # where a crowdsourcing platform wants the participant sent at the end; {code} = completion code
    "prolific": "https://app.prolific.com/submissions/complete?cc={code}",
}


@dataclass
class StudyConfig:
    """Everything a study server needs.

    Attributes
    ----------
    title : str
        Shown on the consent page.
    real_images : str
        Real image set: a folder of images, an ``.npz`` file, or ``builtin:faces`` (scikit-image
        ``lfw_subset``, 100 faces).
    generator : str, optional
        Generator checkpoint; the server renders ``synthetic_pool`` images from it with stored
        latent seeds (version 1).  Further versions arrive over the trainer API.
    synthetic_dir : str, optional
        Folder of pre-made synthetic images (used instead of ``generator``).
    image_size : int
        Side of every served image in image pixels (real and synthetic alike, so size never tells
        them apart).  Gaze is stored in these pixels.
    channels : int
        1 (grey) or 3 (RGB).
    display_px : int
        Side of the image on screen in CSS pixels.
    trials_per_participant : int
    real_fraction : float
        Share of real images among a participant's trials, in [0, 1].
    answer_scale : str
        ``binary`` (real / generated) or ``rating`` (1..5, 5 = surely real).
    max_display_ms : int
        The image is hidden after this many milliseconds (0 = stays until answered).
    fixation_ms : int
        Duration of the fixation cross before each image, milliseconds.
    gaze_mode : str
        ``mouse`` (blurred image, sharp disc around the pointer), ``webcam`` (face mesh + ridge
        regression in the browser) or ``tracker`` (lab tracker over LSL).
    drift_check_every : int
        A drift check (one validation target) every this many trials (0 = never).
    validation_max_deg : float
        Validation accuracy (mean error, degrees of visual angle) above which the participant
        recalibrates.
    max_calibration_attempts : int
    synthetic_pool : int
        Synthetic images rendered per generator version (seeds ``0 .. synthetic_pool-1``).
    database : str
        SQLAlchemy URL; ``sqlite:///path`` (WAL) or ``postgresql+psycopg://...``.
    sqlite_synchronous : str
        ``NORMAL`` survives a killed server process; ``FULL`` also survives power loss (slower).
    data_dir : str
        Where checkpoints published by the trainer are kept.
    admin_token : str, optional
        Researcher token; a random one is made (and printed) when missing.
    completion_code : str, optional
        One fixed code for a crowdsourcing platform; otherwise each participant gets a random one.
    lsl_gaze_stream : str, optional
        Name of the LSL gaze stream read in ``tracker`` mode; when missing, the first stream of
        type ``lsl_gaze_type`` is used.
    lsl_gaze_type : str
        LSL stream type looked for when ``lsl_gaze_stream`` is not given (default ``Gaze``).
    lsl_channels : list of int
        Channel indices of the gaze stream holding ``[x, y]`` or ``[x, y, pupil]``.
    lsl_coords : str
        ``pixels``: x, y are screen pixels (origin top left); ``normalized``: fractions of
        ``lsl_screen_px`` (origin top left, as Tobii's ADCS).
    lsl_screen_px : list of int
        ``[width, height]`` of the tracked screen in pixels; needed for ``normalized``.
        Screen pixels become the page's CSS pixels by dividing by the browser's device pixel
        ratio (the browser runs full screen).
    lsl_marker_streams : list of str
        Names of extra LSL streams (heart rate, GSR, expression, ...) whose samples during a
        trial are stored with it (¶57, table ``markers``).
    lsl_marker_outlet : str
        Name of the LSL outlet on which the server publishes trial markers (``start <trial id>``,
        ``end <trial id>``), so recordings made by other LSL tools share the clock.
    lsl_late_s : float
        After a trial ends, how long to wait for gaze samples of its window still in transit.
    seed : int
        Seed of the trial plans and the synthetic pool.
    design : str
        ``single`` (one image, real or generated?), ``2afc`` (a real and a generated image side
        by side: which one is real?) or ``hype_time`` (one image shown for an exposure set by an
        adaptive staircase, then a mask).
    catch_trials : int
        Catch trials added to each participant's plan: images with an obvious answer (broken
        images made from the real ones; real images from ``catch_real_images`` when given).
    catch_real_images : str, optional
        Folder of obviously real photographs for catch trials.
    exclude_catch_accuracy_below : float
        Exclude a participant whose share of correct catch trials is below this (0 = rule off).
    exclude_fast_rt_ms, exclude_fast_share_above : float
        Exclude a participant when more than ``exclude_fast_share_above`` of their answers came
        faster than ``exclude_fast_rt_ms`` milliseconds (``exclude_fast_rt_ms = 0``: rule off).
    exclude_failed_validation : bool
        Exclude a participant whose last validation failed (``validation_max_deg``).
    completion_platform : str, optional
        ``prolific``: send the participant to Prolific's completion link with the code.
    completion_redirect : str, optional
        Any completion link; ``{code}`` and ``{pid}`` (the participant id from the URL) are filled in.
    hype_min_ms, hype_max_ms, hype_step_ms, hype_start_ms : int
        HYPE-time staircase: exposure range, step and first exposure, milliseconds.  A correct
        answer shortens the next exposure by one step, a wrong one lengthens it (1-up 1-down).
    mask_ms : int
        HYPE-time: how long the mask after the image stays before the answer buttons appear.
    guide_model : str, optional
        Turns on **guided variants**: an Inception-readout saliency checkpoint (the file, or the
        folder ``gazetune saliency train --backbone inception --out DIR`` wrote).  When a
        generator version's synthetic pool is rendered, a share of its images also get variants
        changed by gaze guidance (:func:`gazetune.guide.guide_image`) so that this model predicts
        more (``toward``) or less (``away``) fixation mass in ``guide_region``.  Each variant is
        one more synthetic stimulus (condition ``guided_toward`` / ``guided_away``; see
        :mod:`gazetune.study.guided`).  Off (``None``) by default.
    guide_region : list of float
        ``[left, top, width, height]`` of the region, as fractions of the image's width and
        height; needed with ``guide_model``.
    guide_conditions : list of str
        Which variants each chosen image gets: a non-empty subset of ``["toward", "away"]``.
    guide_fraction : float
        Share of each synthetic pool that also gets guided variants, in (0, 1] (at least one
        image).
    guide_strength : float
        Weight of the saliency loss against the naturalness losses (``GuideConfig.strength``), > 0.
    guide_steps : int
        Optimisation steps per variant (``GuideConfig.steps``), >= 1.
    """

    title: str = "Real or generated?"
    real_images: str = "builtin:faces"
    generator: Optional[str] = None
    synthetic_dir: Optional[str] = None
    image_size: int = 64
    channels: int = 3
    display_px: int = 384
    trials_per_participant: int = 20
    real_fraction: float = 0.5
    answer_scale: str = "binary"
    max_display_ms: int = 3000
    fixation_ms: int = 600
    gaze_mode: str = "mouse"
    drift_check_every: int = 10
    validation_max_deg: float = 2.5
    max_calibration_attempts: int = 3
    synthetic_pool: int = 100
    database: str = "sqlite:///study.db"
    sqlite_synchronous: str = "NORMAL"
    data_dir: str = "study_data"
    admin_token: Optional[str] = None
    completion_code: Optional[str] = None
    lsl_gaze_stream: Optional[str] = None
    lsl_gaze_type: str = "Gaze"
    lsl_channels: list = dataclasses.field(default_factory=lambda: [0, 1])
    lsl_coords: str = "pixels"
    lsl_screen_px: list = dataclasses.field(default_factory=list)
    lsl_marker_streams: list = dataclasses.field(default_factory=list)
    lsl_marker_outlet: str = "gazetune-markers"
    lsl_late_s: float = 1.0
    seed: int = 0
    design: str = "single"
    catch_trials: int = 0
    catch_real_images: Optional[str] = None
    exclude_catch_accuracy_below: float = 0.0
    exclude_fast_rt_ms: float = 0.0
    exclude_fast_share_above: float = 0.2
    exclude_failed_validation: bool = False
    completion_platform: Optional[str] = None
    completion_redirect: Optional[str] = None
    hype_min_ms: int = 100
    hype_max_ms: int = 1000
    hype_step_ms: int = 100
    hype_start_ms: int = 500
    mask_ms: int = 300
    guide_model: Optional[str] = None
    guide_region: list = dataclasses.field(default_factory=list)
    guide_conditions: list = dataclasses.field(default_factory=lambda: list(GUIDE_CONDITIONS))
    guide_fraction: float = 0.25
    guide_strength: float = 1.0
    guide_steps: int = 40

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad key and its value."""

        def bad(key: str, why: str) -> None:
            raise ValueError(f"study config: {key} = {getattr(self, key)!r}: {why}")

        if self.answer_scale not in ANSWER_SCALES:
            bad("answer_scale", f"must be one of {ANSWER_SCALES}")
        if self.gaze_mode not in GAZE_MODES:
            bad("gaze_mode", f"must be one of {GAZE_MODES}")
        if not (0.0 <= float(self.real_fraction) <= 1.0):
            bad("real_fraction", "must be in [0, 1]")
        for key, lo in (("trials_per_participant", 1), ("image_size", 8), ("display_px", 32),
                        ("synthetic_pool", 1), ("max_calibration_attempts", 1)):
            if int(getattr(self, key)) < lo:
                bad(key, f"must be >= {lo}")
        for key in ("max_display_ms", "fixation_ms", "drift_check_every"):
            if int(getattr(self, key)) < 0:
                bad(key, "must be >= 0")
        if self.channels not in (1, 3):
            bad("channels", "must be 1 or 3")
        if self.sqlite_synchronous.upper() not in ("NORMAL", "FULL"):
            bad("sqlite_synchronous", "must be NORMAL or FULL")
        if self.generator and self.synthetic_dir:
            bad("synthetic_dir", "give either generator or synthetic_dir, not both")
        if self.synthetic_dir and not Path(self.synthetic_dir).is_dir():
            bad("synthetic_dir", "is not a folder")
        if self.generator and not Path(self.generator).is_file():
            bad("generator", "file not found")
        if not (2 <= len(self.lsl_channels) <= 3 and all(isinstance(c, int) and c >= 0 for c in self.lsl_channels)):
            bad("lsl_channels", "must be 2 or 3 channel indices >= 0: [x, y] or [x, y, pupil]")
        if self.lsl_coords not in ("pixels", "normalized"):
            bad("lsl_coords", "must be 'pixels' or 'normalized'")
        if self.lsl_screen_px and not (len(self.lsl_screen_px) == 2 and all(
                isinstance(v, int) and v > 0 for v in self.lsl_screen_px)):
            bad("lsl_screen_px", "must be [width, height] in pixels, both > 0")
        if self.lsl_coords == "normalized" and not self.lsl_screen_px:
            bad("lsl_screen_px", "is needed when lsl_coords = 'normalized'")
        if not all(isinstance(n, str) and n for n in self.lsl_marker_streams):
            bad("lsl_marker_streams", "must be a list of LSL stream names")
        if float(self.lsl_late_s) < 0:
            bad("lsl_late_s", "must be >= 0")
        if self.design not in DESIGNS:
            bad("design", f"must be one of {DESIGNS}")
        if self.design == "2afc" and self.answer_scale != "binary":
            bad("answer_scale", "must be 'binary' with design = '2afc' (the answer is a side)")
        if int(self.catch_trials) < 0:
            bad("catch_trials", "must be >= 0")
        if self.catch_real_images and not Path(self.catch_real_images).is_dir():
            bad("catch_real_images", "is not a folder")
        for key in ("exclude_catch_accuracy_below", "exclude_fast_share_above"):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                bad(key, "must be in [0, 1]")
        if self.exclude_catch_accuracy_below > 0 and not self.catch_trials:
            bad("exclude_catch_accuracy_below", "needs catch_trials > 0")
        if float(self.exclude_fast_rt_ms) < 0:
            bad("exclude_fast_rt_ms", "must be >= 0")
        if self.completion_platform and self.completion_platform not in COMPLETION_PLATFORMS:
            bad("completion_platform", f"must be one of {tuple(COMPLETION_PLATFORMS)}")
        if self.completion_platform and self.completion_redirect:
            bad("completion_redirect", "give either completion_platform or completion_redirect, not both")
        if self.completion_redirect and not self.completion_redirect.startswith(("https://", "http://")):
            bad("completion_redirect", "must be an http(s):// link")
        if not (50 <= self.hype_min_ms <= self.hype_start_ms <= self.hype_max_ms <= 60000):
            bad("hype_start_ms", "must satisfy 50 <= hype_min_ms <= hype_start_ms <= hype_max_ms <= 60000")
        if not 1 <= self.hype_step_ms <= self.hype_max_ms - self.hype_min_ms + 1:
            bad("hype_step_ms", "must be >= 1 and at most the exposure range")
        if int(self.mask_ms) < 0:
            bad("mask_ms", "must be >= 0")
        self._validate_guidance(bad)

    def _validate_guidance(self, bad: Callable[[str, str], None]) -> None:
        """The ``guide_*`` keys (their values always; the model and region once ``guide_model``
        turns guided variants on)."""
        conditions = self.guide_conditions
        if not (isinstance(conditions, list) and conditions and len(set(conditions)) == len(conditions)
                and all(c in GUIDE_CONDITIONS for c in conditions)):
            bad("guide_conditions", f"must be a non-empty list of distinct values from {list(GUIDE_CONDITIONS)}")
        def number(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        if not (number(self.guide_fraction) and 0.0 < self.guide_fraction <= 1.0):
            bad("guide_fraction", "must be a number in (0, 1]")
        if not (number(self.guide_strength) and self.guide_strength > 0.0):
            bad("guide_strength", "must be a number > 0")
        if not (number(self.guide_steps) and self.guide_steps == int(self.guide_steps) and self.guide_steps >= 1):
            bad("guide_steps", "must be an integer >= 1")
        region = self.guide_region
        if region or self.guide_model:
            if not (isinstance(region, list) and len(region) == 4 and all(number(v) for v in region)):
                bad("guide_region", "must be [left, top, width, height] as fractions of the image (needed with guide_model)")
            left, top, w, h = (float(v) for v in region)
            if min(left, top) < 0 or w <= 0 or h <= 0 or left + w > 1 + 1e-9 or top + h > 1 + 1e-9:
                bad("guide_region", "must lie inside the image: left, top >= 0; width, height > 0; "
                                    "left + width <= 1; top + height <= 1")
        if self.guide_model:
            weights = Path(self.guide_model) / "model.safetensors" if Path(self.guide_model).is_dir() else Path(self.guide_model)
            sidecar = weights.with_suffix(".json")
            if not weights.is_file() or not sidecar.is_file():
                bad("guide_model", f"no saliency checkpoint there ({weights.name} and {sidecar.name} "
                                   "as written by `gazetune saliency train --backbone inception`)")
            try:
                kind = json.loads(sidecar.read_text()).get("model")
            except (OSError, ValueError, AttributeError):
                kind = None
            if kind != "InceptionSaliency":
                bad("guide_model", f"is a {kind or 'unreadable'} checkpoint; guidance needs an Inception-readout "
                                   "model (`gazetune saliency train --backbone inception`)")

    @property
    def guided(self) -> bool:
        """Whether synthetic pools get guided variants (``guide_model`` is set)."""
        return bool(self.guide_model)

    @property
    def exclusions_enabled(self) -> bool:
        """Whether any exclusion rule is on (then the trainer gets a participant's trials only
        once the participant completed and passed)."""
        return bool(self.exclude_catch_accuracy_below > 0 or self.exclude_fast_rt_ms > 0
                    or self.exclude_failed_validation)

    def completion_link(self, code: str, pid: str | None) -> str | None:
        """The link the participant is sent to at the end, or ``None``."""
        from urllib.parse import quote

        template = COMPLETION_PLATFORMS.get(self.completion_platform or "", self.completion_redirect)
        if not template:
            return None
        return template.replace("{code}", quote(code, safe="")).replace("{pid}", quote(pid or "", safe=""))

    def ensure_admin_token(self) -> str:
        """The admin token, made at random (32 hex digits) when the config has none."""
        if not self.admin_token:
            self.admin_token = secrets.token_hex(16)
        return self.admin_token


def load_study_config(path: str | Path) -> StudyConfig:
    """Read ``study.toml``; unknown keys and bad values raise ``ValueError`` naming them.

    Relative paths in the file (``generator``, ``synthetic_dir``, ``real_images`` folders,
    ``data_dir``, a SQLite database) are taken relative to the file's folder.
    """
    path = Path(path)
    cfg = load_config(_RawConfig, path)
    data = {k: v for k, v in dataclasses.asdict(cfg).items()}
    base = path.resolve().parent
    for key in ("generator", "synthetic_dir", "data_dir", "catch_real_images", "guide_model"):
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str(base / data[key])
    if data["real_images"] and not data["real_images"].startswith("builtin:"):
        if not Path(data["real_images"]).is_absolute():
            data["real_images"] = str(base / data["real_images"])
    db = data["database"]
    if db.startswith("sqlite:///") and not db.startswith("sqlite:////") and db != "sqlite:///:memory:":
        data["database"] = "sqlite:///" + str(base / db[len("sqlite:///"):])
    return from_dict(StudyConfig, data, source=str(path))


@dataclass
class _RawConfig(StudyConfig):
    """The config as written in the file, before paths are resolved (validation comes after)."""

    def __post_init__(self) -> None:  # paths are checked once resolved
        pass


def demo_config(workdir: str | Path) -> StudyConfig:
    """The ``--demo`` study: built-in faces, demo synthetic images, mouse gaze, 10 trials,
    SQLite in ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return StudyConfig(
        title="gazetune demo: real or generated face?",
        trials_per_participant=10,
        database=f"sqlite:///{workdir / 'study.db'}",
        data_dir=str(workdir / "data"),
        drift_check_every=5,
        synthetic_pool=50,
    )
