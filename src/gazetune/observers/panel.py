"""Simulated observers and panels: a blinded real-vs-synthetic study without people.

How one simulated observer answers (patent ¶29-38: answer, reaction time and gaze per image):

1. It looks at the image (:mod:`gazetune.observers.viewing`): a scanpath drawn from centre bias
   and image content, recorded by a simulated tracker.
2. Its **realism score** is what lies where it looked: the realism map (e.g. of a
   :class:`~gazetune.observers.critic.PatchRealismCritic`) weighted by a duration-weighted
   Gaussian of ``fovea_deg`` around every true fixation (:func:`gazetune.gaze.heatmap.heatmap`
   with ``normalize="sum"``).  Defects nobody looks at do not count.
3. Its decision variable is ``e = gain * (score - threshold) + L`` with ``L`` standard logistic
   noise, so ``P(answer "real") = sigmoid(gain * (score - threshold))``; threshold and gain are
   the observer's own.  The 1-5 rating (5 = surely real) cuts ``e`` at -2.5, -0.75, 0.75, 2.5,
   so ratings 4-5 always come with "real" and 1-2 with "fake".
4. **Reaction time** from image onset: ``rt_base_ms * (1 + rt_uncertainty * (1 - |2p - 1|))``
   times lognormal noise (sd ``rt_sigma`` in log units): slowest when unsure (``p`` near 0.5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator, Literal, Optional, Sequence, Union

import numpy as np

from gazetune.gaze.heatmap import heatmap
from gazetune.gaze.samples import GazeSamples
from gazetune.gaze.fixations import Fixations
from gazetune.gaze.geometry import ScreenGeometry
from gazetune.observers.viewing import priority_map, render_samples, sample_scanpath

Kind = Literal["real", "synthetic"]
RATING_CUTS = (-2.5, -0.75, 0.75, 2.5)
RngLike = Union[None, int, Sequence[int], np.random.Generator]


def _rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _sigmoid(v: float) -> float:
    return float(1.0 / (1.0 + np.exp(-v)))


@dataclass
class SimulatedTrial:
    """One simulated trial (docs/architecture.md "Trial").

    Attributes
    ----------
    observer_id, image_id : str
    kind : {"real", "synthetic"}
        The truth, hidden from the observer.
    latent_seed : int or None
        Latent seed of a synthetic image (:func:`gazetune.nets.latent.latent_from_seed`).
    order : int
        Position of the image in this observer's sequence (0 = first).
    answer_real : bool
        The binary answer: True = "real".
    rating : int
        1-5, 5 = surely real, 3 = unsure.
    rt_ms : float
        Reaction time from image onset, ms.
    p_real : float
        The observer's probability of answering "real" on this trial.
    realism_score : float
        Duration- and fovea-weighted realism where it looked, in [0, 1].
    samples : GazeSamples
        Tracker samples (source ``"simulated"``), image pixels; ``image_rect`` places the image
        centred on the default :class:`~gazetune.gaze.geometry.ScreenGeometry` at the observer's
        pixels per degree, so :func:`gazetune.gaze.fixations.detect_fixations` works on them.
    fixations : Fixations
        The true fixations (``x, y, duration_ms, onset_ms`` from image onset), for tests.
    display_ms : float
        How long the image was shown.
    """

    observer_id: str
    image_id: str
    kind: Kind
    latent_seed: Optional[int]
    order: int
    answer_real: bool
    rating: int
    rt_ms: float
    p_real: float
    realism_score: float
    samples: GazeSamples
    fixations: Fixations
    display_ms: float

    @property
    def answer(self) -> str:
        """``"real"`` or ``"fake"``."""
        return "real" if self.answer_real else "fake"

    @property
    def correct(self) -> bool:
        """Whether the answer matches the truth."""
        return self.answer_real == (self.kind == "real")

    def summary(self) -> dict[str, Any]:
        """Scalar fields only (for tables and CSV)."""
        keys = ("observer_id", "image_id", "kind", "latent_seed", "order", "answer_real", "rating", "rt_ms", "p_real", "realism_score")
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True)
class SimulatedObserver:
    """One simulated participant; :meth:`view` is one trial.

    Parameters
    ----------
    observer_id : str
    noise_deg : float
        Tracker noise sd per axis, degrees (0.5 lab tracker, 3-4 webcam).
    track_loss_rate : float
        Share of samples lost (NaN runs), in [0, 1).
    px_per_deg : float or None
        Image pixels per degree.  ``None``: the image's width spans ``image_deg`` degrees.
    image_deg : float
        Visual angle of the image width when ``px_per_deg`` is None (default 10 deg).
    rate_hz : float
        Tracker sampling rate (default 60 Hz).
    threshold, gain : float
        Of ``P(real) = sigmoid(gain * (score - threshold))``.
    rt_base_ms, rt_sigma, rt_uncertainty : float
        Reaction-time model (module docstring).
    centre_weight : float
        Share of the centre bias in the priority map.
    fixation_ms_mean : float
        Mean fixation duration, ms.
    fovea_deg : float
        sd of the Gaussian read of the realism map around a fixation, degrees.
    offset_deg : tuple of float
        Constant calibration error ``(dx, dy)`` of this observer's tracker, degrees.
    beta : float
        How strongly the observer looks where the image looks wrong to it while judging
        (``suspicion = (1 - realism_map) ** suspicion_power``,
        :func:`~gazetune.observers.viewing.priority_map`);
        0 = free viewing of content and centre (the default).
    suspicion_power : float
        The suspicion map is ``(1 - realism_map) ** suspicion_power`` (default 4): sharpened, so
        a clearly wrong region draws the eye rather than the mild doubts spread over a whole image.
    prior_weight : float
        Weight of a fixation prior passed to :meth:`view` (``prior=``), in [0, 1].
    """

    observer_id: str
    noise_deg: float = 0.5
    track_loss_rate: float = 0.02
    px_per_deg: Optional[float] = None
    image_deg: float = 10.0
    rate_hz: float = 60.0
    threshold: float = 0.6
    gain: float = 15.0
    rt_base_ms: float = 1200.0
    rt_sigma: float = 0.2
    rt_uncertainty: float = 1.0
    centre_weight: float = 0.3
    fixation_ms_mean: float = 250.0
    fovea_deg: float = 1.0
    offset_deg: tuple[float, float] = (0.0, 0.0)
    beta: float = 0.0
    suspicion_power: float = 4.0
    prior_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.noise_deg < 0 or not 0.0 <= self.track_loss_rate < 1.0:
            raise ValueError(
                f"observer {self.observer_id}: noise_deg must be >= 0 and track_loss_rate in [0, 1); "
                f"got {self.noise_deg}, {self.track_loss_rate}"
            )
        if (self.px_per_deg is not None and not self.px_per_deg > 0) or not self.image_deg > 0 or not self.rate_hz > 0:
            raise ValueError(
                f"observer {self.observer_id}: px_per_deg, image_deg and rate_hz must be > 0; got "
                f"{self.px_per_deg}, {self.image_deg}, {self.rate_hz}"
            )

    def pixels_per_degree(self, width: int) -> float:
        """Image pixels per degree for an image ``width`` pixels wide."""
        return float(self.px_per_deg) if self.px_per_deg is not None else width / self.image_deg

    def view(
        self,
        image: np.ndarray,
        realism_map: np.ndarray,
        rng: RngLike = None,
        display_ms: float = 3000.0,
        image_id: str = "",
        kind: Kind = "real",
        latent_seed: Optional[int] = None,
        order: int = 0,
        prior: Optional[np.ndarray] = None,
    ) -> SimulatedTrial:
        """Look at one image and judge it.

        Parameters
        ----------
        image
            ``(C, H, W)`` in [-1, 1] (numpy or torch).
        realism_map
            ``(H, W)`` in [0, 1]: how real each place looks (e.g. ``critic.realism_map(image)``).
        rng
            Generator or seed; the same seed gives the same trial.
        display_ms
            How long the image is shown (gaze is recorded for that long), ms.
        image_id, kind, latent_seed, order
            Bookkeeping copied into the trial; the observer never reads ``kind``.
        prior
            ``(H, W)`` non-negative fixation prior mixed in with weight ``prior_weight``
            (e.g. pooled real fixations on faces); ``None`` = none.
        """
        if hasattr(image, "detach"):
            image = image.detach().cpu().numpy()
        img = np.asarray(image, dtype=np.float32)
        rmap = np.asarray(realism_map, dtype=np.float64)
        if img.ndim != 3:
            raise ValueError(f"observer {self.observer_id}: image must be (C, H, W); got shape {img.shape}")
        if rmap.shape != img.shape[1:]:
            raise ValueError(f"observer {self.observer_id}: realism_map shape {rmap.shape} != image size {img.shape[1:]}")
        if not display_ms > 0:
            raise ValueError(f"display_ms must be > 0; got {display_ms}")
        g = _rng(rng)
        h, w = img.shape[1:]
        ppd = self.pixels_per_degree(w)
        priority = priority_map(img, ppd, self.centre_weight, prior=prior, prior_weight=self.prior_weight if prior is not None else 0.0,
                                suspicion=(1.0 - rmap) ** self.suspicion_power if self.beta > 0 else None, beta=self.beta)
        scan = sample_scanpath(priority, g, ppd, display_ms, fixation_ms_mean=self.fixation_ms_mean)
        screen = ScreenGeometry()  # the default screen: the image shown centred at ppd px per degree
        rect = screen.centered_rect((w / ppd * screen.px_per_deg, h / ppd * screen.px_per_deg))
        samples = render_samples(
            scan, (w, h), g, ppd, display_ms, self.rate_hz, self.noise_deg, self.track_loss_rate, self.offset_deg, rect
        )
        weights = heatmap(scan.as_array(), (h, w), sigma=max(self.fovea_deg * ppd, 0.5), normalize="sum")
        score = float(np.clip((weights * rmap).sum(), 0.0, 1.0))
        drive = self.gain * (score - self.threshold)
        p = _sigmoid(drive)
        u = float(g.uniform(1e-12, 1.0 - 1e-12))
        evidence = drive + float(np.log(u / (1.0 - u)))  # + standard logistic noise
        rating = 1 + int(np.searchsorted(RATING_CUTS, evidence))
        rt = self.rt_base_ms * (1.0 + self.rt_uncertainty * (1.0 - abs(2.0 * p - 1.0))) * float(np.exp(g.normal(0.0, self.rt_sigma)))
        samples.meta.update(observer=self.observer_id, image=image_id)
        return SimulatedTrial(
            observer_id=self.observer_id,
            image_id=image_id,
            kind=kind,
            latent_seed=latent_seed,
            order=int(order),
            answer_real=bool(evidence > 0),
            rating=rating,
            rt_ms=float(rt),
            p_real=p,
            realism_score=score,
            samples=samples,
            fixations=scan,
            display_ms=float(display_ms),
        )


@dataclass
class ObserverPanel:
    """A group of simulated observers whose individual parameters are drawn from a seed.

    Parameters
    ----------
    n_observers : int
    seed : int
        Same seed, same observers.  Observers are named ``sim<seed>-<index>`` (``sim0-003``), so
        panels drawn from different seeds never share a participant id.
    noise_deg : float
        Tracker noise sd, degrees: 0.5 for a lab tracker (:meth:`lab`), 3-4 for a webcam
        (:meth:`webcam`).
    px_per_deg : float or None
        Image pixels per degree; ``None`` lets the image width span ``image_deg`` degrees
        (10 by default, see :class:`SimulatedObserver`).
    track_loss_rate : float
        Share of lost samples, [0, 1).
    threshold_sd : float
        sd of the observers' realism thresholds around the template's ``threshold``.
    gain_log_sd, rt_log_sd : float
        sd in log units of the observers' gains and base reaction times around the template's.
    offset_deg_sd : float
        sd of each observer's constant calibration error, degrees (0 = none).
    observer : dict
        Any other :class:`SimulatedObserver` parameter shared by all (``image_deg``, ``rate_hz``,
        ``threshold``, ``gain``, ``rt_base_ms``, ...): the template the individuals vary around.
    """

    n_observers: int
    seed: int = 0
    noise_deg: float = 0.5
    px_per_deg: Optional[float] = None
    track_loss_rate: float = 0.02
    threshold_sd: float = 0.04
    gain_log_sd: float = 0.25
    rt_log_sd: float = 0.2
    offset_deg_sd: float = 0.0
    observer: dict = field(default_factory=dict)
    observers: list[SimulatedObserver] = field(init=False)

    def __post_init__(self) -> None:
        if int(self.n_observers) != self.n_observers or self.n_observers < 1:
            raise ValueError(f"ObserverPanel: n_observers must be a positive integer; got {self.n_observers}")
        template = SimulatedObserver(
            "template", noise_deg=self.noise_deg, track_loss_rate=self.track_loss_rate, px_per_deg=self.px_per_deg,
            **self.observer,
        )
        g = np.random.default_rng([int(self.seed), 0x0B5E])
        self.observers = []
        for i in range(int(self.n_observers)):
            self.observers.append(
                replace(
                    template,
                    observer_id=f"sim{int(self.seed)}-{i:03d}",
                    threshold=float(g.normal(template.threshold, self.threshold_sd)),
                    gain=float(template.gain * np.exp(g.normal(0.0, self.gain_log_sd))),
                    rt_base_ms=float(template.rt_base_ms * np.exp(g.normal(0.0, self.rt_log_sd))),
                    offset_deg=(float(g.normal(0, self.offset_deg_sd)), float(g.normal(0, self.offset_deg_sd))),
                )
            )

    @classmethod
    def lab(cls, n_observers: int, seed: int = 0, **kw: Any) -> "ObserverPanel":
        """Lab eye tracker: 0.5 deg noise, 2 % track loss."""
        return cls(n_observers, seed, **{"noise_deg": 0.5, "track_loss_rate": 0.02, **kw})

    @classmethod
    def webcam(cls, n_observers: int, seed: int = 0, **kw: Any) -> "ObserverPanel":
        """Webcam gaze: 3.5 deg noise, 10 % track loss, 1 deg calibration offsets."""
        return cls(n_observers, seed, **{"noise_deg": 3.5, "track_loss_rate": 0.10, "offset_deg_sd": 1.0, **kw})

    def __len__(self) -> int:
        return len(self.observers)

    def __iter__(self) -> Iterator[SimulatedObserver]:
        return iter(self.observers)

    def __getitem__(self, i: int) -> SimulatedObserver:
        return self.observers[i]

    def describe(self) -> list[dict[str, Any]]:
        """Each observer's parameters as a dict."""
        return [asdict(o) for o in self.observers]


