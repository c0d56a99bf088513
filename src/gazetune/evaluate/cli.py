"""Command-line group ``gazetune eval`` (mounted by gazetune.cli).

* ``gazetune eval images --images DIR (--fake DIR | --generator PATH) [--metrics swd,c2st,fid,kid]
  [--saliency-maps NPZ] [--json OUT] [--report HTML]``: distances between two image sets, or
  between real images and samples of a generator; with maps also their salient-region variants.
* ``gazetune eval study --trials CSV [--answer-scale 1-7 --real-end low] [--image-table CSV]
  [--exclude-column COL] [--json OUT] [--report HTML]``: rate of "called real" per source, fool
  rate and HYPE-infinity error rate per generator version, with confidence intervals, from any long
  table of answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gazetune.atomic import atomic_write_text
from gazetune.cli_options import renamed

app = typer.Typer(no_args_is_help=True, add_completion=False)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    from gazetune.evaluate.suite import _jsonable

    atomic_write_text(path, json.dumps(payload, indent=2, default=_jsonable) + "\n")
    console.print(f"wrote [bold]{path}[/]")


def load_maps_npz(path: Path, n_real: int, n_fake: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Maps for ``--saliency-maps``: an ``.npz`` with ``map`` (one ``(H, W)`` map shared by every
    image, e.g. pooled human gaze on aligned faces) or with ``real`` ``(N_real, H, W)`` and ``fake``
    ``(N_fake, H, W)`` (one map per image, in the order the images are loaded: sorted names)."""
    if not path.is_file():
        raise FileNotFoundError(f"saliency maps file not found: {path}")
    with np.load(path) as z:
        keys = set(z.files)
        if "map" in keys:
            m = np.asarray(z["map"], dtype=np.float32)
            if m.ndim != 2:
                raise ValueError(f"{path}: 'map' must be one (H, W) map; got shape {m.shape}")
            return m, None
        if {"real", "fake"} <= keys:
            r, f = np.asarray(z["real"], np.float32), np.asarray(z["fake"], np.float32)
            if r.shape[0] != n_real or f.shape[0] != n_fake:
                raise ValueError(
                    f"{path}: 'real' has {r.shape[0]} maps for {n_real} real images and 'fake' "
                    f"{f.shape[0]} maps for {n_fake} fake images"
                )
            return r, f
    raise ValueError(f"{path}: needs key 'map' (H, W), or keys 'real' and 'fake'; has {sorted(keys)}")


def _sample(generator: Path, n: int, seed: int, device: str) -> np.ndarray:
    from gazetune.evaluate.suite import sample_generator
    from gazetune.nets.generator import load_generator

    g = load_generator(generator, device=device)
    with _progress() as prog:
        task = prog.add_task(f"sampling {n} images from {generator.name}", total=n)
        out = sample_generator(g, n, seed=seed, device=device, progress=lambda k: prog.update(task, completed=k))
    return out


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console, transient=True)


