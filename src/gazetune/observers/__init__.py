"""Simulated observers: a test instrument, not a model of people.

They stand in for participants of the blinded real-vs-synthetic study (patent ¶29-38, ¶51-58) in
the demo, in tests and in benchmarks, where the truth must be known: every simulated trial keeps
the true fixations behind its noisy gaze samples, and answers follow documented rules.

- :class:`RealismJudge` (the default judge) gives each pixel a realism in [0, 1]: the minimum of
  a read-out of pretrained Inception features learnt on real against generated images
  (:class:`FeatureRealismJudge`) and of local image statistics of real images
  (:class:`PatchRealismCritic`); :func:`calibrate_threshold` sets the observers' threshold from
  held-out real images only.
- :class:`SimulatedObserver` looks at an image (centre bias + content saliency, gamma fixation
  durations, main-sequence saccades, tracker noise and track loss at 60 Hz) and answers "real"
  with probability ``sigmoid(gain * (realism where it looked - threshold))``, slower when unsure;
  with ``beta > 0`` it also looks where the image looks wrong to its judge.
- :class:`ObserverPanel` draws a group of observers from a seed (:meth:`ObserverPanel.lab`,
  :meth:`ObserverPanel.webcam`); :func:`run_panel` runs a blinded random mix of items.

Everything is deterministic from seeds.  Conclusions about people must come from people.
"""

from gazetune.observers.critic import PatchRealismCritic
from gazetune.observers.judge import FeatureRealismJudge, RealismJudge, calibrate_threshold
from gazetune.observers.panel import (
    ObserverPanel,
    PanelItem,
    SimulatedObserver,
    SimulatedTrial,
    as_item,
    make_items,
    run_panel,
)
from gazetune.observers.viewing import (
    centre_bias,
    content_saliency,
    eye_position,
    priority_map,
    render_samples,
    sample_scanpath,
    track_loss_mask,
)

__all__ = [
    "FeatureRealismJudge",
    "ObserverPanel",
    "RealismJudge",
    "calibrate_threshold",
    "PanelItem",
    "PatchRealismCritic",
    "SimulatedObserver",
    "SimulatedTrial",
    "as_item",
    "centre_bias",
    "content_saliency",
    "eye_position",
    "make_items",
    "priority_map",
    "render_samples",
    "run_panel",
    "sample_scanpath",
    "track_loss_mask",
]
