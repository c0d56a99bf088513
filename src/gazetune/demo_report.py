"""``report.html`` of ``gazetune demo``: what the demo did, with pictures people would rather look
at than read (samples before/after, gaze overlays, loss curves, fool rates with CIs, saliency
metrics, the human model next to the panel)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gazetune.images import to_uint8  # noqa: E402

ZOOM = 4  # the faces are 32 px: show them 4x larger


def _fmt(value, spec: str) -> str:
    """``value`` formatted with ``spec``; "-" for a run whose health log predates the figure."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _zoom(image_chw: np.ndarray) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H*ZOOM, W*ZOOM, 3) uint8, nearest-neighbour."""
    rgb = to_uint8(image_chw)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return np.repeat(np.repeat(rgb, ZOOM, axis=0), ZOOM, axis=1)


def _read_log(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _loss_figure(runs: dict[str, tuple[Path, int]]):
    """Image-level (eq 1, 2) and per-pixel (eq 9a/9b, 10a/10b) losses of every run; a tuning run's
    steps are shifted by ``offset`` so it continues its pretraining curve."""
    panels = [("G image (eq 1)", ("G/eq1",)), ("D image (eq 2)", ("D/eq2",)),
              ("G per pixel (eq 9a / 9b)", ("G/eq9a", "G/eq9b")), ("D per pixel (eq 10a / 10b)", ("D/eq10a", "D/eq10b"))]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.0))
    for ax, (title, keys) in zip(axes, panels):
        for name, (run, offset) in runs.items():
            rows = [(r["step"] + offset, next(r[k] for k in keys if k in r)) for r in _read_log(run) if any(k in r for k in keys)]
            if rows:
                steps, vals = np.array(rows, dtype=float).T
                k = max(1, len(vals) // 30)
                smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
                ax.plot(steps[k - 1:], smooth, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fool_figure(rates: dict[str, dict]):
    names = list(rates)
    vals = np.array([rates[n]["rate"] for n in names])
    lo = vals - np.array([rates[n]["lo"] for n in names])
    hi = np.array([rates[n]["hi"] for n in names]) - vals
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(names)))
    ax.barh(range(len(names)), vals, xerr=[lo, hi], color="#4a90d9", capsize=4)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fool rate (synthetic called real), 95 % bootstrap CI")
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    fig.tight_layout()
    return fig


def _verdict(rates: dict[str, dict], judge: dict | None = None) -> str:
    """Plain-language comparison of each gaze arm with the no-gaze control (CIs must not overlap).

    No verdict is given when the fresh judge cannot tell real faces from the base generator's
    (ROC AUC below 0.7): its fool rates would say nothing."""
    control = rates.get("no gaze (control)")
    if control is None:
        return ""
    auc = (judge or {}).get("fresh", {}).get("auc_real_vs", {}).get("base (pretrained)")
    if auc is not None and auc < 0.7:
        return (f"NO VERDICT: the fresh panel's judge separates real faces from the base generator's with ROC AUC "
                f"{auc:.2f}, below the 0.7 needed for its fool rates to mean anything.")
    lines = []
    for arm, r in rates.items():
        if arm in ("no gaze (control)", "base (pretrained)"):
            continue
        if r["lo"] > control["hi"]:
            word = "fooled the panel MORE often than"
        elif r["hi"] < control["lo"]:
            word = "fooled the panel LESS often than"
        else:
            word = "cannot be told apart (overlapping 95 % CIs) from"
        lines.append(f"{arm} ({r['rate']:.2f}) {word} the same number of steps without gaze ({control['rate']:.2f}).")
    return (" ".join(lines) + " This is one seed on a simulated panel: see docs/benchmarks.md for the multi-seed "
            "benchmark with a fresh panel and a shuffled-map control.")


