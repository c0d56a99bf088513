"""Training the human-response model (FIG. 5, ¶105: "auxiliary training phase 532") from study
trials, and evaluating it on held-out participants.

Records
-------
The trials are the project's trial record (:class:`gazetune.trials.TrialTable` of
:class:`gazetune.trials.Trial`; ``HumanTrials`` is its name here): participant, image, the answer
and its realness on the table's :class:`~gazetune.trials.AnswerScale`, response time, truth and,
where gaze was recorded, the fixations.  They come from a **study export or any long table**
(:func:`read_study_export`: a trials CSV plus, optionally, the fixation table CSV whose
``subject`` is the participant), from a live server (:mod:`gazetune.human.live`) or from
**simulated observers** (:func:`trials_from_simulated`).  The label target of a trial is its
realness (1 = surely real; the middle of a rating scale is 0.5), the same rule by which
:mod:`gazetune.evaluate.human` counts an answer as "called real".

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

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from gazetune.gaze.fixation_table import FixationTable, inside_image, read_fixation_table, write_fixation_table
from gazetune.gaze.heatmap import heatmap
from gazetune.human.model import (
    FeatureHumanModel,
    HumanModelConfig,
    HumanResponseModel,
    SeparateHumanModel,
    build_human_model,
)
from gazetune.human.predict import as_tensor as _as_tensor
from gazetune.human.predict import predict
from gazetune.human import losses as HL
from gazetune.saliency.metrics import cc, nss
from gazetune.human.scores import auc, auc_bootstrap_ci, ceilings, judge_scores  # noqa: F401 (auc re-exported)
from gazetune.seeding import seeded
from gazetune.trials import AnswerScale, Trial, TrialTable, from_simulated, read_trials, verdict, write_trials

HumanTrials = TrialTable


# ============================================================================ records
def read_study_export(
    trials_csv: str | os.PathLike,
    fixations_csv: str | os.PathLike | None = None,
    scale: AnswerScale | str | None = None,
    real_end: str = "high",
    image_table: str | os.PathLike | None = None,
    exclude_column: str | None = None,
) -> TrialTable:
    """Read trials (:func:`gazetune.trials.read_trials`: a study export or any long table) and,
    optionally, the fixation table CSV (``image, subject, index, x, y, duration_ms``; ``subject``
    = participant).  Without a fixation table no trial has gaze: the model then learns the label
    head alone.  A trial with no fixation rows in the table gets an empty (0, 3) array."""
    table = read_fixation_table(fixations_csv) if fixations_csv is not None else None
    return read_trials(trials_csv, scale, real_end, image_table=image_table, exclude_column=exclude_column,
                       fixations=table)


def write_study_export(trials: TrialTable, trials_csv: str | os.PathLike, fixations_csv: str | os.PathLike) -> None:
    """Write ``trials`` as a trial-record CSV and a fixation table, read back by :func:`read_study_export`."""
    write_trials(trials, trials_csv, trials.scale)
    table = FixationTable()
    for t in trials:
        if t.fixations is not None:
            table.add(t.image, t.participant, t.fixations)
    write_fixation_table(table, fixations_csv)


def trials_from_simulated(
    trials: Sequence[Any], names: Sequence[str] | None = None, answer: str = "binary"
) -> TrialTable:
    """The trial table of simulated-observer trials.

    ``trials`` are :class:`gazetune.observers.SimulatedTrial` (see
    :func:`gazetune.trials.from_simulated`; ``answer="rating"`` takes the 1-5 rating), or mappings
    with the record's own field names: ``participant``, ``image`` (or ``image_index`` into
    ``names``), ``answer`` (0/1 on the binary scale, 1-5 with ``answer="rating"``), ``rt_ms`` and
    optionally ``fixations`` ((n, 3) x, y, duration_ms), ``kind``, ``generator``, ``latent_seed``.
    """
    if answer not in ("binary", "rating"):
        raise ValueError(f"answer must be 'binary' or 'rating'; got {answer!r}")
    if trials and not isinstance(trials[0], Mapping):
        return from_simulated(trials, answer=answer)  # type: ignore[arg-type]
    scale = AnswerScale(0, 1) if answer == "binary" else AnswerScale(1, 5)
    out = []
    for k, t in enumerate(trials):
        unknown = set(t) - _SIM_KEYS
        if unknown:
            raise ValueError(f"simulated trial {k}: unknown field(s) {sorted(unknown)}; fields are {sorted(_SIM_KEYS)}")
        image = names[int(t["image_index"])] if "image_index" in t and names is not None else t.get("image")
        if image is None:
            raise ValueError(f"simulated trial {k} has no 'image' (or 'image_index' with names)")
        value = float(t["answer"])
        if not scale.contains(value):
            raise ValueError(f"simulated trial {k}: answer {value!r} is not on the {scale.name} scale")
        rt = t.get("rt_ms")
        out.append(Trial(t["participant"], image, t.get("kind", ""), t.get("generator"),
                         rt_ms=math.nan if rt is None else float(rt), realness=scale.realness(value), answer=value,
                         latent_seed=t.get("latent_seed"), fixations=t.get("fixations")))
    return TrialTable(out, scale, source="simulated observers")


_SIM_KEYS = {"participant", "image", "image_index", "answer", "rt_ms", "fixations", "kind", "generator", "latent_seed"}


# ============================================================================ config
@dataclass
class HumanTrainConfig:
    """Training of a human-response model.

    Model: ``variant`` (joint | separate), ``width``, ``depth``, ``scanpath_len``,
    ``label_reads_image``, ``backbone`` (none | inception: frozen pretrained features) and
    ``backbone_size`` (its input width, px); see :class:`gazetune.human.model.HumanModelConfig`.
    Targets: ``answer_scale`` (``binary``, ``likert5`` or ``<low>-<high>``, see
    :class:`gazetune.trials.AnswerScale`) with ``real_end`` (high | low), ``gaze_kind`` (heatmap | scanpath; scanpath needs
    the joint variant and ``scanpath_len > 0``), ``sigma_px`` (heatmap Gaussian, pixels),
    ``pool_maps`` (target map of a trial = map pooled over all *training* participants who saw the
    image, ¶58; else the trial's own map), ``max_duration_ms`` (scanpath durations scale).
    Confidence: ``rt_weighting`` (none | inverse, see
    :func:`gazetune.human.losses.rt_confidence_weights`), ``rt_floor``.
    Losses: ``gaze_coef`` (weight of the gaze term, 1 = eq 11), ``cyborg_weight`` (0 = plain CE).
    Optimisation: ``steps``, ``batch_size``, ``lr``, ``flip`` (horizontal-flip augmentation of
    images with their maps), ``seed``, ``device``.
    Split: ``holdout_fraction`` of participants (at least one) held out and, with
    ``holdout_images > 0``, that fraction of the images too: no trial of a held-out participant or
    on a held-out image is trained on, and the report scores new people on new images.
    """

    variant: str = "joint"
    width: int = 16
    depth: int = 2
    scanpath_len: int = 0
    label_reads_image: bool = False
    backbone: str = "none"
    backbone_size: int = 299
    answer_scale: str = "binary"
    real_end: str = "high"
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
    holdout_images: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.scale()  # a scale that is not understood is an error now
        for name, allowed in (("variant", ("joint", "separate")), ("rt_weighting", ("none", "inverse"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        if self.gaze_kind not in ("heatmap", "scanpath"):
            raise ValueError(f"gaze_kind must be 'heatmap' or 'scanpath'; got {self.gaze_kind!r}")
        if self.gaze_kind == "scanpath" and (self.variant != "joint" or self.scanpath_len < 1):
            raise ValueError("gaze_kind='scanpath' needs variant='joint' and scanpath_len >= 1 "
                             "(M_h-label of the separate variant reads a map)")
        if not 0.0 <= self.cyborg_weight <= 1.0:
            raise ValueError(f"cyborg_weight must be in [0, 1]; got {self.cyborg_weight}")
        for name in ("holdout_fraction", "holdout_images"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"steps, batch_size and lr must be positive; got {self.steps}, {self.batch_size}, {self.lr}")
        self.model_config(1, (2**self.depth, 2**self.depth))  # model settings that do not fit together fail now

    def scale(self) -> AnswerScale:
        """The :class:`~gazetune.trials.AnswerScale` of ``answer_scale`` and ``real_end``."""
        return AnswerScale.parse(self.answer_scale, self.real_end)  # type: ignore[arg-type]

    def model_config(self, in_channels: int, image_size: tuple[int, int]) -> HumanModelConfig:
        return HumanModelConfig(
            variant=self.variant, in_channels=in_channels, image_size=image_size, width=self.width,
            depth=self.depth, scanpath_len=self.scanpath_len, label_reads_image=self.label_reads_image,
            backbone=self.backbone, backbone_size=self.backbone_size,
        )


# ============================================================================ metrics
def _nss_inside(pred: np.ndarray, fixations: np.ndarray) -> float:
    """NSS (:func:`gazetune.saliency.metrics.nss`) at the fixations that fall inside the map."""
    inside = inside_image(fixations, pred.shape)
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
    n_train_with_gaze: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cam_for_answer(cam: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CAM of the class the person chose: +CAM(real) for answers >= 0.5, -CAM(real) otherwise."""
    sign = torch.where(target >= 0.5, 1.0, -1.0).to(cam)
    return cam * sign[:, None, None]


def frozen_features(images: np.ndarray | torch.Tensor, cfg: HumanTrainConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The pretrained backbone's features of ``images`` (M, C, H, W) and of their mirror images,
    once per image (None when ``cfg.backbone`` is ``"none"``)."""
    x = _as_tensor(images)
    model = build_human_model(cfg.model_config(x.shape[1], tuple(x.shape[-2:])))
    return _frozen_features(model, x, cfg.flip, torch.device(cfg.device))


@torch.no_grad()
def _frozen_features(model, x_img: torch.Tensor, flip: bool, device, batch: int = 16):
    """``(features, features of the mirrored images)`` of a :class:`FeatureHumanModel`'s frozen
    backbone for every image (CPU tensors), or None for models trained end to end."""
    if not isinstance(model, FeatureHumanModel):
        return None

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model.features(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)])
    plain = run(x_img)
    return plain, (run(x_img.flip(-1)) if flip else plain)


def split_images(images: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic split of the distinct image ids into (train, held-out); none held out when
    ``fraction == 0``, else at least one, and at least one kept."""
    uniq = sorted(set(str(i) for i in images))
    if fraction == 0:
        return uniq, []
    if len(uniq) < 2:
        raise ValueError(f"an image hold-out needs >= 2 images; got {len(uniq)}")
    order = [uniq[i] for i in np.random.default_rng([seed, 1]).permutation(len(uniq))]
    k = min(len(uniq) - 1, max(1, int(round(fraction * len(uniq)))))
    return sorted(order[k:]), sorted(order[:k])


def train_human_model(
    images: np.ndarray | torch.Tensor,
    gaze_maps: np.ndarray | torch.Tensor | None,
    labels: Sequence[float] | np.ndarray,
    participants: Sequence[str],
    rt_ms: Sequence[float] | np.ndarray | None = None,
    cfg: HumanTrainConfig | None = None,
    *,
    image_ids: Sequence[str] | None = None,
    image_index: Sequence[int] | np.ndarray | None = None,
    has_gaze: Sequence[bool] | np.ndarray | None = None,
    fixations: Sequence[np.ndarray] | None = None,
    truth: Sequence[str] | None = None,
    frozen_features: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = False,
) -> tuple[HumanResponseModel | SeparateHumanModel, HumanTrainReport]:
    """Fit a human-response model on N trials and evaluate it on held-out participants (and,
    with ``cfg.holdout_images``, held-out images).

    The label head trains on every training trial; the gaze head (and the CYBORG term) only on
    those with gaze, so a study without eye tracking still gives a model of the answers.

    Parameters
    ----------
    images
        (N, C, H, W) float in [-1, 1], the image shown in each trial, or (M, C, H, W) distinct
        images with ``image_index`` (N,) saying which one each trial showed.
    gaze_maps
        (N, H, W) per-trial gaze heatmaps in [0, 1] (:func:`trial_maps`), or None when no trial
        has gaze.
    labels
        (N,) answers on ``cfg.answer_scale`` (e.g. 0/1, 1-5, 1-7 with ``cfg.real_end``).
    participants
        (N,) participant ids; the split into train / held-out is by participant.
    rt_ms
        (N,) response times in ms (NaN = unknown); used when ``cfg.rt_weighting != "none"``.
    image_ids
        (N,) image names; needed for ``cfg.pool_maps``, the image hold-out and the per-image
        scores (pooled held-out gaze, Spearman against the mean realness, ceilings).
    has_gaze
        (N,) which trials have gaze; default: those whose map is not all zero.
    fixations
        (N,) arrays (n, 3) of ``x, y, duration_ms``; needed for scanpath targets and for NSS at
        fixated pixels (without them NSS is the map-weighted mean of the standardised prediction).
    truth
        (N,) ground truth ``"real"`` / ``"synthetic"``: the model's AUC as a fake detector
        (``truth_auc``) and the truth baseline.
    frozen_features
        With ``cfg.backbone="inception"``: :func:`frozen_features` of ``images``, computed once for
        several runs on the same images (default: computed here).

    Returns
    -------
    (model, report)
        The model in eval mode and a :class:`HumanTrainReport`; ``holdout`` is
        :func:`evaluate_human_model` on the held-out trials.
    """
    cfg = cfg or HumanTrainConfig()
    t0 = time.time()
    x_img = _as_tensor(images)
    if x_img.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(x_img.shape)}")
    n = len(labels)
    index = np.arange(n) if image_index is None else np.asarray(image_index, dtype=np.int64)
    if len(index) != n or (n and (index.min() < 0 or index.max() >= len(x_img))):
        raise ValueError(f"image_index must give one image of {len(x_img)} per trial ({n})")
    _, c, h, w = x_img.shape
    maps = None if gaze_maps is None else np.asarray(gaze_maps, dtype=np.float32)
    if maps is not None and maps.shape != (n, h, w):
        raise ValueError(f"gaze_maps must be (N, H, W) = {(n, h, w)}; got {maps.shape}")
    participants = [str(p) for p in participants]
    if len(participants) != n:
        raise ValueError(f"labels ({n}) and participants ({len(participants)}) must have one entry per trial")
    if has_gaze is None:
        gz = np.zeros(n, bool) if maps is None else maps.reshape(n, -1).max(1) > 0
    else:
        gz = np.asarray(has_gaze, dtype=bool)
    targets = HL.label_targets(labels, cfg.scale())
    rt = np.full(n, np.nan) if rt_ms is None else np.asarray(rt_ms, dtype=np.float64)

    train_p, hold_p = split_participants(participants, cfg.holdout_fraction, cfg.seed)
    ids = list(image_ids) if image_ids is not None else [str(i) for i in index]
    _, hold_i = split_images(ids, cfg.holdout_images, cfg.seed)
    is_hold_p, is_hold_i = np.isin(participants, hold_p), np.isin(ids, hold_i)
    train_rows = np.flatnonzero(~is_hold_p & ~is_hold_i)
    hold_rows = np.flatnonzero(is_hold_p & (is_hold_i if hold_i else True))
    if not len(train_rows):
        raise ValueError("no training trial is left after the participant and image hold-outs")
    use_gaze = maps is not None and bool(gz[train_rows].any())
    if cfg.gaze_kind == "scanpath" and not use_gaze:
        raise ValueError("gaze_kind='scanpath' needs trials with gaze")
    if use_gaze:
        gaze_target = pool_by_image(maps, ids, train_rows[gz[train_rows]]) if (cfg.pool_maps and image_ids is not None) else maps
        g_all = torch.as_tensor(gaze_target)[:, None]

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

    # the weight initialisation reads torch's global RNG: seeded inside a fork (the caller's RNG is kept)
    with seeded(cfg.seed):
        device = torch.device(cfg.device)
        model = build_human_model(cfg.model_config(c, (h, w))).to(device)
        cached = frozen_features if frozen_features is not None else _frozen_features(model, x_img, cfg.flip, device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        gen = torch.Generator().manual_seed(cfg.seed)
        y_all = torch.as_tensor(targets)
        wt_all = torch.as_tensor(w_all)
        gz_all = torch.as_tensor(gz.astype(np.float32))
        idx_all = torch.as_tensor(index)
        train_idx = torch.as_tensor(train_rows)
        last: dict[str, float] = {}
        steps = range(cfg.steps)
        if progress:
            from rich.progress import track

            steps = track(steps, description=f"human model ({cfg.variant})")
        model.train()
        for _ in steps:
            pick = train_idx[torch.randint(len(train_idx), (min(cfg.batch_size, len(train_idx)),), generator=gen)]
            x, y, wt, gw = x_img[idx_all[pick]], y_all[pick], wt_all[pick], gz_all[pick]
            g = g_all[pick] if use_gaze else None
            if cfg.flip and cfg.gaze_kind == "heatmap":
                flip = torch.rand(len(pick), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                g = None if g is None else torch.where(flip[:, None, None, None], g.flip(-1), g)
            x, y, wt, gw = x.to(device), y.to(device), wt.to(device), gw.to(device)
            if cached is not None:
                f = cached[0][idx_all[pick]].to(device)
                if cfg.flip and cfg.gaze_kind == "heatmap":
                    f = torch.where(flip[:, None, None, None].to(device), cached[1][idx_all[pick]].to(device), f)
                out = model.outputs_from_features(f, (h, w))
            elif isinstance(model, SeparateHumanModel):
                out = model.outputs(x, detach_map=True)  # eq 15 trains M_h-label only
            else:
                out = model.outputs(x, with_gaze=use_gaze)
            ce = HL.label_loss_eq15(out.label_logit, y, weight=wt)
            label = ce
            parts = {"label_ce": float(ce.detach())}
            gaze = torch.zeros((), device=device)
            if use_gaze and float(gw.sum()) > 0:  # eq 14 term only on the trials that have gaze
                gw = None if bool((gw == 1).all()) else gw  # (a plain mean when every trial has gaze)
                if cfg.gaze_kind == "heatmap":
                    gaze = HL.gaze_loss_eq14(out.gaze_logits, g.to(device), "heatmap", weight=gw)
                else:
                    gaze = HL.gaze_loss_eq14(out.scanpath, sp_target[pick].to(device), "scanpath", weight=gw,
                                             valid=sp_valid[pick].to(device))
                if cfg.cyborg_weight > 0:
                    label, d = HL.cyborg_loss(_cam_for_answer(out.cam, y), g.to(device), ce, cfg.cyborg_weight,
                                              sample_weight=wt if gw is None else wt * gw)
                    parts["cyborg_map"] = float(d.detach())
            parts["gaze"] = float(gaze.detach())
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
                model, x_img, None if maps is None else maps[hold_rows],
                labels=np.asarray(labels, dtype=np.float64)[hold_rows], answer_scale=cfg.answer_scale,
                real_end=cfg.real_end, participants=[participants[i] for i in hold_rows],
                image_ids=[ids[i] for i in hold_rows], image_index=index[hold_rows],
                fixations=None if fixations is None else [fixations[i] for i in hold_rows],
                truth=None if truth is None else [truth[i] for i in hold_rows], seed=cfg.seed, frozen_features=cached,
            )
            holdout["held_out_images"] = len(hold_i)
        report = HumanTrainReport(
            variant=cfg.variant, n_train_trials=len(train_rows), n_holdout_trials=len(hold_rows),
            train_participants=train_p, holdout_participants=hold_p, holdout=holdout,
            final_losses=last, seconds=round(time.time() - t0, 2), config=dataclasses.asdict(cfg),
            n_train_with_gaze=int(gz[train_rows].sum()),
        )
        return model, report


def evaluate_human_model(
    model: HumanResponseModel | SeparateHumanModel,
    images: np.ndarray | torch.Tensor,
    gaze_maps: np.ndarray | None,
    labels: Sequence[float] | np.ndarray,
    answer_scale: str = "binary",
    participants: Sequence[str] | None = None,
    image_ids: Sequence[str] | None = None,
    fixations: Sequence[np.ndarray] | None = None,
    truth: Sequence[str] | None = None,
    *,
    real_end: str = "high",
    image_index: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    frozen_features: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Score a human model on trials (usually of held-out participants, perhaps on held-out images).

    ``images`` are per trial, or distinct images with ``image_index`` as in :func:`train_human_model`
    (and ``frozen_features`` their backbone features, so a :class:`FeatureHumanModel` need not
    compute them again).
    Answers: ``label_auc`` of P(real) against the decided answers (the middle of a rating scale is
    left out; :func:`gazetune.trials.verdict`), its participant-bootstrap ``label_auc_ci95``,
    ``label_accuracy`` at P = 0.5, ``majority_accuracy`` (chance), ``image_spearman`` of P(real)
    against the per-image mean realness, and ``ceilings`` on the same trials
    (:func:`gazetune.human.scores.ceilings`: split-half Spearman-Brown, leave-one-out oracle AUC and,
    with ``truth``, the truth baseline).  Gaze (when ``gaze_maps`` is given): held-out trials with
    gaze are pooled per image; ``gaze_cc`` is the mean Pearson correlation of the predicted map with
    the pooled map; ``gaze_nss`` the mean NSS at the fixations (map-weighted when ``fixations`` is
    None); NaN without gaze.  With ``truth``: ``truth_auc`` of P(real) as a detector of real images.
    """
    realness = HL.label_targets(labels, AnswerScale.parse(answer_scale, real_end)).astype(np.float64)  # type: ignore[arg-type]
    n = len(realness)
    index = np.arange(n) if image_index is None else np.asarray(image_index, dtype=np.int64)
    x_img = _as_tensor(images)
    used = np.unique(index)
    if frozen_features is not None and isinstance(model, FeatureHumanModel):
        with torch.no_grad():
            dev = next(model.parameters()).device
            out = model.outputs_from_features(frozen_features[0][torch.as_tensor(used)].to(dev), tuple(x_img.shape[-2:]))
        p_u, maps_u = torch.sigmoid(out.label_logit).cpu().numpy(), torch.sigmoid(out.gaze_logits)[:, 0].cpu().numpy()
    else:
        p_u, maps_u = predict(model, x_img[torch.as_tensor(used)])
    where = np.searchsorted(used, index)
    p_real, pred_maps = p_u[where], maps_u
    decided = np.array([np.nan if v is None else float(v) for v in map(verdict, realness)])
    keep = np.isfinite(decided)
    pos = decided[keep] > 0.5
    groups = list(participants) if participants is not None else [str(i) for i in range(n)]
    ids = np.asarray(list(image_ids) if image_ids is not None else [str(i) for i in index])
    res: dict[str, Any] = {
        "label_auc": auc(p_real[keep], pos),
        "label_auc_ci95": list(auc_bootstrap_ci(p_real[keep], pos, [g for g, k in zip(groups, keep) if k])),
        "label_accuracy": float(np.mean((p_real[keep] > 0.5) == pos)) if keep.any() else math.nan,
        "majority_accuracy": float(max(pos.mean(), 1 - pos.mean())) if keep.any() else math.nan,
        "mean_p_real": float(p_real.mean()),
        "image_spearman": judge_scores(p_real, ids, realness, decided)["image_spearman"],
        "n_images": int(len(np.unique(ids))),
    }
    is_real = None if truth is None else np.asarray([str(k).lower() == "real" for k in truth], dtype=np.float64)
    res["ceilings"] = ceilings(groups, ids, realness, decided, is_real, seed=seed)
    nss_values, cc_values = [], []
    for img in np.unique(ids) if gaze_maps is not None else []:
        rows = np.flatnonzero(ids == img)
        pooled = pool_by_image(np.asarray(gaze_maps, np.float32)[rows], ["x"] * len(rows), np.arange(len(rows)))[0]
        pred = pred_maps[np.searchsorted(used, index[rows[0]])]
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
    if is_real is not None:
        res["truth_auc"] = auc(p_real, is_real > 0.5)
    return res


def train_from_trials(
    images: np.ndarray | torch.Tensor,
    names: Sequence[str],
    trials: TrialTable,
    cfg: HumanTrainConfig | None = None,
    progress: bool = False,
    frozen_features: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[HumanResponseModel | SeparateHumanModel, HumanTrainReport]:
    """:func:`train_human_model` on a trial table.  ``images`` (M, C, H, W) in [-1, 1] with their
    ``names`` (the ``ImageSet``); each trial's image is looked up by name (unknown names are an
    error naming them) and its fixations become the gaze map (``cfg.sigma_px``).  The answers are
    read on the table's own scale (``cfg.answer_scale`` and ``cfg.real_end`` are set from it)."""
    cfg = cfg or HumanTrainConfig()
    if isinstance(trials, TrialTable):
        cfg = dataclasses.replace(cfg, answer_scale=trials.scale.name, real_end=trials.scale.real_end)
    index = {str(nm): i for i, nm in enumerate(names)}
    unknown = sorted({im for im in trials.image if im not in index})
    if unknown:
        raise ValueError(f"{len(unknown)} trial image(s) not in the image set, e.g. {unknown[:5]}")
    rows = np.array([index[im] for im in trials.image], dtype=np.int64)
    x = _as_tensor(images)
    has_gaze = trials.has_gaze
    maps = trial_maps(trials, tuple(x.shape[-2:]), cfg.sigma_px) if has_gaze.any() else None
    return train_human_model(
        x, maps, trials.answer, trials.participant, trials.rt_ms, cfg,
        image_ids=trials.image, image_index=rows, has_gaze=has_gaze, fixations=trials.fixations,
        truth=trials.kind if all(trials.kind) else None, frozen_features=frozen_features, progress=progress,
    )