@dataclass(frozen=True)
class PanelItem:
    """One stimulus of a study: ``image`` (C, H, W) in [-1, 1], its truth and its identity."""

    image: np.ndarray
    kind: Kind
    image_id: str
    latent_seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.kind not in ("real", "synthetic"):
            raise ValueError(f"item {self.image_id!r}: kind must be 'real' or 'synthetic'; got {self.kind!r}")


def as_item(item: Any) -> PanelItem:
    """A :class:`PanelItem` from an item or a tuple ``(image, kind, image_id_or_latent_seed)``.

    An integer third element of a synthetic item is its latent seed; its id becomes
    ``"seed{n:06d}"``.
    """
    if isinstance(item, PanelItem):
        return item
    if not isinstance(item, (tuple, list)) or len(item) != 3:
        raise ValueError(f"a panel item is a PanelItem or (image, kind, id or latent seed); got {type(item).__name__}")
    image, kind, ident = item
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image, dtype=np.float32)
    if isinstance(ident, (int, np.integer)) and not isinstance(ident, bool):
        return PanelItem(image, kind, f"seed{int(ident):06d}" if kind == "synthetic" else str(int(ident)),
                         int(ident) if kind == "synthetic" else None)
    return PanelItem(image, kind, str(ident))


def make_items(real: Any, synthetic: Any, latent_seeds: Optional[Sequence[int]] = None) -> list[PanelItem]:
    """Items from a real ``ImageSet`` and synthetic images ``(M, C, H, W)`` (or an ``ImageSet``).

    Synthetic ids are ``"seed{n:06d}"`` when ``latent_seeds`` are given, else their names (for an
    ``ImageSet``) or ``"synthetic{i:05d}"``.
    """
    items = [PanelItem(real.images[i], "real", real.names[i]) for i in range(len(real))]
    syn = synthetic.images if hasattr(synthetic, "names") else synthetic
    if hasattr(syn, "detach"):
        syn = syn.detach().cpu().numpy()
    syn = np.asarray(syn, dtype=np.float32)
    if latent_seeds is not None and len(latent_seeds) != len(syn):
        raise ValueError(f"make_items: {len(latent_seeds)} latent seeds for {len(syn)} synthetic images")
    for i in range(len(syn)):
        if latent_seeds is not None:
            items.append(PanelItem(syn[i], "synthetic", f"seed{int(latent_seeds[i]):06d}", int(latent_seeds[i])))
        else:
            name = synthetic.names[i] if hasattr(synthetic, "names") else f"synthetic{i:05d}"
            items.append(PanelItem(syn[i], "synthetic", name))
    return items