def write_report(
    out: Path, cfg, results: dict[str, Any], trials, fixations, faces, fakes, real_idx, syn_names, maps,
    saliency_model, arm_runs: dict[str, Path], arm_samples: dict[str, np.ndarray], human_term,
) -> Path:
    """Assemble ``out/report.html`` (images are embedded, so the file can be moved or mailed)."""
    from gazetune.evaluate.report import HtmlReport
    from gazetune.gaze.overlay import heatmap_overlay, scanpath_overlay
    from gazetune.saliency.train import predict_maps
    from gazetune.tune.maps import parse_synthetic_name

    rep = HtmlReport("gazetune demo: making a face generator realistic where people look")
    t = results["timings_s"]
    rep.add_text(
        f"Built-in data: {len(faces)} faces from scikit-image's LFW subset at {cfg.size} px. "
        f"Observers are SIMULATED (a test instrument: centre bias, image content and, with beta > 0, the places that "
        f"look wrong to them decide where they look; a realism judge -- a read-out of pretrained Inception features "
        f"learnt on real against early generated faces, combined with local image statistics -- read at the "
        f"fixated places decides their answer). "
        f"Total run time {t['total']:.0f} s on {cfg.device}."
    )

    rep.add_heading("1. Samples: real faces, base generator, tuned generators")
    rep.add_images(
        [out / "real_faces.png"] + [out / f"samples_{run.name}.png" for run in arm_runs.values()],
        ["real faces"] + [f"{arm} (fresh latent seeds)" for arm in arm_runs], cell_px=260,
    )

    rep.add_heading("2. What the panel answered: fool rate before and after tuning")
    rows = [[arm, f"{r['rate']:.3f}", f"[{r['lo']:.3f}, {r['hi']:.3f}]", r["n"]] for arm, r in results["fool_rates"].items()]
    rep.add_table(rows, ["generator", "fool rate", "95 % CI (participants x images bootstrap)", "trials"])
    rep.add_figure(_fool_figure(results["fool_rates"]), "Share of synthetic faces the simulated observers called real")
    rep.add_text(_verdict(results["fool_rates"], results.get("judge")))
    j = results.get("judge", {})
    if "fresh" in j:
        fresh = j["fresh"]
        rep.add_text(
            f"Real faces called real: {results['real_called_real']:.3f}. The check of the instrument: the fresh "
            "panel's judge (fitted on other real faces and another generator snapshot than the study panel's; "
            "threshold set on held-out real faces only) separates real faces from each generator with ROC AUC "
            + ", ".join(f"{k} {v:.2f}" for k, v in fresh["auc_real_vs"].items())
            + " (1 = always, 0.5 = cannot tell). Mean realism it gives: "
            + ", ".join(f"{k} {v:.3f}" for k, v in fresh["mean_realism"].items()) + "."
        )
    if "study" in j:
        st = j["study"]
        rep.add_text(
            f"Study panel (its own judge): real faces called real {st['real_called_real']:.2f}, base generator "
            f"{st['base_called_real']:.2f}, ROC AUC {st['auc_real_vs_base']:.2f}; observers seek flaws with "
            f"beta = {st['beta']:g} (0 = free viewing)."
        )
    if "health" in results:
        rep.add_heading("Training health: did the discriminator learn?")
        rows = []
        for run, h in results["health"].items():
            rows.append([run, f"{h['share_eq2_away_from_2ln2']:.2f}", f"{h['last_window_acc']:.2f}",
                         f"{h['last_window_logit_gap']:+.2f}", _fmt(h.get("last_window_logit_spread"), ".3f"),
                         _fmt(h.get("last_window_step_gain"), "+.3f"), _fmt(h.get("share_steps_balanced"), ".2f"),
                         _fmt(h.get("last_window_sample_diversity"), ".2f"),
                         "healthy" if h["healthy"] else "; ".join(w["message"] for w in h["warnings"])])
        rep.add_table(rows, ["run", "share of steps with D/eq2 away from 2 ln 2", "D accuracy (last window)",
                             "logit gap real - fake (last window)", "logit spread (last window)",
                             "eq 2 gain per D step (last window)", "share of steps balanced",
                             "sample diversity, fake / real (last window)", "warnings"])
        rep.add_text("A discriminator at chance (accuracy 0.5, gap 0, D/eq2 = 1.386) teaches the generator nothing "
                     "when it gives every image the same score (logit spread near 0) or when its own steps do not "
                     "lower eq 2 on the batch they were taken on (step gain not above 0); the run warns when that, "
                     "D's steps changing nothing at all, or D winning outright, lasts a whole window of steps. "
                     "Accuracy near 0.5 from a discriminator that still scores images apart and gains from each "
                     "step is a balanced game (counted as 'balanced', not a warning). Sample diversity is how much "
                     "the generated batch varies pixel by pixel, relative to the real batch; below 0.05 over a window "
                     "the generator has collapsed onto one image, and the run warns.")

    rep.add_heading("3. Gaze: heatmaps and scanpaths on real and synthetic faces")
    g = results["gaze"]
    rep.add_text(f"{g['trials']} trials; {g['detected_fixations']} fixations detected by pymovements I-VT from 60 Hz "
                 f"samples ({g['true_fixations']} simulated); heatmap sigma {g['sigma_px']:.1f} px (1 degree).")
    shown_real = [faces.names[i] for i in real_idx[:4]]
    shown_syn = list(syn_names[:4])
    image_of = {faces.names[i]: faces.images[i] for i in real_idx}
    image_of.update({n: fakes[k] for k, n in enumerate(syn_names)})
    pics, caps = [], []
    for name in shown_real + shown_syn:
        kind = "real" if name in maps.real else "synthetic"
        m = maps.real[name] if kind == "real" else maps.synthetic[parse_synthetic_name(name)]
        big = _zoom(image_of[name])
        pics.append(heatmap_overlay(big, m))
        caps.append(f"{kind}: pooled heatmap")
        first = next((k for k, tr in enumerate(trials) if tr.image_id == name), None)
        if first is not None:
            arr = fixations[first].as_array().copy()
            arr[:, :2] = (arr[:, :2] + 0.5) * ZOOM - 0.5  # pixel centres of the zoomed image
            pics.append(scanpath_overlay(big, arr))
            caps.append(f"{kind}: scanpath of {trials[first].observer_id}")
    rep.add_images(pics, caps, cell_px=150)

    rep.add_heading("4. Saliency model M_saliency (eq 4-8), held-out images")
    s = results["saliency"]
    metric_names = list(next(iter(s["metrics"].values())).keys())
    rows = [[row] + [f"{vals[m]:.3f}" for m in metric_names] for row, vals in s["metrics"].items()]
    rep.add_table(rows, ["predictor"] + metric_names)
    rep.add_text(f"Trained on {s['n_train']} observed images, scored on {s['n_test']} held-out ones.")
    hist = s["history"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(hist["loss"], label="train")
    if "val_loss" in hist:
        ax.plot(hist["val_loss"], label="held-out")
    ax.set_xlabel("epoch")
    ax.set_title("M_saliency loss")
    ax.legend()
    fig.tight_layout()
    rep.add_figure(fig, "M_saliency training")
    pics, caps = [], []
    for name, pred in list(zip(s["test_names"], s["test_predictions"]))[:4]:
        kind = "real" if name in maps.real else "synthetic"
        target = maps.real[name] if kind == "real" else maps.synthetic[parse_synthetic_name(name)]
        pics += [heatmap_overlay(_zoom(image_of[name]), target), heatmap_overlay(_zoom(image_of[name]), pred)]
        caps += [f"{kind}, held out: observers", f"{kind}, held out: M_saliency"]
    rep.add_images(pics, caps, cell_px=150)

    rep.add_heading("5. Training curves")
    curves = {"pretrain": (arm_runs["base (pretrained)"], 0)}
    curves.update({k: (v, cfg.pretrain_steps) for k, v in arm_runs.items() if k != "base (pretrained)"})
    rep.add_figure(_loss_figure(curves),
                   "Generator and discriminator losses (moving average)")

    if human_term is not None and "human_model" in results:
        rep.add_heading("6. Human-response model (FIG. 5): its predictions next to the panel's")
        h = results["human_model"]
        rep.add_table([[k, f"{v:.3f}" if isinstance(v, float) else v] for k, v in h["holdout"].items()],
                      ["held-out participants " + ", ".join(h["holdout_participants"]), "value"])
        model = human_term.model
        pics, caps = [], []
        for name in shown_real[:3] + shown_syn[:3]:
            x = torch.as_tensor(image_of[name][None])
            with torch.no_grad():
                logit, gaze = model(model.prepare(x))
            p = float(torch.sigmoid(logit)[0])
            panel_p = float(np.mean([tr.answer_real for tr in trials if tr.image_id == name]))
            gm = torch.sigmoid(gaze)[0, 0].numpy()
            big = _zoom(image_of[name])
            m = maps.real[name] if name in maps.real else maps.synthetic[parse_synthetic_name(name)]
            pics += [heatmap_overlay(big, m), heatmap_overlay(big, gm)]
            caps += [f"panel: P(real) = {panel_p:.2f}", f"model: P(real) = {p:.2f}"]
        rep.add_images(pics, caps, cell_px=150)
        if "p_real_fresh_samples" in h:
            rep.add_text("Human model's mean P(real) on fresh samples: "
                         + ", ".join(f"{k} {v:.3f}" for k, v in h["p_real_fresh_samples"].items()) + ".")

    if "loop" in results:
        rep.add_heading("7. The same loop as two nodes over HTTP (study server + trainer)")
        rep.add_text(
            "A real study server ran on loopback; simulated participants took part through its HTTP API "
            "(gaze uploaded in numbered 1 s batches, answers with response times); the trainer node pulled "
            "their responses since its cursor, built maps, updated M_saliency, tuned the generator and "
            "published a new version, which the next participants saw. Fool rate per served version:"
        )
        rows = []
        for version, r in results["loop"]["rates"].items():
            fool = r.get("fool_rate", r)
            rows.append([version, f"{fool['rate']:.3f}", f"[{fool['lo']:.3f}, {fool['hi']:.3f}]", fool["n"]])
        rep.add_table(rows, ["generator version", "fool rate", "95 % CI", "trials"])

    rep.add_heading("Run details")
    rep.add_table([[k, f"{v:.1f}"] for k, v in t.items()], ["stage", "seconds"])
    rep.add_text("Every file of the run (checkpoints, logs, fixations.csv, maps.npz, results.json) is in this folder.")
    path = out / "report.html"
    rep.save(path)
    plt.close("all")
    return path
