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
- ``grad_D``, ``grad_G``: L2 norm of the gradient over all parameters of the network, before the
  optimiser step.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

LN4 = 2.0 * math.log(2.0)  # eq 2 of a discriminator that answers 0.5 for everything


def d_separation(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> dict[str, float]:
    """D's separation of one batch from its image logits (``(N_real,)``, ``(N_fake,)``).

    Returns ``{"health/acc_real", "health/acc_fake", "health/logit_gap"}`` (see the module
    docstring).

    Examples
    --------
    >>> d_separation(torch.tensor([1.0, -1.0, 2.0]), torch.tensor([-2.0, 0.5]))
    {'health/acc_real': 0.6666666865348816, 'health/acc_fake': 0.5, 'health/logit_gap': 1.4166666269302368}
    """
    return {
        "health/acc_real": float(((logits_real > 0).float() + 0.5 * (logits_real == 0).float()).mean()),
        "health/acc_fake": float(((logits_fake < 0).float() + 0.5 * (logits_fake == 0).float()).mean()),
        "health/logit_gap": float(logits_real.float().mean() - logits_fake.float().mean()),
    }


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
    chance_acc : float
        D is "at chance" when its mean accuracy ``(acc_real + acc_fake) / 2`` over the window is
        within ``0.5 +- chance_acc`` **and** the mean logit gap is below ``chance_gap``.
    chance_gap : float
        See ``chance_acc`` (logit units).
    win_acc, win_gap : float
        D "wins outright" when its mean accuracy over the window is above ``win_acc`` and the
        mean logit gap above ``win_gap``.
    warmup : int
        Steps at the start that are not judged (a fresh GAN often sits near chance while G finds
        its footing; a dead discriminator stays there long after).  Default 0.
    say : callable or None
        Called with each warning's message (e.g. ``console.print``).

    Each warning is also kept in :attr:`warnings` (dicts with ``problem``, ``from_step``,
    ``to_step``, ``message``) and reported once per stretch: a new warning needs the condition to
    clear first.
    """

    window: int = 100
    chance_acc: float = 0.05
    chance_gap: float = 0.1
    win_acc: float = 0.98
    win_gap: float = 6.0
    warmup: int = 0
    say: Optional[Callable[[str], None]] = None
    warnings: list[dict] = field(default_factory=list)
    steps: int = 0
    eq2_away: int = 0
    chance_steps: int = 0
    win_steps: int = 0
    _acc: deque = field(default_factory=deque, repr=False)
    _gap: deque = field(default_factory=deque, repr=False)
    _active: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if int(self.window) < 1:
            raise ValueError(f"HealthMonitor: window must be >= 1 step; got {self.window}")
        self._acc = deque(maxlen=int(self.window))
        self._gap = deque(maxlen=int(self.window))

    def state(self) -> str:
        """``"chance"``, ``"wins"`` or ``"ok"`` for the current full window (``"warming"`` before)."""
        if len(self._acc) < self._acc.maxlen:
            return "warming"
        acc = sum(self._acc) / len(self._acc)
        gap = sum(self._gap) / len(self._gap)
        if abs(acc - 0.5) <= self.chance_acc and abs(gap) < self.chance_gap:
            return "chance"
        if acc > self.win_acc and gap > self.win_gap:
            return "wins"
        return "ok"

    def update(self, step: int, stats: dict) -> Optional[dict]:
        """Feed one step's stats; returns a new warning (and keeps it) or ``None``."""
        if "health/acc_real" not in stats:
            return None
        self.steps += 1
        if "D/eq2" in stats and abs(float(stats["D/eq2"]) - LN4) > 0.05:
            self.eq2_away += 1
        if int(step) <= self.warmup:
            return None
        self._acc.append(0.5 * (float(stats["health/acc_real"]) + float(stats["health/acc_fake"])))
        self._gap.append(float(stats["health/logit_gap"]))
        state = self.state()
        self.chance_steps += state == "chance"
        self.win_steps += state == "wins"
        new = None
        for problem in ("chance", "wins"):
            if state == problem and problem not in self._active:
                first = int(step) - len(self._acc) + 1
                text = {
                    "chance": "the discriminator is at chance: it scores real and generated images alike "
                              f"(mean accuracy {sum(self._acc) / len(self._acc):.2f}, logit gap "
                              f"{sum(self._gap) / len(self._gap):+.3f}) for {len(self._acc)} steps; "
                              "the generator is learning nothing from it",
                    "wins": "the discriminator wins outright: it separates every real from every generated "
                            f"image (mean accuracy {sum(self._acc) / len(self._acc):.2f}, logit gap "
                            f"{sum(self._gap) / len(self._gap):+.1f}) for {len(self._acc)} steps",
                }[problem]
                new = {"problem": f"d_{problem}" if problem == "chance" else "d_wins", "from_step": first,
                       "to_step": int(step), "message": f"steps {first}-{int(step)}: {text}"}
                self._active[problem] = new
                self.warnings.append(new)
                if self.say is not None:
                    self.say(f"[bold yellow]training health warning[/]: {new['message']}")
            elif state != problem and problem in self._active:
                del self._active[problem]
        return new

    def summary(self) -> dict:
        """Health of the whole run so far (written to the run's ``health.json``); the shares at
        chance / winning are of the steps after the warm-up."""
        n = max(self.steps, 1)
        judged = max(self.steps - self.warmup, 1)
        acc = sum(self._acc) / len(self._acc) if self._acc else float("nan")
        gap = sum(self._gap) / len(self._gap) if self._gap else float("nan")
        return {
            "steps_measured": self.steps,
            "window": int(self.window),
            "share_eq2_away_from_2ln2": self.eq2_away / n,
            "warmup": int(self.warmup),
            "share_steps_at_chance": self.chance_steps / judged,
            "share_steps_d_wins": self.win_steps / judged,
            "last_window_acc": acc,
            "last_window_logit_gap": gap,
            "healthy": not self.warnings,
            "warnings": list(self.warnings),
        }
