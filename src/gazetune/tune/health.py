"""Training health: does D separate real from fake, and is the game still being played?

A GAN whose discriminator says nothing looks, in its loss curves, much like one that trains: the
image loss of eq 2 sits at ``2 ln 2 = 1.386`` and eq 1 at ``ln 2 = 0.693``, and nothing else moves.
This module measures the separation on every ``Dmain`` batch and warns when it stays at chance
(D says nothing, G learns nothing) or at certainty (D wins outright, G's gradient carries little
about what to change) for a whole window of steps.

Figures (logged by :mod:`gazetune.tune.train` as ``health/...``):

- ``acc_real``, ``acc_fake``: share of the real (fake) batch with an image logit above (below)
  zero, i.e. what D would answer at ``D(x) = 0.5``; a logit of exactly 0 counts half.
- ``logit_gap``: mean image logit of the real batch minus that of the fake batch (0 when D gives
  every image the same score, whatever that score is).
- ``logit_spread``: pooled within-class standard deviation of the image logits,
  ``sqrt((var(real) + var(fake)) / 2)`` (logit units).  A dead discriminator gives every image
  nearly the same logit (the core issue's D: 0.0046 +- 0.0005), so its spread is near 0; a
  discriminator in a balanced game still scores images differently (0.1-0.2 for the width-32
  default on faces64 at accuracy 0.54-0.57; 0.14 for an untrained, responsive one) even when
  real and fake get the same mean.  Under torchrun each rank measures its slice of the batch
  and the log holds the mean over the ranks.
- ``d_step_gain``: what D's own step bought on the batch it was trained on: the image loss of
  eq 2 on (up to 16 of each of) that batch's augmented real and fake images before the optimiser
  step minus the same loss on the very same inputs after it (every ``health_probe_every``-th
  step and every logged step).  A
  discriminator that learns gets a positive gain step after step, also when the game holds its
  accuracy at 0.5; one whose step changes nothing (learning rate 0, frozen weights) gets exactly
  0; a dead one whose answer does not depend on its input gets about 0.
- ``sample_diversity``: how much the generated batch varies, relative to the real batch: the
  per-pixel standard deviation across the fake batch, averaged over pixels and channels, over
  the same figure of the real batch (:func:`sample_diversity`; before augmentation).  Near 1 for
  a generator whose samples differ as much as real images do (0.5-0.8 for the width-32 default
  on faces64 at 32 px after step 60; 0.4-0.6 untrained), near 0 for one that has collapsed onto
  a single image (0.02-0.07 for the plain convolutional reference at 64 px from step 90 on,
  while its D scored 0.91-0.95 and the accuracy and gap rules saw nothing wrong).  Under
  torchrun it is measured per rank, on the rank's slice, and averaged like the spread.
- ``grad_D``, ``grad_G``: L2 norm of the gradient over all parameters of the network, before the
  optimiser step.

Accuracy and gap alone cannot tell a dead discriminator from a balanced one: the width-32 default
on faces64 sat at accuracy 0.53, gap +0.025 over steps 601-1200 while its KID fell by half.  So
:class:`HealthMonitor` calls D "at chance" (and warns) only when, besides, it scores every image
alike (spread below ``dead_spread``) or its own steps do not improve its answer (``d_step_gain``
not clearly above 0 over the window).  A discriminator whose steps change nothing at all (gain
below ``frozen_gain`` over the window) is reported as frozen whatever its accuracy.  At chance on
accuracy and gap but responsive and learning is the state ``"balanced"``: counted in the summary,
not a warning.  A generator whose samples all look alike (``sample_diversity`` below
``collapse_diversity`` over the window) is reported as collapsed (``g_collapsed``), whatever D does.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

LN4 = 2.0 * math.log(2.0)  # eq 2 of a discriminator that answers 0.5 for everything


def d_separation(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> dict[str, float]:
    """D's separation of one batch from its image logits (``(N_real,)``, ``(N_fake,)``).

    Returns ``{"health/acc_real", "health/acc_fake", "health/logit_gap", "health/logit_spread"}``
    (see the module docstring; the variances are population variances, 0 for a batch of one).

    Examples
    --------
    >>> s = d_separation(torch.tensor([1.0, -1.0, 2.0]), torch.tensor([-2.0, 0.5]))
    >>> {k: round(v, 4) for k, v in s.items()}
    {'health/acc_real': 0.6667, 'health/acc_fake': 0.5, 'health/logit_gap': 1.4167, 'health/logit_spread': 1.2486}
    """
    r, f = logits_real.detach().float(), logits_fake.detach().float()
    return {
        "health/acc_real": float(((r > 0).float() + 0.5 * (r == 0).float()).mean()),
        "health/acc_fake": float(((f < 0).float() + 0.5 * (f == 0).float()).mean()),
        "health/logit_gap": float(r.mean() - f.mean()),
        "health/logit_spread": float((0.5 * (r.var(unbiased=False) + f.var(unbiased=False))).sqrt()),
    }


def sample_diversity(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Variety of a generated batch relative to a real one (``health/sample_diversity``).

    ``real``, ``fake``: image batches ``(N, C, H, W)`` (N >= 2) on the same scale.  Returns
    ``mean_pixels(std_batch(fake)) / mean_pixels(std_batch(real))``: the standard deviation of
    every pixel and channel across the batch (population), averaged, of the fake batch over the
    real batch.  0 when every generated image is the same; about 1 when the samples vary as much
    as real images; ``nan`` when the real batch does not vary or a batch has fewer than 2 images.

    Examples
    --------
    >>> real = torch.tensor([[[[0.0, 2.0]]], [[[2.0, 0.0]]]])   # per-pixel std 1 and 1
    >>> fake = torch.tensor([[[[1.0, 1.0]]], [[[1.0, 2.0]]]])   # per-pixel std 0 and 0.5
    >>> sample_diversity(real, fake)
    0.25
    """
    r, f = real.detach().float(), fake.detach().float()
    if r.shape[0] < 2 or f.shape[0] < 2:
        return float("nan")
    ref = float(r.std(dim=0, unbiased=False).mean())
    return float(f.std(dim=0, unbiased=False).mean()) / ref if ref > 0 else float("nan")