def run_panel(
    panel: ObserverPanel,
    items: Sequence[Any],
    critic: Any = None,
    seed: int = 0,
    display_ms: float = 3000.0,
    realism_maps: Optional[np.ndarray] = None,
    prior: Optional[np.ndarray] = None,
) -> list[SimulatedTrial]:
    """Every observer judges every item, each in its own random order (a blinded mix).

    Parameters
    ----------
    panel
        The observers.
    items
        :class:`PanelItem` or tuples ``(image, kind, image_id_or_latent_seed)``; all images of one
        size.
    critic
        Anything with ``realism_maps((N, C, H, W)) -> (N, H, W)``, e.g. a fitted
        :class:`~gazetune.observers.critic.PatchRealismCritic`; not needed when ``realism_maps``
        is given.
    seed
        Seed of the orders and of every trial: trial ``(observer o, item i)`` uses the generator
        seeded ``(seed, o, i)``, so results do not depend on order of evaluation.
    display_ms
        How long each image is shown, ms.
    realism_maps
        Precomputed ``(N, H, W)`` maps in [0, 1], one per item.
    prior
        ``(H, W)`` fixation prior shared by all items (used with each observer's
        ``prior_weight``), or ``None``.

    Returns
    -------
    list of SimulatedTrial
        Observer by observer, in each observer's presentation order.
    """
    its = [as_item(it) for it in items]
    if not its:
        return []
    shapes = {it.image.shape for it in its}
    if len(shapes) != 1:
        raise ValueError(f"run_panel: items must share one image shape; got {sorted(shapes)}")
    if realism_maps is None:
        if critic is None:
            raise ValueError("run_panel: give a critic or precomputed realism_maps")
        realism_maps = critic.realism_maps(np.stack([it.image for it in its]))
    realism_maps = np.asarray(realism_maps)
    if realism_maps.shape != (len(its),) + its[0].image.shape[1:]:
        raise ValueError(f"run_panel: realism_maps shape {realism_maps.shape}, expected {(len(its),) + its[0].image.shape[1:]}")
    trials = []
    for o, obs in enumerate(panel):
        order = np.random.default_rng([int(seed), o]).permutation(len(its))
        for pos, i in enumerate(order):
            it = its[int(i)]
            trials.append(
                obs.view(it.image, realism_maps[i], rng=[int(seed), o, int(i), 1], display_ms=display_ms,
                         image_id=it.image_id, kind=it.kind, latent_seed=it.latent_seed, order=pos, prior=prior)
            )
    return trials
