"""Losses of the human-response model (patent FIG. 5, eq 11-15) and CYBORG.

One function per equation; every loss is a scalar tensor, differentiable, computed from logits in
the numerically stable ``softplus`` / ``binary_cross_entropy_with_logits`` forms.

Targets
-------
* Label 1 means "the person called the image real" (the trial record of docs/architecture.md).
  :func:`label_targets` maps a binary answer (0 = fake, 1 = real) or a rating on any scale (:class:`gazetune.trials.AnswerScale`,
  e.g. 1-5 with 5 = surely real) to its realness, a soft target in [0, 1] for BCE.
* Gaze as a heatmap: a map in [0, 1] (``normalize="max"`` of :func:`gazetune.gaze.heatmap`), BCE
  per pixel (¶112).  Gaze as a scanpath: a fixed-length ``(K, 3)`` sequence made by
  :func:`scanpath_target`, MSE (¶112).
* Response-time confidence (¶38, ¶58): a slow answer is an unsure one.  :func:`rt_confidence_weights`
  turns response times into per-trial weights for the label term (``"none"`` switches it off).

Weighted means: with per-sample weights ``w``, a loss is ``sum_n w_n l_n / sum_n w_n``, so
weights only change the relative say of the trials, never the loss scale.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from gazetune.images import rgb_to_grey
from gazetune.trials import AnswerScale

RtWeighting = Literal["none", "inverse"]
GazeKind = Literal["heatmap", "scanpath"]


# --------------------------------------------------------------------------- targets and weights
def label_targets(answers: Sequence[float] | np.ndarray, scale: str | AnswerScale = "binary",
                  real_end: str = "high") -> np.ndarray:
    """Human answers -> label targets in [0, 1] (1 = "real"), float32 of shape (N,).

    ``scale`` is an :class:`gazetune.trials.AnswerScale` or its name: ``"binary"`` (0 = fake,
    1 = real), ``"likert5"`` (1-5) or ``"<low>-<high>"``, with ``real_end`` the end that means
    real.  Ratings map linearly to the realness (:meth:`AnswerScale.realness`), e.g. 1-5 with the
    real end high to 0, .25, .5, .75, 1: the same rule by which an answer counts as "called real"
    (realness > 0.5) in :mod:`gazetune.evaluate.human`.  An answer off the scale is an error
    naming it (readers drop and count those before training).

    >>> label_targets([1, 3, 5], "likert5").tolist()
    [0.0, 0.5, 1.0]
    >>> label_targets([1, 7], "1-7", real_end="low").tolist()
    [1.0, 0.0]
    """
    s = scale if isinstance(scale, AnswerScale) else AnswerScale.parse(scale, real_end)  # type: ignore[arg-type]
    a = np.asarray(answers, dtype=np.float64).reshape(-1)
    bad = np.array([not s.contains(float(v)) for v in a], dtype=bool)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"answer {a[k]:g} at index {k} is not on the {s.name} scale"
                         + (" (0 = fake, 1 = real)" if s.binary else f" ({s.low}..{s.high})"))
    return np.asarray(s.realness(a), dtype=np.float32).reshape(-1)


def rt_confidence_weights(
    rt_ms: Sequence[float] | np.ndarray,
    mode: RtWeighting = "inverse",
    reference_ms: float | None = None,
    floor: float = 0.25,
) -> np.ndarray:
    """Per-trial confidence weights from response times (¶38: a slow answer is an unsure one).

    ``mode="none"``: all ones.  ``mode="inverse"``: ``w = clip(reference_ms / rt_ms, floor, 1)``:
    answers at or faster than the reference (default: the median response time) count fully, an
    answer twice as slow counts half, and no answer counts less than ``floor``.  Missing (NaN)
    response times get weight 1.  Returns float32 (N,).

    >>> rt_confidence_weights([500, 1000, 2000, 8000], reference_ms=1000).tolist()
    [1.0, 1.0, 0.5, 0.25]
    """
    rt = np.asarray(rt_ms, dtype=np.float64).reshape(-1)
    if mode == "none":
        return np.ones(rt.shape, dtype=np.float32)
    if mode != "inverse":
        raise ValueError(f"rt weighting must be 'none' or 'inverse'; got {mode!r}")
    if not 0 < floor <= 1:
        raise ValueError(f"floor must be in (0, 1]; got {floor}")
    known = np.isfinite(rt)
    if np.any(rt[known] <= 0):
        raise ValueError(f"response times must be > 0 ms; got {rt[known][rt[known] <= 0][0]}")
    if reference_ms is None:
        reference_ms = float(np.median(rt[known])) if known.any() else 1.0
    if not reference_ms > 0:
        raise ValueError(f"reference_ms must be > 0; got {reference_ms}")
    w = np.ones(rt.shape, dtype=np.float64)
    w[known] = np.clip(reference_ms / rt[known], floor, 1.0)
    return w.astype(np.float32)


def scanpath_target(
    fixations: np.ndarray | Sequence[Sequence[float]],
    length: int,
    shape: tuple[int, int],
    max_duration_ms: float = 1000.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A scanpath as the fixed-length target of the scanpath head (¶112).

    ``fixations`` (n, 3) of ``x, y, duration_ms`` in image pixels, in viewing order.  The first
    ``length`` fixations become rows ``(x / (W - 1), y / (H - 1), min(duration_ms / max_duration_ms, 1))``
    clipped to [0, 1]; missing rows are zero and marked invalid.  Returns ``(target (K, 3) float32,
    valid (K,) bool)``.
    """
    fix = np.asarray(fixations, dtype=np.float64).reshape(-1, 3)[:length]
    h, w = shape
    out = np.zeros((length, 3), dtype=np.float32)
    valid = np.zeros(length, dtype=bool)
    if len(fix):
        scaled = np.stack(
            [fix[:, 0] / max(w - 1, 1), fix[:, 1] / max(h - 1, 1), fix[:, 2] / max_duration_ms], axis=1
        )
        out[: len(fix)] = np.clip(scaled, 0.0, 1.0)
        valid[: len(fix)] = True
    return out, valid


