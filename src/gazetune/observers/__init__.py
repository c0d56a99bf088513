"""Simulated observers: a test instrument, not a model of people.

They stand in for participants of the blinded real-vs-synthetic study (patent ¶29-38, ¶51-58) in
the demo, in tests and in benchmarks, where the truth must be known: every simulated trial keeps
the true fixations behind its noisy gaze samples, and answers follow documented rules.

- :class:`PatchRealismCritic` gives each pixel a realism in [0, 1] from local image statistics of
  real images.
- :class:`SimulatedObserver` looks at an image (centre bias + content saliency, gamma fixation
  durations, main-sequence saccades, tracker noise and track loss at 60 Hz) and answers "real"
  with probability ``sigmoid(gain * (realism where it looked - threshold))``, slower when unsure.
- :class:`ObserverPanel` draws a group of observers from a seed (:meth:`ObserverPanel.lab`,
  :meth:`ObserverPanel.webcam`); :func:`run_panel` runs a blinded random mix of items.

Everything is deterministic from seeds.  Conclusions about people must come from people.
"""

from gazetune.observers.critic import PatchRealismCritic
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
    "ObserverPanel",
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
