"""Guided variants: synthetic stimuli changed by gaze guidance, a condition of the study.

With ``guide_model`` in the study config, every synthetic pool the server renders (generator
version 1 at the first start, each version the trainer publishes) gets, for a share
``guide_fraction`` of its images, one more stimulus per direction in ``guide_conditions``: the
plain image changed by :func:`gazetune.guide.guide_image` (a bounded smooth local colour field)
so that the optimised saliency model predicts more (``toward``) or less (``away``) fixation mass
in ``guide_region``.  A researcher can then ask people whether drawing attention to a region (a
known flaw, say) changes how often they see that the image is generated.

What a variant is
-----------------
* kind ``synthetic`` (scoring and blinding are those of any generated image), the plain image's
  ``generator_version`` and ``seed``, ``condition`` ``guided_toward`` or ``guided_away``,
  ``source_stimulus_id`` the plain stimulus, name ``<plain name>_guided_<direction>.png``;
* the same size and PNG encoding as every stimulus, and a random id: nothing a participant
  receives tells a variant from a plain image.

Resolution
----------
Study images are small (64 px by default) and the Inception readout works at its own
``feature_width`` (e.g. 224 px).  The field is therefore *found* on a copy up-sampled to the
model's working width (what :func:`~gazetune.guide.guide_image` does with any image) and then
*applied* to the image at ``image_size``: the field is a coarse grid of smooth parameters, so it
means the same at any resolution, and the variant differs from its plain image only by the
field, not also by a round trip through resampling (which would soften it and give it away).
The plain image is taken from its stored PNG, so the variant starts from exactly the pixels
participants see.

Cost
----
``guide_steps`` forward and backward passes through Inception per variant, at the study's start
or when a version is published (a progress bar and a summary line go to stderr).  A study without
``guide_model`` never imports any of this.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gazetune.images import convert_channels
from gazetune.images.dataset import decode_png
from gazetune.study.config import StudyConfig
from gazetune.study.stimuli import Stimulus, to_png

CONDITION_PREFIX = "guided_"
"""A variant's condition is ``guided_<direction>`` (``guided_toward``, ``guided_away``)."""


def condition_name(direction: str) -> str:
    """``toward`` -> ``guided_toward``, ``away`` -> ``guided_away``."""
    return CONDITION_PREFIX + direction


def chosen_for_guidance(plain: Sequence[Stimulus], fraction: float, seed: int, version: int) -> list[Stimulus]:
    """The plain synthetic stimuli of one version that get variants: ``max(1, round(fraction *
    n))`` of them, drawn without replacement from a random stream of ``(seed, version)`` of its
    own (the participants' plans are untouched), in pool order."""
    if not plain:
        return []
    n = min(len(plain), max(1, int(round(fraction * len(plain)))))
    rng = np.random.default_rng([int(seed), int(version), 1])
    return [plain[i] for i in sorted(rng.choice(len(plain), size=n, replace=False))]


def load_guide_model(path: str):  # noqa: ANN201 (InceptionSaliency; torch is imported here only)
    """The optimised saliency model of ``guide_model``; ``ValueError`` naming the key when it is
    not an Inception readout."""
    from gazetune.saliency.backbone import InceptionSaliency
    from gazetune.saliency.model import load_saliency_model

    model = load_saliency_model(path)
    if not isinstance(model, InceptionSaliency):
        raise ValueError(f"study config: guide_model = {path!r}: is a {type(model).__name__}; guidance needs an "
                         "Inception-readout model (`gazetune saliency train --backbone inception`)")
    return model


def region_mass(model, images: np.ndarray, region: Sequence[float], map_width: int = 80) -> np.ndarray:  # noqa: ANN001
    """Fixation mass the optimised ``model`` predicts inside ``region`` for each of ``images``
    ``(N, C, H, W)`` in [-1, 1] (its softmax density on a ``map_width`` grid); what the model
    believes, not evidence about people."""
    import torch

    from gazetune.guide.core import in_region, map_shape

    x = torch.from_numpy(convert_channels(np.asarray(images, dtype=np.float32), 3))
    size = map_shape(x.shape[-2:], map_width)
    with torch.no_grad():
        density = torch.softmax(model(x, out_size=size).flatten(1), dim=1).view(len(x), *size)
    return np.array([in_region(d, region) for d in density])


def guided_image(image: np.ndarray, model, region: Sequence[float], away: bool, strength: float, steps: int,  # noqa: ANN001
                 seed: int = 0) -> np.ndarray:
    """One variant of ``image`` ``(C, H, W)`` in [-1, 1] (C = 1 or 3): the colour field is found
    on a copy at ``model.feature_width`` and applied at the image's own size (see the module
    docstring); a grey image is guided as RGB and returned grey."""
    import torch

    from gazetune.guide.core import GuideConfig, guide_image

    c = image.shape[0]
    x = torch.from_numpy(convert_channels(np.asarray(image, dtype=np.float32)[None], 3))
    res = guide_image(x, model, GuideConfig(strength=float(strength), away=away, steps=int(steps), seed=int(seed)),
                      region=tuple(float(v) for v in region))
    return convert_channels(res.image.detach().numpy(), c)[0]


def guided_stimuli(plain: Sequence[Stimulus], cfg: StudyConfig, version: int, model=None,  # noqa: ANN001
                   progress: bool = True) -> tuple[list[Stimulus], dict]:
    """The guided variants of the plain synthetic stimuli ``plain`` of generator ``version``.

    Returns the variants (see the module docstring) and a summary ``{"n_images", "conditions":
    {condition: {"n", "mass_before", "mass_after"}}}``: the mean region mass the optimised model
    predicts on the plain and on the guided images as stored (8-bit PNGs).  ``model``: the loaded
    ``guide_model`` (loaded here when not given).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    chosen = chosen_for_guidance([s for s in plain if not s.condition], cfg.guide_fraction, cfg.seed, version)
    if not chosen:
        return [], {"n_images": 0, "conditions": {}}
    model = model if model is not None else load_guide_model(cfg.guide_model)  # type: ignore[arg-type]
    originals = np.stack([decode_png(s.png) for s in chosen])
    before = region_mass(model, originals, cfg.guide_region)
    out: list[Stimulus] = []
    summary: dict = {"n_images": len(chosen), "conditions": {}}
    console = Console(stderr=True)
    label = f"guided variants of version {version}"
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  disable=not progress) as bar:
        task = bar.add_task(label, total=len(chosen) * len(cfg.guide_conditions))
        for direction in cfg.guide_conditions:
            condition = condition_name(direction)
            made = []
            for s, image in zip(chosen, originals):
                png = to_png(guided_image(image, model, cfg.guide_region, direction == "away", cfg.guide_strength,
                                          cfg.guide_steps, cfg.seed))
                stem = s.name[:-4] if s.name.lower().endswith(".png") else s.name
                made.append(Stimulus("synthetic", f"{stem}_{condition}.png", png, s.width, s.height,
                                     s.generator_version, s.seed, condition=condition, source_stimulus_id=s.id))
                bar.advance(task)
            after = region_mass(model, np.stack([decode_png(v.png) for v in made]), cfg.guide_region)
            summary["conditions"][condition] = {"n": len(made), "mass_before": float(before.mean()),
                                                "mass_after": float(after.mean())}
            out += made
    if progress:
        parts = ", ".join(f"{c} {v['mass_before']:.3f} -> {v['mass_after']:.3f}" for c, v in summary["conditions"].items())
        console.print(f"guided variants of version {version}: {len(chosen)} of {len(plain)} images; mean region mass "
                      f"by the optimised model (not evidence): {parts}", soft_wrap=True)
    return out, summary
