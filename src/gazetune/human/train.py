"""Training the human-response model (FIG. 5, ¶105: "auxiliary training phase 532") from study
trials, and evaluating it on held-out participants.

Records
-------
:class:`HumanTrials` is the trial table this module learns from, one row per trial (one person
looking at one image and answering):

=============  =========================================================================
``image``      image id: the name of the image in its :class:`gazetune.images.ImageSet`
``participant`` participant (observer) id
``answer``     the person's answer: 0 = fake / 1 = real, or a 1-5 rating (1 = surely fake)
``rt_ms``      response time in milliseconds (NaN when unknown)
``fixations``  (n, 3) array of ``x, y, duration_ms`` in image pixels, in viewing order
``kind``       ground truth ``"real"`` / ``"synthetic"`` ('' when unknown; only reported)
``latent_seed`` latent seed of a synthetic image (None otherwise), to regenerate it
=============  =========================================================================

It is read from a **study export** (:func:`read_study_export`: a trials CSV with columns
``participant, image, kind, answer, rt_ms[, seed]`` plus the project's fixation table CSV whose
``subject`` is the participant) or built from **simulated observers** (:func:`trials_from_simulated`).

Training
--------
:func:`train_human_model` fits either variant with Adam.  Participants, not trials, are split into
train and held-out sets (``holdout_fraction``), so the report measures how well the model predicts
*new people*: label AUC and accuracy against the held-out answers, NSS and CC of the gaze head
against the held-out participants' gaze.  Joint variant: eq 11 (= eq 14 gaze term + eq 15 label
term on one network).  Separate variant: eq 14 trains ``M_gaze``; eq 15 trains ``M_h-label`` on
the detached predicted map.  With ``cyborg_weight > 0`` the label term becomes the CYBORG blend
(:func:`gazetune.human.losses.cyborg_loss`) of its cross-entropy and the distance between the
label head's class-activation map (CAM of the class the person answered) and the gaze target.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gazetune.gaze.fixation_table import FixationTable, read_fixation_table, write_fixation_table
from gazetune.gaze.heatmap import heatmap
from gazetune.human.model import HumanModelConfig, HumanResponseModel, SeparateHumanModel, build_human_model
from gazetune.human.predict import as_tensor as _as_tensor
from gazetune.human.predict import predict
from gazetune.saliency.metrics import _auc_all_thresholds, cc, nss
from gazetune.human import losses as HL

TRIAL_COLUMNS = ("participant", "image", "kind", "answer", "rt_ms", "seed")
_ANSWER_WORDS = {"real": 1.0, "fake": 0.0, "synthetic": 0.0}


# ============================================================================ records
@dataclass
class HumanTrials:
    """Trial table (see module docstring); all columns have one entry per trial."""

    image: list[str]
    participant: list[str]
    answer: np.ndarray
    rt_ms: np.ndarray
    fixations: list[np.ndarray]
    kind: list[str] = field(default_factory=list)
    latent_seed: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.image)
        self.latent_seed = [None if s is None else int(s) for s in self.latent_seed] if len(self.latent_seed) else [None] * n
        self.image = [str(s) for s in self.image]
        self.participant = [str(s) for s in self.participant]
        self.answer = np.asarray(self.answer, dtype=np.float64).reshape(-1)
        self.rt_ms = np.asarray(self.rt_ms, dtype=np.float64).reshape(-1)
        self.fixations = [np.asarray(f, dtype=np.float64).reshape(-1, 3) for f in self.fixations]
        self.kind = [str(k) for k in self.kind] if len(self.kind) else [""] * n
        lengths = {k: len(v) for k, v in vars(self).items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"trial columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.image)

    def participants(self) -> list[str]:
        return sorted(set(self.participant))

    def subset(self, rows: Sequence[int] | np.ndarray) -> "HumanTrials":
        rows = [int(i) for i in rows]
        return HumanTrials(
            [self.image[i] for i in rows], [self.participant[i] for i in rows], self.answer[rows],
            self.rt_ms[rows], [self.fixations[i] for i in rows], [self.kind[i] for i in rows],
            [self.latent_seed[i] for i in rows],
        )


def _parse_answer(text: str, where: str) -> float:
    t = text.strip().lower()
    if t in _ANSWER_WORDS:
        return _ANSWER_WORDS[t]
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"{where}: answer {text!r} is neither real/fake nor a number") from None


def read_study_export(trials_csv: str | os.PathLike, fixations_csv: str | os.PathLike | None = None) -> HumanTrials:
    """Read a study export: the trials CSV and the fixation table CSV (``image, subject, index, x,
    y, duration_ms``; ``subject`` = participant).

    The trials CSV needs ``participant`` (or ``participant_id``, as ``gazetune study`` exports
    it), ``image`` and ``answer``; ``kind``, ``rt_ms``, ``seed`` (latent seed of synthetic images)
    and ``status`` are read when present.  Rows whose ``status`` is not ``answered`` or whose
    answer is empty are skipped.  ``answer`` may be 0/1, 1-5 or the words real/fake; an empty
    ``rt_ms`` is NaN.  A trial without fixation rows gets an empty (0, 3) array.  Errors name the
    file and line.
    """
    path = Path(trials_csv)
    if not path.exists():
        raise FileNotFoundError(f"trials CSV not found: {path}")
    table = read_fixation_table(fixations_csv) if fixations_csv is not None else FixationTable()
    cols: dict[str, list] = {c: [] for c in TRIAL_COLUMNS}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        pcol = "participant" if "participant" in header else "participant_id"
        missing = [c for c in (pcol, "image", "answer") if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {header}")
        for lineno, row in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            if row.get("status", "answered") not in ("answered", "") or not (row["answer"] or "").strip():
                continue
            cols["participant"].append(row[pcol])
            cols["image"].append(row["image"])
            cols["kind"].append((row.get("kind") or "").strip())
            cols["answer"].append(_parse_answer(row["answer"], where))
            cols["rt_ms"].append(_number(row.get("rt_ms"), "rt_ms", where))
            seed = _number(row.get("seed"), "seed", where)
            cols["seed"].append(None if math.isnan(seed) else int(seed))
    fixations = [table.for_image(img).get(p, np.zeros((0, 3))) for img, p in zip(cols["image"], cols["participant"])]
    return HumanTrials(cols["image"], cols["participant"], cols["answer"], cols["rt_ms"], fixations, cols["kind"], cols["seed"])


def _number(text: str | None, column: str, where: str) -> float:
    """A CSV cell as float; empty or missing is NaN."""
    t = (text or "").strip()
    try:
        return float(t) if t else math.nan
    except ValueError:
        raise ValueError(f"{where}: {column} {t!r} is not a number") from None


def write_study_export(trials: HumanTrials, trials_csv: str | os.PathLike, fixations_csv: str | os.PathLike) -> None:
    """Write ``trials`` in the study-export format read by :func:`read_study_export`."""
    path = Path(trials_csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRIAL_COLUMNS)
        for i in range(len(trials)):
            rt = "" if not np.isfinite(trials.rt_ms[i]) else f"{trials.rt_ms[i]:.1f}"
            seed = "" if trials.latent_seed[i] is None else str(trials.latent_seed[i])
            w.writerow([trials.participant[i], trials.image[i], trials.kind[i], f"{trials.answer[i]:g}", rt, seed])
    os.replace(tmp, path)
    table = FixationTable()
    for img, p, fix in zip(trials.image, trials.participant, trials.fixations):
        table.add(img, p, fix)
    write_fixation_table(table, fixations_csv)


def _fixation_array(fix: Any) -> np.ndarray:
    if hasattr(fix, "x") and hasattr(fix, "duration_ms"):
        return np.stack([np.asarray(fix.x), np.asarray(fix.y), np.asarray(fix.duration_ms)], axis=1)
    return np.asarray(fix, dtype=np.float64).reshape(-1, 3)


def _first_attr(obj: Any, names: Sequence[str]) -> Any:
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    raise ValueError(f"trial {obj!r} has none of the fields {list(names)}")


def trials_from_simulated(
    trials: Sequence[Any], names: Sequence[str] | None = None, answer: str = "binary"
) -> HumanTrials:
    """Build :class:`HumanTrials` from simulated-observer trials
    (:class:`gazetune.observers.SimulatedTrial`) or any objects / dicts with the fields
    ``observer_id`` (or ``participant``, ``observer``), ``image_id`` (or ``image``, or an
    ``image_index`` into ``names``), the answer, ``rt_ms``, ``fixations`` ((n, 3) x, y,
    duration_ms, or a record with ``x``, ``y``, ``duration_ms`` arrays) and optionally ``kind``.

    ``answer="binary"`` reads ``answer_real`` (bool) or ``answer`` (0/1 or real/fake);
    ``answer="rating"`` reads the 1-5 ``rating`` (train with ``answer_scale="likert5"``).
    """
    if answer not in ("binary", "rating"):
        raise ValueError(f"answer must be 'binary' or 'rating'; got {answer!r}")
    answer_fields = ("answer_real", "answer") if answer == "binary" else ("rating",)
    rows: dict[str, list] = {k: [] for k in ("image", "participant", "answer", "rt_ms", "fixations", "kind")}
    for t in trials:
        img = _first_attr(t, ("image_id", "image", "image_name", "image_index"))
        if isinstance(img, (int, np.integer)) and names is not None:
            img = names[int(img)]
        rows["image"].append(str(img))
        rows["participant"].append(str(_first_attr(t, ("observer_id", "participant", "observer", "subject"))))
        ans = _first_attr(t, answer_fields)
        rows["answer"].append(_parse_answer(ans, "simulated trial") if isinstance(ans, str) else float(ans))
        rt = _first_attr(t, ("rt_ms",))
        rows["rt_ms"].append(math.nan if rt is None else float(rt))
        rows["fixations"].append(_fixation_array(_first_attr(t, ("fixations",))))
        try:
            rows["kind"].append(str(_first_attr(t, ("kind",))))
        except ValueError:
            rows["kind"].append("")
    return HumanTrials(**rows)


# ============================================================================ config
@dataclass
class HumanTrainConfig:
    """Training of a human-response model.

    Model: ``variant`` (joint | separate), ``width``, ``depth``, ``scanpath_len``,
    ``label_reads_image`` (see :class:`gazetune.human.model.HumanModelConfig`).
    Targets: ``answer_scale`` (binary | likert5), ``gaze_kind`` (heatmap | scanpath; scanpath needs
    the joint variant and ``scanpath_len > 0``), ``sigma_px`` (heatmap Gaussian, pixels),
    ``pool_maps`` (target map of a trial = map pooled over all *training* participants who saw the
    image, ¶58; else the trial's own map), ``max_duration_ms`` (scanpath durations scale).
    Confidence: ``rt_weighting`` (none | inverse, see
    :func:`gazetune.human.losses.rt_confidence_weights`), ``rt_floor``.
    Losses: ``gaze_coef`` (weight of the gaze term, 1 = eq 11), ``cyborg_weight`` (0 = plain CE).
    Optimisation: ``steps``, ``batch_size``, ``lr``, ``flip`` (horizontal-flip augmentation of
    images with their maps), ``seed``, ``device``.
    Split: ``holdout_fraction`` of participants (at least one) held out.
    """

    variant: str = "joint"
    width: int = 16
    depth: int = 2
    scanpath_len: int = 0
    label_reads_image: bool = False
    answer_scale: str = "binary"
    gaze_kind: str = "heatmap"
    sigma_px: float = 2.0
    pool_maps: bool = True
    max_duration_ms: float = 1000.0
    rt_weighting: str = "none"
    rt_floor: float = 0.25
    gaze_coef: float = 1.0
    cyborg_weight: float = 0.0
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    flip: bool = True
    holdout_fraction: float = 0.25
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name, allowed in (("variant", ("joint", "separate")), ("answer_scale", ("binary", "likert5")),
                              ("rt_weighting", ("none", "inverse"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        if self.gaze_kind not in ("heatmap", "scanpath"):
            raise ValueError(f"gaze_kind must be 'heatmap' or 'scanpath'; got {self.gaze_kind!r}")
        if self.gaze_kind == "scanpath" and (self.variant != "joint" or self.scanpath_len < 1):
            raise ValueError("gaze_kind='scanpath' needs variant='joint' and scanpath_len >= 1 "
                             "(M_h-label of the separate variant reads a map)")
        if not 0.0 <= self.cyborg_weight <= 1.0:
            raise ValueError(f"cyborg_weight must be in [0, 1]; got {self.cyborg_weight}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1); got {self.holdout_fraction}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"steps, batch_size and lr must be positive; got {self.steps}, {self.batch_size}, {self.lr}")

    def model_config(self, in_channels: int, image_size: tuple[int, int]) -> HumanModelConfig:
        return HumanModelConfig(
            variant=self.variant, in_channels=in_channels, image_size=image_size, width=self.width,
            depth=self.depth, scanpath_len=self.scanpath_len, label_reads_image=self.label_reads_image,
        )


# ============================================================================ metrics
def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``positive``: P(pos > neg) + 0.5
    P(pos == neg) (Mann-Whitney).  NaN when one class is empty.

    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if pos.all() or not pos.any():
        return math.nan
    return _auc_all_thresholds(s[pos], s[~pos])


def auc_bootstrap_ci(
    scores: np.ndarray, positive: np.ndarray, groups: Sequence[str], n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`auc`, resampling whole ``groups`` (participants) with
    replacement, so trials of one person are not treated as independent."""
    g = np.asarray(groups)
    uniq = np.unique(g)
    rows = [np.flatnonzero(g == u) for u in uniq]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        pick = np.concatenate([rows[i] for i in rng.integers(0, len(uniq), len(uniq))])
        v = auc(scores[pick], positive[pick])
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return (math.nan, math.nan)
    lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _nss_inside(pred: np.ndarray, fixations: np.ndarray) -> float:
    """NSS (:func:`gazetune.saliency.metrics.nss`) at the fixations that fall inside the map."""
    h, w = pred.shape
    x, y = fixations[:, 0], fixations[:, 1]
    inside = (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)
    return nss(pred, fixations[inside, :2]) if inside.any() else math.nan


# ============================================================================ data preparation
def trial_maps(trials: HumanTrials, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Per-trial gaze heatmaps (eq 3) scaled to [0, 1]: float32 (N, H, W)."""
    return np.stack([heatmap(f, shape, sigma_px, normalize="max") for f in trials.fixations]).astype(np.float32)


def pool_by_image(maps: np.ndarray, image_ids: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """For every trial, the map pooled (¶58) over the trials in ``rows`` that show the same image:
    mean of their maps made densities, then scaled to max 1.  Trials whose image has no map among
    ``rows`` keep their own map.  Returns float32 (N, H, W)."""
    ids = np.asarray(image_ids)
    out = maps.copy()
    rowset = np.asarray(rows)
    for img in np.unique(ids):
        src = rowset[ids[rowset] == img]
        dens = [maps[i] / maps[i].sum() for i in src if maps[i].sum() > 0]
        if not dens:
            continue
        pooled = np.mean(dens, axis=0)
        out[ids == img] = pooled / pooled.max()
    return out.astype(np.float32)


def split_participants(participants: Sequence[str], holdout_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic split of the distinct participants into (train, held-out) lists; at least one
    held out when ``holdout_fraction > 0`` and at least one kept for training."""
    uniq = sorted(set(str(p) for p in participants))
    if len(uniq) < 2 and holdout_fraction > 0:
        raise ValueError(f"a split by participant needs >= 2 participants; got {len(uniq)}")
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    k = 0 if holdout_fraction == 0 else min(len(uniq) - 1, max(1, int(round(holdout_fraction * len(uniq)))))
    return sorted(order[k:]), sorted(order[:k])


# ============================================================================ training
@dataclass
class HumanTrainReport:
    """What :func:`train_human_model` measured; ``as_dict()`` is JSON-ready."""

    variant: str
    n_train_trials: int
    n_holdout_trials: int
    train_participants: list[str]
    holdout_participants: list[str]
    holdout: dict[str, float]
    final_losses: dict[str, float]
    seconds: float
    config: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cam_for_answer(cam: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CAM of the class the person chose: +CAM(real) for answers >= 0.5, -CAM(real) otherwise."""
    sign = torch.where(target >= 0.5, 1.0, -1.0).to(cam)
    return cam * sign[:, None, None]


def train_human_model(
    images: np.ndarray | torch.Tensor,
    gaze_maps: np.ndarray | torch.Tensor,
    labels: Sequence[float] | np.ndarray,
    participants: Sequence[str],
    rt_ms: Sequence[float] | np.ndarray | None = None,
    cfg: HumanTrainConfig | None = None,
    *,
    image_ids: Sequence[str] | None = None,
    fixations: Sequence[np.ndarray] | None = None,
    truth: Sequence[str] | None = None,
    progress: bool = False,
) -> tuple[HumanResponseModel | SeparateHumanModel, HumanTrainReport]:
    """Fit a human-response model on trials and evaluate it on held-out participants.

    Parameters
    ----------
    images
        (N, C, H, W) float in [-1, 1], the image shown in each of the N trials.
    gaze_maps
        (N, H, W) per-trial gaze heatmaps in [0, 1] (:func:`trial_maps`).
    labels
        (N,) answers on ``cfg.answer_scale`` (0/1 or 1-5).
    participants
        (N,) participant ids; the split into train / held-out is by participant.
    rt_ms
        (N,) response times in ms (NaN = unknown); used when ``cfg.rt_weighting != "none"``.
    image_ids
        (N,) image names; needed for ``cfg.pool_maps`` (else each trial keeps its own map) and to
        pool the held-out gaze per image for NSS / CC.
    fixations
        (N,) arrays (n, 3) of ``x, y, duration_ms``; needed for scanpath targets and for NSS at
        fixated pixels (without them NSS is the map-weighted mean of the standardised prediction).
    truth
        (N,) ground truth ``"real"`` / ``"synthetic"``, only to report the model's AUC as a fake
        detector (``truth_auc``).

    Returns
    -------
    (model, report)
        The model in eval mode and a :class:`HumanTrainReport` whose ``holdout`` holds
        ``label_auc`` (+ ``label_auc_ci95`` by bootstrap over participants), ``label_accuracy``,
        ``majority_accuracy`` (chance level: always answering the held-out majority),
        ``gaze_nss``, ``gaze_cc`` and, with ``truth``, ``truth_auc``.
    """
    cfg = cfg or HumanTrainConfig()
    t0 = time.time()
    x_all = _as_tensor(images)
    if x_all.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(x_all.shape)}")
    n, c, h, w = x_all.shape
    maps = np.asarray(gaze_maps, dtype=np.float32)
    if maps.shape != (n, h, w):
        raise ValueError(f"gaze_maps must be (N, H, W) = {(n, h, w)}; got {maps.shape}")
    participants = [str(p) for p in participants]
    if len(participants) != n or len(labels) != n:
        raise ValueError(f"labels ({len(labels)}) and participants ({len(participants)}) must have one entry per image ({n})")
    targets = HL.label_targets(labels, cfg.answer_scale)
    rt = np.full(n, np.nan) if rt_ms is None else np.asarray(rt_ms, dtype=np.float64)

    train_p, hold_p = split_participants(participants, cfg.holdout_fraction, cfg.seed)
    is_hold = np.isin(participants, hold_p)
    train_rows, hold_rows = np.flatnonzero(~is_hold), np.flatnonzero(is_hold)
    ids = list(image_ids) if image_ids is not None else [str(i) for i in range(n)]
    gaze_target = pool_by_image(maps, ids, train_rows) if (cfg.pool_maps and image_ids is not None) else maps

    weights = HL.rt_confidence_weights(rt[train_rows], cfg.rt_weighting, floor=cfg.rt_floor)
    w_all = np.ones(n, np.float32)
    w_all[train_rows] = weights

    sp_target = sp_valid = None
    if cfg.gaze_kind == "scanpath":
        if fixations is None:
            raise ValueError("gaze_kind='scanpath' needs the fixations of each trial")
        pairs = [HL.scanpath_target(f, cfg.scanpath_len, (h, w), cfg.max_duration_ms) for f in fixations]
        sp_target = torch.as_tensor(np.stack([p[0] for p in pairs]))
        sp_valid = torch.as_tensor(np.stack([p[1] for p in pairs]))

    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model = build_human_model(cfg.model_config(c, (h, w))).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed)
    y_all = torch.as_tensor(targets)
    g_all = torch.as_tensor(gaze_target)[:, None]
    wt_all = torch.as_tensor(w_all)
    train_idx = torch.as_tensor(train_rows)
    last: dict[str, float] = {}
    steps = range(cfg.steps)
    if progress:
        from rich.progress import track

        steps = track(steps, description=f"human model ({cfg.variant})")
    model.train()
    for _ in steps:
        pick = train_idx[torch.randint(len(train_idx), (min(cfg.batch_size, len(train_idx)),), generator=gen)]
        x, y, g, wt = x_all[pick], y_all[pick], g_all[pick], wt_all[pick]
        if cfg.flip and cfg.gaze_kind == "heatmap":
            flip = torch.rand(len(pick), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            g = torch.where(flip[:, None, None, None], g.flip(-1), g)
        x, y, g, wt = x.to(device), y.to(device), g.to(device), wt.to(device)
        if isinstance(model, SeparateHumanModel):
            out = model.outputs(x, detach_map=True)  # eq 15 trains M_h-label only
        else:
            out = model.outputs(x)
        if cfg.gaze_kind == "heatmap":
            gaze = HL.gaze_loss_eq14(out.gaze_logits, g, "heatmap")
        else:
            gaze = HL.gaze_loss_eq14(out.scanpath, sp_target[pick].to(device), "scanpath", valid=sp_valid[pick].to(device))
        ce = HL.label_loss_eq15(out.label_logit, y, weight=wt)
        label = ce
        parts = {"gaze": float(gaze.detach()), "label_ce": float(ce.detach())}
        if cfg.cyborg_weight > 0:
            label, d = HL.cyborg_loss(_cam_for_answer(out.cam, y), g, ce, cfg.cyborg_weight, sample_weight=wt)
            parts["cyborg_map"] = float(d.detach())
        loss = cfg.gaze_coef * gaze + label  # eq 11 (joint) / eq 14 + eq 15 (separate)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        parts["total"] = float(loss.detach())
        last = parts
    opt.zero_grad(set_to_none=True)
    model.eval()

    holdout: dict[str, Any] = {}
    if len(hold_rows):
        holdout = evaluate_human_model(
            model, x_all[hold_rows], maps[hold_rows], labels=np.asarray(labels, dtype=np.float64)[hold_rows],
            answer_scale=cfg.answer_scale, participants=[participants[i] for i in hold_rows],
            image_ids=[ids[i] for i in hold_rows],
            fixations=None if fixations is None else [fixations[i] for i in hold_rows],
            truth=None if truth is None else [truth[i] for i in hold_rows],
        )
    report = HumanTrainReport(
        variant=cfg.variant, n_train_trials=len(train_rows), n_holdout_trials=len(hold_rows),
        train_participants=train_p, holdout_participants=hold_p, holdout=holdout,
        final_losses=last, seconds=round(time.time() - t0, 2), config=dataclasses.asdict(cfg),
    )
    return model, report


def evaluate_human_model(
    model: HumanResponseModel | SeparateHumanModel,
    images: np.ndarray | torch.Tensor,
    gaze_maps: np.ndarray,
    labels: Sequence[float] | np.ndarray,
    answer_scale: str = "binary",
    participants: Sequence[str] | None = None,
    image_ids: Sequence[str] | None = None,
    fixations: Sequence[np.ndarray] | None = None,
    truth: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score a human model on trials (usually of held-out participants).

    Label: ``label_auc`` of P(real) against the answers (answers above / below the scale's middle;
    answers exactly in the middle of a 1-5 scale are left out), its participant-bootstrap
    ``label_auc_ci95``, ``label_accuracy`` at P = 0.5 and ``majority_accuracy`` (chance).
    Gaze: held-out trials are pooled per image (``image_ids``); ``gaze_cc`` is the mean Pearson
    correlation of the predicted map with the pooled held-out map; ``gaze_nss`` the mean NSS at the
    held-out fixations (map-weighted when ``fixations`` is None).  With ``truth``: ``truth_auc`` of
    P(real) as a detector of real vs synthetic images.
    """
    p_real, pred_maps = predict(model, images)
    t = HL.label_targets(labels, answer_scale)
    keep = t != 0.5
    pos = t[keep] > 0.5
    groups = list(participants) if participants is not None else [str(i) for i in range(len(t))]
    res: dict[str, Any] = {
        "label_auc": auc(p_real[keep], pos),
        "label_auc_ci95": list(auc_bootstrap_ci(p_real[keep], pos, [g for g, k in zip(groups, keep) if k])),
        "label_accuracy": float(np.mean((p_real[keep] > 0.5) == pos)) if keep.any() else math.nan,
        "majority_accuracy": float(max(pos.mean(), 1 - pos.mean())) if keep.any() else math.nan,
        "mean_p_real": float(p_real.mean()),
    }
    ids = np.asarray(list(image_ids) if image_ids is not None else [str(i) for i in range(len(t))])
    nss_values, cc_values = [], []
    for img in np.unique(ids):
        rows = np.flatnonzero(ids == img)
        pooled = pool_by_image(np.asarray(gaze_maps, np.float32)[rows], ["x"] * len(rows), np.arange(len(rows)))[0]
        pred = pred_maps[rows[0]]
        if pooled.max() <= 0:
            continue
        cc_values.append(cc(pred, pooled))
        if fixations is not None:
            fx = np.concatenate([np.asarray(fixations[i]).reshape(-1, 3) for i in rows])
            if len(fx):
                nss_values.append(_nss_inside(pred, fx))
        else:
            z = (pred - pred.mean()) / max(pred.std(), 1e-12)
            nss_values.append(float((z * pooled).sum() / pooled.sum()))
    res["gaze_nss"] = float(np.nanmean(nss_values)) if nss_values else math.nan
    res["gaze_cc"] = float(np.nanmean(cc_values)) if cc_values else math.nan
    if truth is not None:
        real = np.asarray([str(k).lower() == "real" for k in truth])
        res["truth_auc"] = auc(p_real, real)
    return res


def train_from_trials(
    images: np.ndarray | torch.Tensor,
    names: Sequence[str],
    trials: HumanTrials,
    cfg: HumanTrainConfig | None = None,
    progress: bool = False,
) -> tuple[HumanResponseModel | SeparateHumanModel, HumanTrainReport]:
    """:func:`train_human_model` on a trial table.  ``images`` (M, C, H, W) in [-1, 1] with their
    ``names`` (the ``ImageSet``); each trial's image is looked up by name (unknown names are an
    error naming them) and its fixations become the gaze map (``cfg.sigma_px``)."""
    cfg = cfg or HumanTrainConfig()
    index = {str(nm): i for i, nm in enumerate(names)}
    unknown = sorted({im for im in trials.image if im not in index})
    if unknown:
        raise ValueError(f"{len(unknown)} trial image(s) not in the image set, e.g. {unknown[:5]}")
    rows = [index[im] for im in trials.image]
    x = _as_tensor(images)[rows]
    maps = trial_maps(trials, tuple(x.shape[-2:]), cfg.sigma_px)
    return train_human_model(
        x, maps, trials.answer, trials.participant, trials.rt_ms, cfg,
        image_ids=trials.image, fixations=trials.fixations,
        truth=trials.kind if all(trials.kind) else None, progress=progress,
    )
