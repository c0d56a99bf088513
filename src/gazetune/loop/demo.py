"""``run_loop_demo``: the two-node loop end to end on loopback, with simulated participants.

1. pretrain a small GAN on the built-in faces (grey, ``size`` px): generator version 1;
2. start a real study server (:class:`~gazetune.study.runner.StudyServer`, SQLite in the output
   folder) showing the faces and version 1;
3. round 0: simulated participants (:mod:`gazetune.loop.participants`) take part over HTTP;
4. ``cycles`` times: the trainer (:class:`~gazetune.loop.trainer.Trainer`) pulls the new
   responses, builds maps, updates M_saliency, tunes and publishes version ``k + 1``; then a new
   round of participants sees it;
5. fool rate per served version (:func:`gazetune.evaluate.human.study_rates`) from every response
   on the server, written to ``loop_results.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gazetune.atomic import atomic_write_text


@dataclass
class LoopDemoConfig:
    """Settings of :func:`run_loop_demo` (defaults are the quick ones: about a minute on 2 cores).

    Sizes in pixels; ``participants`` per round, each judging ``trials`` images (half real).
    """

    size: int = 24
    pretrain_steps: int = 60
    tune_steps: int = 20
    batch: int = 16
    g_width: int = 12
    d_width: int = 8
    participants: int = 4
    trials: int = 10
    synthetic_pool: int = 24
    display_ms: int = 2000
    saliency_epochs: int = 4
    min_observed: int = 8
    judge_fakes: int = 32  # samples of an early pretraining snapshot the participants' judge learns from
    workers: int = 2
    seed: int = 0
    device: str = "cpu"


def run_loop_demo(out_dir: str | Path, cycles: int = 2, cfg: LoopDemoConfig | None = None,
                  log: Callable[[str], None] | None = print, **overrides: Any) -> dict:
    """Run the loop demo; returns ``{"rates": {version: fool-rate dict}, "versions": [...],
    "cycles": [...], "paths": {...}, "seconds": ...}`` (also in ``out_dir/loop_results.json``).

    ``overrides`` are :class:`LoopDemoConfig` fields.
    """
    from gazetune.loop.participants import quiet_http_logs
    from gazetune.seeding import seeded

    if cycles < 0:
        raise ValueError(f"cycles must be >= 0; got {cycles}")
    cfg = cfg or LoopDemoConfig()
    if overrides:
        cfg = LoopDemoConfig(**{**asdict(cfg), **overrides})
    say = log or (lambda _m: None)
    quiet_http_logs()
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "trainer" / "state.json").exists():
        raise FileExistsError(f"{out} already holds a loop demo; choose another folder or delete it")
    with seeded(cfg.seed):  # torch's global RNG seeded for the demo only, the caller's left as it was
        return _run(out, cycles, cfg, say, t_start)


def _run(out: Path, cycles: int, cfg: LoopDemoConfig, say: Callable[[str], None], t_start: float) -> dict:
    from gazetune.evaluate.human import Trial, study_rates
    from gazetune.images import load_image_set
    from gazetune.loop.participants import run_participants
    from gazetune.loop.trainer import LoopConfig, Trainer
    from gazetune.observers import ObserverPanel
    from gazetune.stages import copy_snapshot, fit_judge, render
    from gazetune.study.runner import StudyServer
    from gazetune.tune.train import TrainConfig, pretrain

    say(f"loop demo: pretraining the base GAN ({cfg.pretrain_steps} steps, {cfg.size} px faces)")
    faces = load_image_set("builtin:faces", size=cfg.size, channels=1)
    snap_step = max(1, cfg.pretrain_steps // 4)
    pcfg = TrainConfig(size=cfg.size, channels=1, batch=cfg.batch, steps=cfg.pretrain_steps, g_width=cfg.g_width,
                       d_width=cfg.d_width, z_dim=32, seed=cfg.seed, device=cfg.device, log_every=10,
                       sample_every=0, checkpoint_every=snap_step, n_samples=16, ema_half_life=200.0)
    snapshot = out / "judge_snapshot.safetensors"

    def keep_snapshot(step: int, _stats: dict) -> None:  # a generator that no served version is
        if step == snap_step:                                # tuned from, for fitting the judge
            copy_snapshot(out / "pretrain", snapshot)

    base = pretrain(pcfg, faces.images, out / "pretrain", progress=False, hooks=[keep_snapshot])
    # The participants' judge: learned features + patch critic fitted on half of the faces against an
    # early snapshot, its threshold calibrated on faces it did not see.  The patch critic alone
    # called the base's samples real more often than real faces (0.98 against 0.91).
    rng = np.random.default_rng([cfg.seed, 0x100B])
    order = rng.permutation(len(faces))
    n_fit = len(order) // 2
    fakes = render(snapshot, range(50_000, 50_000 + min(cfg.judge_fakes, n_fit)), device=cfg.device)
    fitted = fit_judge(faces.images[order[:n_fit]], fakes, faces.images[order[n_fit:]], seed=cfg.seed,
                       device=cfg.device)
    critic = fitted.judge

    server = StudyServer(out / "server", generator=str(base), image_size=cfg.size, channels=1,
                         trials_per_participant=cfg.trials, synthetic_pool=cfg.synthetic_pool,
                         max_display_ms=cfg.display_ms, drift_check_every=0, real_fraction=0.5, seed=cfg.seed)
    server.start()
    say(f"loop demo: study server on {server.url} (log {server.log_path})")
    rounds: list[dict] = []
    cycle_results: list[dict] = []
    try:
        def round_(k: int) -> None:
            t0 = time.perf_counter()
            runs = run_participants(server.url, cfg.participants, critic, seed=cfg.seed + 100 * k,
                                    panel=ObserverPanel.lab(cfg.participants, seed=cfg.seed + 100 * k,
                                                            observer=fitted.observer()),
                                    workers=cfg.workers, id_prefix=f"r{k}-sim")
            rounds.append({"round": k, "participants": [r.participant_id for r in runs],
                           "trials": sum(len(r.trials) for r in runs), "seconds": time.perf_counter() - t0})
            say(f"loop demo: round {k}: {len(runs)} simulated participants, {rounds[-1]['trials']} trials")

        trainer = Trainer(server.url, server.admin_token, out / "trainer", LoopConfig(
            init_checkpoint=str(base), init_version=1, saliency_epochs=cfg.saliency_epochs,
            tune_steps=cfg.tune_steps, batch=cfg.batch, min_observed=cfg.min_observed, seed=cfg.seed,
            device=cfg.device), log=say)
        try:
            round_(0)
            for k in range(1, cycles + 1):
                res = trainer.cycle()
                cycle_results.append({**{kk: v for kk, v in asdict(res).items() if kk != "folder"},
                                      "folder": str(res.folder) if res.folder else None})
                round_(k)
        finally:
            trainer.close()
        import httpx

        h = server.admin_headers()
        everything = httpx.get(server.url + "/api/trainer/responses", params={"cursor": 0, "limit": 1000},
                               headers=h, timeout=120).json()["responses"]
        versions = httpx.get(server.url + "/api/trainer/generators", headers=h, timeout=60).json()["versions"]
    finally:
        server.stop()

    trials = [Trial(str(r["participant_id"]), str(r["image"]), r["kind"],
                    f"v{r['generator_version']}" if r["kind"] == "synthetic" else None,
                    bool(r["answer"] == 1), float(r["rt_ms"])) for r in everything]
    rates = {row.generator: row.as_dict() for row in study_rates(trials, n_boot=500, seed=cfg.seed)}
    real = [t.answer_real for t in trials if t.kind == "real"]
    results = {
        "config": asdict(cfg), "cycles": cycle_results, "rounds": rounds, "rates": rates,
        "real_called_real": float(np.mean(real)) if real else None,
        "versions": [{k: v for k, v in ver.items() if k in ("version", "kind", "note", "trained_on")} for ver in versions],
        "paths": {"out": str(out), "pretrain": str(base), "trainer_state": str(out / "trainer"),
                  "server_log": str(server.log_path), "database": str(out / "server" / "study.db")},
        "seconds": time.perf_counter() - t_start,
    }
    atomic_write_text(out / "loop_results.json", json.dumps(results, indent=2, default=str))
    for v, r in rates.items():
        f = r["fool_rate"]
        say(f"loop demo: generator {v}: fool rate {f['rate']:.3f} [{f['lo']:.3f}, {f['hi']:.3f}] (n={f['n']})")
    say(f"loop demo: done in {results['seconds']:.0f} s -> {out / 'loop_results.json'}")
    return results