def _weighted_mean(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return per_sample.mean()
    weight = weight.to(per_sample)
    if weight.shape != per_sample.shape:
        raise ValueError(f"weight must have shape {tuple(per_sample.shape)}; got {tuple(weight.shape)}")
    return (per_sample * weight).sum() / weight.sum().clamp_min(1e-12)


# --------------------------------------------------------------------------- eq 14, 15, 11
def gaze_loss_eq14(
    prediction: torch.Tensor,
    target: torch.Tensor,
    kind: GazeKind = "heatmap",
    weight: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq 14, ``L(M_gaze(I_input), HumanGaze)``: the gaze term (also the first term of eq 11).

    ``kind="heatmap"``: ``prediction`` are gaze *logits* (N, 1, H, W), ``target`` a map in [0, 1]
    of the same shape; per-sample loss is the pixel mean of the BCE
    ``softplus(s) - t * s`` (s logit, t target).
    ``kind="scanpath"``: ``prediction`` (N, K, 3) in [0, 1] (scanpath head), ``target`` (N, K, 3)
    from :func:`scanpath_target`; per-sample loss is the mean squared error over the ``valid``
    (N, K) fixations (all when ``valid`` is None).
    ``weight`` (N,) gives the weighted mean over samples (see module docstring).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"gaze prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    target = target.to(prediction)
    if kind == "heatmap":
        per_pixel = F.binary_cross_entropy_with_logits(prediction, target, reduction="none")
        per_sample = per_pixel.flatten(1).mean(1)
    elif kind == "scanpath":
        sq = ((prediction - target) ** 2).mean(-1)  # (N, K)
        mask = torch.ones_like(sq) if valid is None else valid.to(sq)
        per_sample = (sq * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    else:
        raise ValueError(f"gaze kind must be 'heatmap' or 'scanpath'; got {kind!r}")
    return _weighted_mean(per_sample, weight)


def label_loss_eq15(label_logit: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Eq 15, ``l_bce(M_h-label(.), HumanLabel)`` (also the second term of eq 11).

    ``label_logit`` (N,) logits of "a person calls it real", ``target`` (N,) in [0, 1] from
    :func:`label_targets`; BCE ``softplus(s) - t * s`` per sample, (weighted) mean over samples.
    """
    if label_logit.shape != target.shape:
        raise ValueError(f"label logits {tuple(label_logit.shape)} and targets {tuple(target.shape)} differ in shape")
    per_sample = F.binary_cross_entropy_with_logits(label_logit, target.to(label_logit), reduction="none")
    return _weighted_mean(per_sample, weight)


def human_model_loss_eq11(
    label_logit: torch.Tensor,
    gaze_prediction: torch.Tensor,
    label_target: torch.Tensor,
    gaze_target: torch.Tensor,
    kind: GazeKind = "heatmap",
    label_weight: torch.Tensor | None = None,
    gaze_valid: torch.Tensor | None = None,
    gaze_coef: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq 11: ``L(M^dec(I), HumanGaze) + l_bce(M^enc(I), HumanLabel)`` for the joint model.

    The gaze term is :func:`gaze_loss_eq14` (BCE for heatmaps, MSE for scanpaths), scaled by
    ``gaze_coef`` (1 = the equation); the label term is :func:`label_loss_eq15` with the optional
    response-time confidence weights ``label_weight`` (N,).  Returns ``(total, parts)`` with parts
    ``{"gaze": float, "label": float}`` for logging.
    """
    gaze = gaze_loss_eq14(gaze_prediction, gaze_target, kind=kind, valid=gaze_valid)
    label = label_loss_eq15(label_logit, label_target, weight=label_weight)
    return gaze_coef * gaze + label, {"gaze": float(gaze.detach()), "label": float(label.detach())}


# --------------------------------------------------------------------------- eq 12
def generator_human_term_eq12(label_logit: torch.Tensor, reduction: Literal["mean", "sum"] = "mean") -> torch.Tensor:
    """Eq 12, second term: ``-sum_z log M^enc(G(z))`` (or ``M_h-label``, ¶120).

    ``label_logit`` (N,) are the human model's logits on generated images; ``M^enc = sigmoid(s)``
    and ``-log sigmoid(s) = softplus(-s)`` (stable for any ``s``).  ``reduction="sum"`` is the
    equation as written; ``"mean"`` (default) divides by N so the weight does not depend on the
    batch size.

    >>> float(generator_human_term_eq12(torch.zeros(4)))  # -log 0.5
    0.6931471824645996
    """
    per = F.softplus(-label_logit)
    if reduction == "sum":
        return per.sum()
    if reduction == "mean":
        return per.mean()
    raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")


# --------------------------------------------------------------------------- CYBORG
def normalize_map(m: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min-max normalise each map of a batch (N, H, W) or (N, 1, H, W) to [0, 1].

    A constant map becomes all zeros.
    """
    flat = m.flatten(1)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(m)


def cyborg_map_term(cam: torch.Tensor, human_map: torch.Tensor) -> torch.Tensor:
    """Per-sample CYBORG map distance: mean absolute difference of the min-max normalised model
    CAM and human gaze map, shape (N,) in [0, 1].

    ``cam`` (N, H, W) or (N, 1, H, W); ``human_map`` of the same layout (resized bilinearly to the
    CAM's size when it differs).
    """
    cam = cam if cam.ndim == 3 else cam[:, 0]
    hm = human_map if human_map.ndim == 3 else human_map[:, 0]
    hm = hm.to(cam)
    if hm.shape[-2:] != cam.shape[-2:]:
        hm = F.interpolate(hm[:, None], size=cam.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    if hm.shape[0] != cam.shape[0]:
        raise ValueError(f"CAM batch {cam.shape[0]} and human-map batch {hm.shape[0]} differ")
    return (normalize_map(cam) - normalize_map(hm)).abs().flatten(1).mean(1)


def cyborg_loss(
    cam: torch.Tensor,
    human_map: torch.Tensor,
    ce: torch.Tensor,
    weight: float,
    sample_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CYBORG loss (Boyd et al., "CYBORG: Blending Human Saliency into the Loss", WACV 2023).

    ``L = (1 - weight) * ce + weight * D``, with ``ce`` the (already reduced) classification loss
    and ``D`` the (weighted) batch mean of :func:`cyborg_map_term` between the label head's CAM and
    the human gaze map.  ``weight`` in [0, 1]; 0 gives plain cross-entropy.  ``D`` is exactly 0
    when the CAM equals the human map up to a positive affine change.  Returns ``(L, D)``.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"CYBORG weight must be in [0, 1]; got {weight}")
    d = _weighted_mean(cyborg_map_term(cam, human_map), sample_weight)
    return (1.0 - weight) * ce + weight * d, d


# --------------------------------------------------------------------------- eq 12 plug-in
class HumanModelTerm:
    """The human-model term of eq 12 as a self-contained generator-loss plug-in.

    Wraps a trained, frozen human-response model (either variant; for the separate one
    ``M_h-label(M_gaze(.))`` replaces ``M^enc``, ¶120).  ``generator_loss(fake)`` returns
    ``weight * generator_human_term_eq12(label_logit(fake))``; gradients flow through the frozen
    model into the generator only.  The adversarial D keeps its own loss (eq 13): nothing here
    touches it.  Fakes of another size are resized to the model's ``image_size`` (bilinear).

    Calling the object, ``term(fake, batch=None) -> {"eq12_human": weighted loss}``, is the
    ``extra_generator_terms`` hook of :class:`gazetune.tune.train.GazeGANLoss` (logged there as
    ``G/eq12_human``).  ``logged()`` returns the last call's values: ``human/eq12`` (the term
    before weighting), ``human/p_real`` (mean P(real) the model gives the fakes) and
    ``human/weight``.  Grey fakes fed to an RGB model are repeated to 3 channels; RGB fakes fed to
    a grey model are averaged.
    """

    def __init__(self, model: torch.nn.Module, weight: float = 1.0, reduction: Literal["mean", "sum"] = "mean"):
        if weight < 0:
            raise ValueError(f"human-model term weight must be >= 0; got {weight}")
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.weight = float(weight)
        self.reduction = reduction
        self._last: dict[str, float] = {}

    @classmethod
    def load(cls, path, weight: float = 1.0, device: str | torch.device = "cpu") -> "HumanModelTerm":
        """Load a model saved by :func:`gazetune.human.model.save_human_model`."""
        from gazetune.human.model import load_human_model

        return cls(load_human_model(path, map_location=device), weight)

    def generator_loss(self, fake_images: torch.Tensor) -> torch.Tensor:
        """``fake_images`` (N, C, H, W) in [-1, 1] from G(z) -> weighted scalar eq 12 term."""
        dev = next(self.model.parameters()).device
        if dev != fake_images.device:
            self.model.to(fake_images.device)
        x = fake_images
        want = self.model.cfg.in_channels
        if x.ndim == 4 and x.shape[1] != want:
            if x.shape[1] == 1 and want == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] == 3 and want == 1:
                x = rgb_to_grey(x)
        logit = self.model(self.model.prepare(x))[0]
        term = generator_human_term_eq12(logit, self.reduction)
        self._last = {
            "human/eq12": float(term.detach()),
            "human/p_real": float(torch.sigmoid(logit.detach()).mean()),
            "human/weight": self.weight,
        }
        return self.weight * term

    def __call__(self, fake_images: torch.Tensor, batch: dict | None = None) -> dict[str, torch.Tensor]:
        """The ``extra_generator_terms`` hook: ``{"eq12_human": generator_loss(fake_images)}``."""
        return {"eq12_human": self.generator_loss(fake_images)}

    def logged(self) -> dict[str, float]:
        """Values of the last call (see class docstring)."""
        return dict(self._last)
