"""Does the health monitor tell a balanced discriminator from a dead, idle or frozen one?

The old rule warned "D at chance" from accuracy and logit gap alone.  The width-32 default on
faces64 tripped it in steps 601-1200 of a 3,000-step run while its KID halved (docs/benchmarks.md,
"Longer: 3,000 steps at width 32"): a false alarm.  The current rule (``gazetune.tune.health``)
also asks whether D scores images apart (``health/logit_spread``) and whether its own steps still
lower eq 2 on the batch they were taken on (``health/d_step_gain``).

Runs (faces64 at ``--size`` px RGB, the same generator, batch and seed):

==========  =====================================================================================
default     the default recipe, ``--steps`` steps (the case that must not warn)
lr0         the default discriminator with ``lr_D = 0``: responsive, never learns (must warn)
nonorm      the core issue's discriminator (no normalisation, PyTorch's default initialisation)
            at today's ``lr_D`` (8e-4)
dead        the same discriminator at the core issue's ``lr_D`` (2e-4, equal to G's): the failure
            the monitor exists for (it must warn for as long as D stays dead)
deadslow    the same discriminator at a tenth of that (2e-5): it stays dead for longer than a
            judging window, so the monitor must warn while it still takes (small) steps
==========  =====================================================================================

Each log is judged twice with the same window (the run's own, a fifth of its steps, at least
50; ``--window`` rows for the default run): by the old rule (the spread and gain figures removed from the
rows, which makes the monitor fall back to accuracy and gap) and by the current one.  Printed:
per run and rule, the share of judged steps at chance, balanced and frozen, and the warnings.

``--reuse DIR``: a folder holding earlier run directories named as above; those
present are judged again without training.

Command used for docs/benchmarks.md (2 CPU cores)::

    python bench/health_rule.py --data ../shared/data --out bench/out/health_rule
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gan_quality import load_faces  # noqa: E402  (same split and resizing as the quality benchmark)

NEW_KEYS = ("health/logit_spread", "health/d_step_gain")
RUNS = {"default": {}, "lr0": {"lr_d": 0.0}, "nonorm": {}, "dead": {"lr_d": 2e-4},
        "deadslow": {"lr_d": 2e-5}}  # TrainConfig changes


def dead_discriminator(size: int, channels: int, width: int) -> nn.Module:
    """The core issue's D: U-Net without normalisation, PyTorch's default initialisation."""
    from gazetune.nets import UNetDiscriminator

    torch.manual_seed(0)
    d = UNetDiscriminator(size, channels, width, norm="none")
    for m in d.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
    return d


def judge(run: Path, window: int | None) -> dict:
    from gazetune.tune.health import health_warmup, read_step_rows, replay

    rows = read_step_rows(run / "log.jsonl")
    if window is None:
        window = max(50, int(rows[-1]["step"]) // 5)
    out = {"rows": len(rows), "window": window}
    for rule, rs in (("old", [{k: v for k, v in r.items() if k not in NEW_KEYS} for r in rows]), ("current", rows)):
        mon, _ = replay(rs, window, health_warmup(window, len(rs)))  # as the run judged itself
        s = mon.summary()
        out[rule] = {"at_chance": s["share_steps_at_chance"], "balanced": s["share_steps_balanced"],
                     "frozen": s["share_steps_d_frozen"], "warnings": [(w["problem"], w["from_step"], w["to_step"])
                                                                      for w in mon.warnings],
                     "last_window": {k: s[k] for k in ("last_window_acc", "last_window_logit_gap",
                                                       "last_window_logit_spread", "last_window_step_gain",
                                                       "last_window_step_gain_se")}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="shared data folder holding faces64/")
    ap.add_argument("--out", default="bench/out/health_rule")
    ap.add_argument("--reuse", default=None, help="folder with earlier run directories to judge again")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1300, help="steps of the default run")
    ap.add_argument("--short-steps", type=int, default=300, help="steps of the other runs")
    ap.add_argument("--window", type=int, default=None,
                    help="judging window of the default run in rows (default: its own, a fifth of its steps); "
                         "600 is the window of the 3,000-step run that raised the false alarm")
    ap.add_argument("--runs", default="default,lr0,nonorm,dead,deadslow")
    ap.add_argument("--quick", action="store_true", help="120 / 60 steps: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.short_steps = 120, 60
    data = Path(args.data)
    if not (data / "faces64").is_dir():
        sys.exit(f"health_rule: {data / 'faces64'} not found: pass --data, the folder holding faces64/")
    torch.set_num_threads(1)
    from gazetune.tune.train import TrainConfig, pretrain

    train, _held = load_faces(args.data, args.size, 3, 500, 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(size=args.size, channels=3, batch=32, g_width=32, d_width=32, seed=0, log_every=1, sample_every=0,
              checkpoint_every=100)
    results = {"args": vars(args), "machine": "2 CPU cores", "runs": {}}
    for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
        if name not in RUNS:
            sys.exit(f"health_rule: unknown run {name!r}; choose from {', '.join(RUNS)}")
        reused = Path(args.reuse) / name if args.reuse else None
        run = reused if reused is not None and (reused / "log.jsonl").exists() else out / name
        if not (run / "checkpoint.safetensors").exists():
            steps = args.steps if name == "default" else args.short_steps
            cfg = TrainConfig(steps=steps, **RUNS[name], **kw)
            t0 = time.perf_counter()
            d = dead_discriminator(args.size, 3, 32) if name in ("nonorm", "dead", "deadslow") else None
            pretrain(cfg, torch.as_tensor(train), run, progress=True, discriminator=d)
            print(f"{name}: {steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
        results["runs"][name] = {"dir": str(run), **judge(run, args.window if name == "default" else None)}
        (out / "results.json").write_text(json.dumps(results, indent=2))

    print("\n| run | rule | window (rows) | at chance | balanced | frozen | warnings (problem, steps) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results["runs"].items():
        for rule in ("old", "current"):
            j = r[rule]
            warns = "; ".join(f"{p} {a}-{b}" for p, a, b in j["warnings"]) or "none"
            print(f"| {name} | {rule} | {r['window']} | {j['at_chance']:.0%} | {j['balanced']:.0%} | {j['frozen']:.0%} "
                  f"| {warns} |")
    print()
    for name, r in results["runs"].items():
        lw = r["current"]["last_window"]
        print(f"{name}: last window accuracy {lw['last_window_acc']:.3f}, gap {lw['last_window_logit_gap']:+.3f}, "
              f"spread {lw['last_window_logit_spread']:.4f}, step gain {lw['last_window_step_gain']:+.4f} "
              f"+- {lw['last_window_step_gain_se']:.4f}")


if __name__ == "__main__":
    main()