def grad_norm(module: nn.Module) -> float:
    """L2 norm of the gradients of all parameters of ``module`` (0 when none has a gradient)."""
    sq = [p.grad.detach().float().pow(2).sum() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(sq).sum().sqrt()) if sq else 0.0


@dataclass
class HealthMonitor:
    """Watches ``health/*`` figures step by step and warns about a discriminator that is stuck.

    Parameters
    ----------
    window : int
        Number of consecutive steps the condition must hold before a warning (>= 1).
    chance_acc, chance_gap : float
        D's answers are "level" when its mean accuracy ``(acc_real + acc_fake) / 2`` over the
        window is within ``0.5 +- chance_acc`` and the mean logit gap is below ``chance_gap``
        (logit units).  Level answers are a warning (state ``"chance"``) only when D is also
        dead or not learning (below); otherwise they are the state ``"balanced"``.
    dead_spread : float
        D is dead when the mean ``logit_spread`` over the window is below this (logit units).
    learn_z : float
        D is learning when the mean ``d_step_gain`` over the window is above ``learn_z`` standard
        errors (and above 0).  Checked only when at least 5 of the window's steps carry it; with
        neither spread nor gain logged, level answers count as ``"chance"`` (the older rule).
    frozen_gain : float
        D is frozen (warning ``d_frozen``) when the mean absolute ``d_step_gain`` over the window
        (at least 5 probes) is below this (eq 2 units): its steps do not change its answers.
    collapse_diversity : float
        G has collapsed (warning ``g_collapsed``) when the mean ``sample_diversity`` over the full
        window is below this: its samples vary less than a twentieth as much as real images.
        A healthy GAN dips to about 0.1 early on, while G first learns the mean image (the
        width-32 default on faces64 at 32 px: 0.105 at step 40, then 0.5-0.8), so the threshold
        sits below that dip.
    win_acc, win_gap : float
        D "wins outright" when its mean accuracy over the window is above ``win_acc`` and the
        mean logit gap above ``win_gap``.
    warmup : int
        Steps at the start that are not judged (a fresh GAN often sits near chance while G finds
        its footing; a dead discriminator stays there long after).  Default 0.
    say : callable or None
        Called with each warning's message (e.g. ``console.print``).
    unit : str
        What one update is, in the messages: ``"steps"`` in training; :func:`replay` of a log
        written every ``log_every > 1`` steps says ``"logged rows"``.

    Each warning is also kept in :attr:`warnings` (dicts with ``problem``, ``from_step``,
    ``to_step``, ``message``) and reported once per stretch: a new warning needs the condition to
    clear first.
    """

    window: int = 100
    chance_acc: float = 0.05
    chance_gap: float = 0.1
    dead_spread: float = 0.02
    learn_z: float = 2.0
    frozen_gain: float = 1e-6
    collapse_diversity: float = 0.05
    win_acc: float = 0.98
    win_gap: float = 6.0
    warmup: int = 0
    say: Optional[Callable[[str], None]] = None
    unit: str = "steps"
    warnings: list[dict] = field(default_factory=list)
    steps: int = 0
    eq2_away: int = 0
    chance_steps: int = 0
    frozen_steps: int = 0
    collapsed_steps: int = 0
    balanced_steps: int = 0
    win_steps: int = 0
    _acc: deque = field(default_factory=deque, repr=False)
    _gap: deque = field(default_factory=deque, repr=False)
    _spread: deque = field(default_factory=deque, repr=False)
    _gain: deque = field(default_factory=deque, repr=False)
    _diversity: deque = field(default_factory=deque, repr=False)
    _active: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if int(self.window) < 1:
            raise ValueError(f"HealthMonitor: window must be >= 1 step; got {self.window}")
        for name in ("_acc", "_gap", "_spread", "_gain", "_diversity"):
            setattr(self, name, deque(maxlen=int(self.window)))

    @staticmethod
    def _mean(values: deque) -> float:
        got = [v for v in values if v is not None]
        return sum(got) / len(got) if got else float("nan")

    def _gain_t(self) -> tuple[float, float, int]:
        """Mean ``d_step_gain`` over the window, its standard error, and how many steps had it."""
        got = [v for v in self._gain if v is not None]
        n = len(got)
        if n < 2:
            return float("nan"), float("nan"), n
        m = sum(got) / n
        sd = math.sqrt(sum((v - m) ** 2 for v in got) / (n - 1))
        return m, sd / math.sqrt(n), n

    def _why_level(self) -> Optional[str]:
        """Why level answers over the window are a problem (``None``: D is responsive and learning)."""
        spread = self._mean(self._spread)
        if not math.isnan(spread) and spread < self.dead_spread:
            return (f"it scores every image alike (logit spread {spread:.4f}; a D that stopped responding "
                    "may be learning too fast: try a lower lr_d, e.g. lr_d = lr_g)")
        gain, se, n = self._gain_t()
        if n >= 5:
            if not (gain > 0 and gain > self.learn_z * se):
                return (f"its own steps do not improve its answer (eq 2 gain per D step {gain:+.2e} +- {se:.1e} "
                        f"over {n} probes; logit spread {spread:.3f})")
            return None
        if math.isnan(spread):
            return "nothing else shows it responding"
        return None

    def frozen(self) -> bool:
        """Whether D's steps changed nothing over the current full window (see ``frozen_gain``)."""
        got = [abs(v) for v in self._gain if v is not None]
        return len(self._acc) == self._acc.maxlen and len(got) >= 5 and sum(got) / len(got) < self.frozen_gain

    def collapsed(self) -> bool:
        """Whether G's samples varied less than ``collapse_diversity`` times the real images'
        over the current full window (needs ``health/sample_diversity`` on at least half its steps)."""
        got = [v for v in self._diversity if v is not None and not math.isnan(v)]
        return (len(self._acc) == self._acc.maxlen and len(got) >= max(1, len(self._acc) // 2)
                and sum(got) / len(got) < self.collapse_diversity)

    def state(self) -> str:
        """``"chance"``, ``"balanced"``, ``"wins"`` or ``"ok"`` for the current full window
        (``"warming"`` before); whether D is frozen is a separate question (:meth:`frozen`)."""
        if len(self._acc) < self._acc.maxlen:
            return "warming"
        acc = sum(self._acc) / len(self._acc)
        gap = sum(self._gap) / len(self._gap)
        if abs(acc - 0.5) <= self.chance_acc and abs(gap) < self.chance_gap:
            return "chance" if self._why_level() is not None else "balanced"
        if acc > self.win_acc and gap > self.win_gap:
            return "wins"
        return "ok"

    def update(self, step: int, stats: dict) -> Optional[dict]:
        """Feed one step's stats; returns the first new warning (all are kept in :attr:`warnings`)
        or ``None``."""
        if "health/acc_real" not in stats:
            return None
        self.steps += 1
        if "D/eq2" in stats and abs(float(stats["D/eq2"]) - LN4) > 0.05:
            self.eq2_away += 1
        if int(step) <= self.warmup:
            return None
        self._acc.append(0.5 * (float(stats["health/acc_real"]) + float(stats["health/acc_fake"])))
        self._gap.append(float(stats["health/logit_gap"]))
        self._spread.append(float(stats["health/logit_spread"]) if "health/logit_spread" in stats else None)
        self._gain.append(float(stats["health/d_step_gain"]) if "health/d_step_gain" in stats else None)
        self._diversity.append(float(stats["health/sample_diversity"]) if "health/sample_diversity" in stats else None)
        state = self.state()
        self.chance_steps += state == "chance"
        self.balanced_steps += state == "balanced"
        self.win_steps += state == "wins"
        frozen = self.frozen()
        self.frozen_steps += frozen
        collapsed = self.collapsed()
        self.collapsed_steps += collapsed
        first_new = None
        for problem in ("chance", "frozen", "collapsed", "wins"):
            now = {"frozen": frozen, "collapsed": collapsed}.get(problem, state == problem)
            if now and problem not in self._active:
                first = int(step) - len(self._acc) + 1
                text = {
                    "chance": lambda: "the discriminator is at chance: it scores real and generated images alike "
                                      f"(mean accuracy {sum(self._acc) / len(self._acc):.2f}, logit gap "
                                      f"{sum(self._gap) / len(self._gap):+.3f}) for {len(self._acc)} {self.unit}, and "
                                      f"{self._why_level()}; its image logit (eq 1) gives the generator nothing to learn from",
                    "frozen": lambda: "the discriminator's own steps change nothing: eq 2 on the batch it was just "
                                      f"trained on moved by {self._gain_t()[0]:+.1e} per step over {len(self._acc)} "
                                      f"{self.unit} (learning rate 0 or frozen weights?)",
                    "collapsed": lambda: "the generator has collapsed: its samples vary "
                                         f"{self._mean(self._diversity):.2f} times as much as real images "
                                         f"across the batch (sample diversity) over {len(self._acc)} {self.unit}; "
                                         "look at its samples, lower lr_G or restart from an earlier checkpoint",
                    "wins": lambda: "the discriminator wins outright: it separates every real from every generated "
                                    f"image (mean accuracy {sum(self._acc) / len(self._acc):.2f}, logit gap "
                                    f"{sum(self._gap) / len(self._gap):+.1f}) for {len(self._acc)} {self.unit}",
                }[problem]()
                new = {"problem": f"{'g' if problem == 'collapsed' else 'd'}_{problem}", "from_step": first,
                       "to_step": int(step), "message": f"steps {first}-{int(step)}: {text}"}
                self._active[problem] = new
                self.warnings.append(new)
                first_new = first_new or new
                if self.say is not None:
                    self.say(f"[bold yellow]training health warning[/]: {new['message']}")
            elif not now and problem in self._active:
                del self._active[problem]
        return first_new

    def summary(self) -> dict:
        """Health of the whole run so far (written to the run's ``health.json``); the shares at
        chance / balanced / winning / frozen are of the steps after the warm-up."""
        n = max(self.steps, 1)
        judged = max(self.steps - self.warmup, 1)
        acc = sum(self._acc) / len(self._acc) if self._acc else float("nan")
        gap = sum(self._gap) / len(self._gap) if self._gap else float("nan")
        gain, se, _ = self._gain_t()
        return {
            "steps_measured": self.steps,
            "window": int(self.window),
            "share_eq2_away_from_2ln2": self.eq2_away / n,
            "warmup": int(self.warmup),
            "share_steps_at_chance": self.chance_steps / judged,
            "share_steps_balanced": self.balanced_steps / judged,
            "share_steps_d_wins": self.win_steps / judged,
            "share_steps_d_frozen": self.frozen_steps / judged,
            "share_steps_g_collapsed": self.collapsed_steps / judged,
            "last_window_acc": acc,
            "last_window_logit_gap": gap,
            "last_window_logit_spread": self._mean(self._spread),
            "last_window_step_gain": gain,
            "last_window_step_gain_se": se,
            "last_window_sample_diversity": self._mean(self._diversity),
            "healthy": not self.warnings,
            "warnings": list(self.warnings),
        }


def health_warmup(window: int, steps: int) -> int:
    """Steps not judged at the start of a run of ``steps`` steps: one ``window``, or less so that
    the last window of a run shorter than two windows is still judged (0 when it is shorter than
    one window: the window never fills then, and nothing is judged).

    >>> health_warmup(80, 400), health_warmup(50, 80), health_warmup(50, 30)
    (80, 30, 0)
    """
    return max(0, min(int(window), int(steps) - int(window)))


# ------------------------------------------------------------------------------------------------
# Re-judging a finished (or running) run from its log: ``gazetune gan health RUN``


def read_step_rows(log_path: str | Path, phase: Optional[str] = "tune") -> list[dict]:
    """The step rows of a run's ``log.jsonl`` that carry health figures, in order.

    ``phase="tune"`` keeps rows of the judged phase (rows without a phase tag, or tagged
    ``"tune"``; the D warm-up rows are left out), ``None`` keeps all.  A line cut by a kill is
    skipped (the loop re-runs and re-logs that step).  Raises ``FileNotFoundError`` naming the
    file when it is missing and ``ValueError`` when it holds no health figures."""
    path = Path(log_path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not a gazetune run directory (no log.jsonl)")
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (not isinstance(row, dict) or row.get("kind", "step") != "step" or "health/acc_real" not in row
                or "step" not in row):
            continue
        if phase is not None and row.get("phase", "tune") != phase:
            continue
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no step rows with health figures (health/acc_real); was the run logged "
                         "with log_every = 0?")
    return rows


def replay(rows: list[dict], window: int, warmup: Optional[int] = None, **thresholds) -> tuple[HealthMonitor, list[str]]:
    """Feed logged step rows to a fresh :class:`HealthMonitor` and return it with its state after
    each row (``"collapsed"`` where :meth:`HealthMonitor.collapsed`, else ``"frozen"`` where
    :meth:`HealthMonitor.frozen`, else :meth:`HealthMonitor.state`).
    ``window`` and ``warmup`` (default ``window``, as in training) count rows: with
    ``log_every > 1`` a window of ``window`` rows spans ``window * log_every`` steps.  Warnings
    keep the run's step numbers.  ``thresholds`` are passed to :class:`HealthMonitor`."""
    sparse = any(int(b["step"]) - int(a["step"]) > 1 for a, b in zip(rows, rows[1:]))
    thresholds.setdefault("unit", "logged rows" if sparse else "steps")
    mon = HealthMonitor(window=int(window), warmup=int(window if warmup is None else warmup), **thresholds)
    states = []
    index = {}
    for k, row in enumerate(rows, start=1):  # the monitor counts rows; the warnings get steps back
        index[k] = int(row["step"])
        before = len(mon.warnings)
        mon.update(k, row)
        for w in mon.warnings[before:]:
            w["from_step"], w["to_step"] = index[w["from_step"]], index[w["to_step"]]
            w["message"] = f"steps {w['from_step']}-{w['to_step']}:" + w["message"].split(":", 1)[1]
        states.append("warming" if k <= mon.warmup else "collapsed" if mon.collapsed()
                      else "frozen" if mon.frozen() else mon.state())
    return mon, states


def health_blocks(rows: list[dict], states: list[str], block: int) -> list[dict]:
    """Per block of ``block`` consecutive rows: steps, mean accuracy, logit gap and spread, sample
    diversity, the mean step gain with its standard error and probe count, mean eq 2, and the share of each
    monitor state."""
    out = []
    for a in range(0, len(rows), max(1, int(block))):
        b = rows[a : a + block]
        gains = [float(r["health/d_step_gain"]) for r in b if "health/d_step_gain" in r]
        n = len(gains)
        gm = sum(gains) / n if n else float("nan")
        se = (math.sqrt(sum((g - gm) ** 2 for g in gains) / (n - 1)) / math.sqrt(n)) if n > 1 else float("nan")
        spreads = [float(r["health/logit_spread"]) for r in b if "health/logit_spread" in r]
        divs = [float(r["health/sample_diversity"]) for r in b if "health/sample_diversity" in r]
        st = states[a : a + block]
        out.append({
            "from_step": int(b[0]["step"]), "to_step": int(b[-1]["step"]),
            "acc": sum(0.5 * (r["health/acc_real"] + r["health/acc_fake"]) for r in b) / len(b),
            "gap": sum(r["health/logit_gap"] for r in b) / len(b),
            "spread": sum(spreads) / len(spreads) if spreads else float("nan"),
            "diversity": sum(divs) / len(divs) if divs else float("nan"),
            "gain": gm, "gain_se": se, "probes": n,
            "eq2": sum(r.get("D/eq2", float("nan")) for r in b) / len(b),
            "states": {s: st.count(s) / len(st) for s in dict.fromkeys(st)},
        })
    return out


STATE_COLOURS = {"ok": "#4daf4a", "balanced": "#377eb8", "chance": "#e41a1c", "frozen": "#984ea3",
                 "wins": "#ff7f00", "collapsed": "#a65628", "warming": "#bbbbbb"}


def plot_health(rows: list[dict], states: list[str], path: str | Path, title: str = "") -> Path:
    """Five panels against the step (D accuracy, logit gap, logit spread, step gain, sample
    diversity), with the monitor's state as a coloured band under each; written as PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.array([int(r["step"]) for r in rows])
    acc = np.array([0.5 * (r["health/acc_real"] + r["health/acc_fake"]) for r in rows])
    gap = np.array([r["health/logit_gap"] for r in rows])
    spread = np.array([r.get("health/logit_spread", np.nan) for r in rows])
    g_steps = np.array([int(r["step"]) for r in rows if "health/d_step_gain" in r])
    gain = np.array([r["health/d_step_gain"] for r in rows if "health/d_step_gain" in r])
    diversity = np.array([r.get("health/sample_diversity", np.nan) for r in rows])

    def smooth(y: np.ndarray, k: int) -> np.ndarray:
        """Centred moving mean over ``k`` points, shorter at the ends (no edge dip)."""
        if len(y) < 3 or not np.isfinite(y).all():
            return y
        c = np.concatenate([[0.0], np.cumsum(y)])
        i = np.arange(len(y))
        lo, hi = np.maximum(0, i - k // 2), np.minimum(len(y), i + k // 2 + 1)
        return (c[hi] - c[lo]) / (hi - lo)

    fig, axes = plt.subplots(5, 1, figsize=(9, 10.5), sharex=True)
    panels = [(steps, acc, "D accuracy", 0.5), (steps, gap, "logit gap real - fake", 0.0),
              (steps, spread, "logit spread", None), (g_steps, gain, "eq 2 gain per D step", 0.0),
              (steps, diversity, "sample diversity\n(fake / real)", 1.0)]
    for ax, (x, y, label, ref) in zip(axes, panels):
        if len(x):
            y = np.maximum(y, 1e-5) if label == "logit spread" else y  # a log axis
            ax.plot(x, y, color="#999999", lw=0.6)
            ax.plot(x, smooth(y, 25 if label != "eq 2 gain per D step" else 7), color="black", lw=1.4)
        if ref is not None:
            ax.axhline(ref, color="#e41a1c", lw=0.8, ls="--")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        lo, hi = ax.get_ylim()
        for s0, s1, st in _runs_of(steps, states):
            ax.axvspan(s0, s1, ymin=0, ymax=0.04, color=STATE_COLOURS.get(st, "#bbbbbb"), lw=0)
        ax.set_ylim(lo, hi)
    if np.isfinite(spread).any():
        axes[2].set_yscale("log")
        axes[2].set_ylim(max(1e-5, float(np.nanmin(spread)) / 2), float(np.nanmax(spread)) * 2)
    axes[3].set_yscale("symlog", linthresh=0.05)  # the first steps of a fresh D move eq 2 by whole units
    axes[-1].set_xlabel("step")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATE_COLOURS.values()]
    axes[0].legend(handles, list(STATE_COLOURS), ncol=7, fontsize=8, loc="upper right", title="monitor state (band)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _runs_of(steps, states: list[str]):
    """``(first step, last step, state)`` of each stretch of equal states."""
    out: list[tuple[int, int, str]] = []
    for s, st in zip(steps, states):
        if out and out[-1][2] == st:
            out[-1] = (out[-1][0], int(s), st)
        else:
            out.append((int(s), int(s), st))
    return out