@app.command("images", cls=renamed({"--real": "--images"}))
def images_command(
    real: Path = typer.Option(..., "--images", help="Real images: a folder of PNG/JPG, an .npz, or builtin:faces."),
    fake: Optional[Path] = typer.Option(None, "--fake", help="Synthetic images (folder or .npz)."),
    generator: Optional[Path] = typer.Option(None, "--generator", help="Sample this generator (checkpoint or TorchScript) instead of --fake."),
    n: int = typer.Option(0, "--n", help="Images per set (0 = all real images; generator samples as many)."),
    metrics: str = typer.Option("swd,c2st", "--metrics", help="Comma-separated: swd, c2st, fid, kid."),
    saliency_maps: Optional[Path] = typer.Option(None, "--saliency-maps", help=".npz with 'map' (H, W) or 'real'/'fake' (N, H, W): adds salient-region variants."),
    size: int = typer.Option(0, "--size", help="Resize images to this side in pixels (0 = keep the real set's size)."),
    seed: int = typer.Option(0, "--seed", help="Seed for subsets, samples, patches and classifiers."),
    device: str = typer.Option("cpu", "--device", help="Torch device for the generator and the Inception network."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write an HTML report with sample grids and the table."),
) -> None:
    """Distances between real and synthetic images (SWD, C2ST, FID, KID; salient variants with maps)."""
    from gazetune.evaluate.inception import InceptionUnavailable, is_available
    from gazetune.evaluate.suite import evaluate_images, parse_metrics
    from gazetune.images import load_image_set

    if (fake is None) == (generator is None):
        _fail("give exactly one of --fake DIR or --generator PATH")
    try:
        names = parse_metrics(metrics)
    except ValueError as err:
        _fail(str(err))
    if ("fid" in names or "kid" in names) and not is_available():
        from gazetune.evaluate.inception import MISSING_MESSAGE

        console.print(f"[yellow]skipping FID/KID:[/] {MISSING_MESSAGE}")
        names = [m for m in names if m not in ("fid", "kid")]
        if not names:
            raise typer.Exit(code=2)
    try:
        from gazetune.images import convert_channels, resize_images

        real_images = load_image_set(str(real), size=size or None).images
        if generator is not None:
            fake_images = _sample(generator, n or len(real_images), seed, device)
        else:
            fake_images = load_image_set(str(fake), size=size or None).images
        # the fake set decides size and channels when they differ (a generator has one output size)
        if real_images.shape[1] != fake_images.shape[1]:
            real_images = convert_channels(real_images, fake_images.shape[1])
        if real_images.shape[-2:] != fake_images.shape[-2:]:
            if fake_images.shape[-1] != fake_images.shape[-2]:
                raise ValueError(f"fake images of {fake_images.shape[-2:]} px differ from the real ones; use --size")
            real_images = resize_images(real_images, fake_images.shape[-1])
        real_maps = fake_maps = None
        if saliency_maps is not None:
            real_maps, fake_maps = load_maps_npz(saliency_maps, len(real_images), len(fake_images))
        if n:  # random subsets of n images (per-image maps follow their images)
            rng = np.random.default_rng(seed)
            keep_r = np.sort(rng.choice(len(real_images), min(n, len(real_images)), replace=False))
            keep_f = np.sort(rng.choice(len(fake_images), min(n, len(fake_images)), replace=False))
            real_images, fake_images = real_images[keep_r], fake_images[keep_f]
            if fake_maps is not None:
                real_maps, fake_maps = real_maps[keep_r], fake_maps[keep_f]
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    console.print(f"real: {len(real_images)} images {tuple(real_images.shape[1:])} · fake: {len(fake_images)} images")
    per_variant = len([m for m in names if m in ("swd", "c2st")]) + (1 if {"fid", "kid"} & set(names) else 0)
    with _progress() as prog:
        task = prog.add_task("metrics", total=per_variant * (2 if real_maps is not None else 1))
        done = [0]

        def tick(name: str) -> None:
            prog.update(task, description=name, completed=done[0])
            done[0] += 1

        try:
            results = evaluate_images(real_images, fake_images, names, real_maps, fake_maps, seed=seed, device=device, progress=tick)
        except InceptionUnavailable as err:
            _fail(str(err))
    table = Table(title="gazetune eval images")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    payload = {"real": str(real), "fake": str(fake) if fake else None, "generator": str(generator) if generator else None,
               "metrics": names, "seed": seed, "results": results}
    if json_out:
        _write_json(json_out, payload)
    if report:
        _images_report(report, real_images, fake_images, results, real_maps, payload)


def _images_report(path: Path, real: np.ndarray, fake: np.ndarray, results: dict, maps: Any, payload: dict) -> None:
    from gazetune.evaluate.report import HtmlReport, map_overlay
    from gazetune.images import image_grid

    rep = HtmlReport("Image-set evaluation", subtitle=f"real: {payload['real']} · fake: {payload['fake'] or payload['generator']}")
    rep.add_heading("Scores")
    rep.add_text(
        "SWD: sliced Wasserstein distance between Laplacian-pyramid patches (x 1e3; lower is closer). "
        "C2ST: held-out accuracy of a small classifier telling real from fake (0.5 = indistinguishable). "
        "FID/KID: TF-Inception feature distances (lower is closer). '_salient' values use only "
        "patches or crops drawn where the saliency maps put their mass."
    )
    rep.add_table([[k, v] for k, v in results.items()], header=["metric", "value"])
    rep.add_heading("Samples")
    rep.add_images([image_grid(real[:32], nrow=8), image_grid(fake[:32], nrow=8)], ["real", "fake"], cell_px=320)
    if maps is not None:
        m = np.asarray(maps)
        shown = [map_overlay(real[i], m if m.ndim == 2 else m[i]) for i in range(min(8, len(real)))]
        rep.add_heading("Saliency maps")
        rep.add_images(shown, [f"real {i}" for i in range(len(shown))], cell_px=120)
    rep.save(path)
    console.print(f"wrote [bold]{path}[/]")


@app.command("study")
def study_command(
    trials: Path = typer.Option(..., "--trials", help="Trials CSV: the trial record, the study's trials export, or any long table (one row per answer)."),
    answer_scale: Optional[str] = typer.Option(None, "--answer-scale", help="binary, likert5 or LOW-HIGH (e.g. 1-7); default: binary or 1-5 from the answers."),
    real_end: str = typer.Option("high", "--real-end", help="Which end of a rating scale means real: high or low."),
    image_table: Optional[Path] = typer.Option(None, "--image-table", help="CSV with image, synthetic (1/0) and source: the truth per image."),
    exclude_column: Optional[str] = typer.Option(None, "--exclude-column", help="Leave out every participant marked 1/true in this column (e.g. outlier)."),
    method: str = typer.Option("bootstrap", "--method", help="bootstrap (participants x images) or wilson."),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap replicates."),
    confidence: float = typer.Option(0.95, "--confidence", help="Nominal coverage of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the rates as JSON."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write an HTML report with plots."),
) -> None:
    """Rate of "called real" per source, fool rate and HYPE-infinity error rate per generator
    version, with confidence intervals."""
    from gazetune.evaluate.human import called_real, read_trials_csv, study_rates

    if method not in ("bootstrap", "wilson"):
        _fail(f"--method must be bootstrap or wilson; got {method!r}")
    if real_end not in ("high", "low"):
        _fail(f"--real-end must be high or low; got {real_end!r}")
    try:
        records = read_trials_csv(trials, answer_scale, real_end, image_table=image_table,  # type: ignore[arg-type]
                                  exclude_column=exclude_column)
        console.print(records.summary())
        with console.status("bootstrapping confidence intervals"):
            sources = called_real(records, method=method, n_boot=n_boot, confidence=confidence, seed=seed)  # type: ignore[arg-type]
            rows = study_rates(records, method=method, n_boot=n_boot, confidence=confidence, seed=seed)  # type: ignore[arg-type]
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    pct = f"{confidence:.0%}"
    per_source = Table(title=f"called real per source ({method} {pct} CI; undecided answers left out)")
    for col, just in (("source", "left"), ("answers", "right"), (f"called real [{pct} CI]", "right"),
                      ("undecided", "right"), ("median RT (ms)", "right")):
        per_source.add_column(col, justify=just)  # type: ignore[arg-type]
    for src in sources:
        per_source.add_row(src.source, str(src.called_real.n), str(src.called_real), str(src.n_undecided),
                           "–" if not np.isfinite(src.median_rt_ms) else f"{src.median_rt_ms:.0f}")
    console.print(per_source)
    table = Table(title=f"human realism ({method} {pct} CI; {len(records)} trials, "
                        f"{len({t.participant for t in records})} participants)")
    for col, just in (("generator", "left"), ("fake trials", "right"), (f"fool rate [{pct} CI]", "right"),
                      (f"HYPE error rate [{pct} CI]", "right"), ("median RT (ms)", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.generator, str(r.fool.n), str(r.fool), "–" if r.error is None else str(r.error),
                      "–" if not np.isfinite(r.median_rt_ms) else f"{r.median_rt_ms:.0f}")
    console.print(table)
    console.print("fool rate = synthetic images called real; HYPE error = wrong answers on real + synthetic (0.5 = chance).")
    if json_out:
        _write_json(json_out, {"trials": str(trials), "method": method, "confidence": confidence,
                               "scale": {"name": records.scale.name, "real_end": records.scale.real_end},
                               "dropped": records.dropped, "excluded_participants": len(records.excluded),
                               "sources": [r.as_dict() for r in sources], "generators": [r.as_dict() for r in rows]})
    if report:
        from gazetune.evaluate.report import HtmlReport, estimates_figure

        rep = HtmlReport("Real-vs-fake study", subtitle=str(trials))
        rep.add_heading("Rates per generator version")
        rep.add_table([[r.generator, r.fool.n, r.fool, r.error, r.median_rt_ms] for r in rows],
                      header=["generator", "fake trials", "fool rate", "HYPE error rate", "median RT (ms)"],
                      caption=f"{method} {pct} confidence intervals")
        rep.add_figure(estimates_figure({r.generator: r.fool for r in rows}, ylabel="fool rate", reference=0.5),
                       caption="Share of synthetic images called real.")
        errs = {r.generator: r.error for r in rows if r.error is not None}
        if errs:
            rep.add_figure(estimates_figure(errs, ylabel="HYPE error rate", reference=0.5),
                           caption="Wrong answers on real and synthetic images together; 0.5 = people cannot tell.")
        rep.save(report)
        console.print(f"wrote [bold]{report}[/]")
