"""``gazetune gaze maps|fixations|import``: fixation tables -> heatmaps and overlays; raw samples ->
fixation table; long tables of online studies (WebGazer/jsPsych, Gorilla, Labvanced) -> fixation
table.

``maps`` reads a fixation table (``image, subject, index, x, y, duration_ms``) and an image
folder and writes, per image, the heatmap (pooled over observers by default, ¶58) as ``.npy`` or
``.npz`` and a PNG overlay, plus ``maps.json`` (sigma, geometry, counts, images skipped).
``fixations`` reads one recording (EyeLink ASC, Tobii TSV, Pupil Labs CSV, generic CSV),
validates it, detects fixations with pymovements and writes (or appends to) a fixation table.
``import`` reads a long table of many participants and trials (:mod:`gazetune.gaze.longtable`)
and writes the fixation table of all of it.

:func:`run_maps` and :func:`run_fixations` are the plain functions behind the commands.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Annotated, Optional

import numpy as np
import typer
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gazetune.atomic import atomic_write
from gazetune.cli_options import renamed
from gazetune.gaze.fixation_table import FixationTable, read_fixation_table, write_fixation_table
from gazetune.gaze.fixations import detect_fixations
from gazetune.gaze.geometry import ScreenGeometry
from gazetune.gaze.heatmap import heatmap, pooled_heatmap
from gazetune.gaze.importers import FORMATS, read_samples
from gazetune.gaze.longtable import COLUMN_KEYS, PRESETS, import_long_table, load_mapping, make_mapping
from gazetune.gaze.overlay import heatmap_overlay, save_png, scanpath_overlay
from gazetune.gaze.samples import validate_samples

app = typer.Typer(no_args_is_help=True, help="Gaze samples -> fixations -> heatmaps, scanpaths, overlays.")
console = Console(stderr=True, soft_wrap=True)


# ----------------------------------------------------------------------------- option parsing
def parse_pair(text: str, what: str, cast=float) -> tuple:
    """``"1920x1080"`` (or ``"1920,1080"``) -> ``(1920, 1080)``."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        vals = tuple(cast(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 2 or not all(v > 0 for v in vals):
        raise typer.BadParameter(f"{what} must be two positive numbers like 1920x1080; got {text!r}")
    return vals


def parse_rect(text: str) -> tuple[float, float, float, float]:
    """``"560,240,800,600"`` -> ``(left, top, width, height)``."""
    try:
        vals = tuple(float(p) for p in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise typer.BadParameter(f"--image-rect must be LEFT,TOP,WIDTH,HEIGHT in screen pixels; got {text!r}")
    return vals  # type: ignore[return-value]


ScreenPx = Annotated[str, typer.Option(help="Screen resolution WxH in pixels.")]
ScreenCm = Annotated[str, typer.Option(help="Visible screen size WxH in cm.")]
DistanceCm = Annotated[float, typer.Option(help="Eye-to-screen distance in cm.")]


def make_geometry(screen_px: str, screen_cm: str, distance_cm: float) -> ScreenGeometry:
    w_px, h_px = parse_pair(screen_px, "--screen-px", int)
    w_cm, h_cm = parse_pair(screen_cm, "--screen-cm")
    try:
        return ScreenGeometry(w_px, h_px, w_cm, h_cm, distance_cm)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )


def _safe_stem(name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"image name {name!r} in the fixation table is not a safe relative path")
    return p.with_suffix("")


def _for_viewing(rgb: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Small images (64x64 faces) are enlarged (nearest neighbour) so overlays stay readable."""
    h, w = rgb.shape[:2]
    k = max(1, -(-min_side // max(1, min(h, w))))
    return rgb if k == 1 else np.asarray(Image.fromarray(rgb).resize((w * k, h * k), Image.NEAREST))


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "_"


def _save_array(path: Path, fmt: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``.npy`` (single map) or ``.npz`` atomically."""
    with atomic_write(path, "wb") as fh:
        if fmt == "npy":
            np.save(fh, next(iter(arrays.values())))
        else:
            np.savez_compressed(fh, **arrays)
    return path


# ------------------------------------------------------------------------------------- maps
def run_maps(
    fixations: Path,
    images: Path,
    out: Path,
    sigma: Optional[float] = None,
    sigma_deg: float = 1.0,
    geometry: Optional[ScreenGeometry] = None,
    display_width: Optional[float] = None,
    pooled: bool = True,
    normalize: str = "max",
    fmt: str = "npy",
    overlays: bool = True,
    limit: Optional[int] = None,
) -> dict:
    """Write heatmaps (and overlays) for every image of a fixation table found in ``images``.

    ``sigma`` (image pixels) overrides ``sigma_deg`` degrees converted with ``geometry`` for an
    image shown ``display_width`` screen pixels wide (default: its own width).  Pooled maps go to
    ``out/maps/<image>.npy`` (``.npz`` with key ``map``); per-observer maps to
    ``out/maps/<image>.npz`` with one array per subject.  Overlays: ``out/overlays/<image>.png``
    (heatmap) and, per observer, ``out/overlays/<image>/<subject>.png`` (scanpath over the
    observer's heatmap); images smaller than 256 px are enlarged for the overlays.  Returns the summary also written to ``out/maps.json``.
    """
    if fmt not in ("npy", "npz"):
        raise ValueError(f"format must be 'npy' or 'npz'; got {fmt!r}")
    if not pooled and fmt == "npy":
        fmt = "npz"  # several maps per image
    if not images.is_dir():
        raise FileNotFoundError(f"image folder not found: {images}")
    geometry = geometry or ScreenGeometry()
    table = read_fixation_table(fixations)
    names = table.images()[: limit if limit else None]
    missing: list[str] = []
    written = 0
    sigmas: dict[str, float] = {}
    with _progress() as progress:
        task = progress.add_task("maps", total=len(names))
        for name in names:
            progress.advance(task)
            img_path = images / name
            if not img_path.is_file():
                missing.append(name)
                continue
            with Image.open(img_path) as im:
                rgb = np.asarray(im.convert("RGB"))
            h, w = rgb.shape[:2]
            view = _for_viewing(rgb)
            if sigma is not None:
                s = float(sigma)
            else:
                disp = (display_width, display_width * h / w) if display_width else None
                s = sigma_deg * geometry.image_px_per_deg((w, h), disp)
            sigmas[name] = s
            per_subject = table.for_image(name)
            stem = _safe_stem(name)
            if pooled:
                m = pooled_heatmap(list(per_subject.values()), (h, w), s, normalize=normalize)  # type: ignore[arg-type]
                _save_array(out / "maps" / f"{stem}.{fmt}", fmt, {"map": m})
                if overlays:
                    save_png(heatmap_overlay(view, m), out / "overlays" / f"{stem}.png")
            else:
                maps = {subj: heatmap(f, (h, w), s, normalize=normalize) for subj, f in per_subject.items()}  # type: ignore[arg-type]
                _save_array(out / "maps" / f"{stem}.npz", "npz", maps)
                if overlays:
                    for subj, f in per_subject.items():
                        both = scanpath_overlay(heatmap_overlay(view, maps[subj]), f, image_size=(w, h))
                        save_png(both, out / "overlays" / str(stem) / f"{_file_safe(subj)}.png")
            written += 1
    summary = {
        "fixations": str(fixations),
        "images": str(images),
        "n_images_in_table": len(names),
        "n_written": written,
        "n_missing": len(missing),
        "missing": missing,
        "pooled": pooled,
        "normalize": normalize,
        "format": fmt,
        "sigma_px": sigma,
        "sigma_deg": None if sigma is not None else sigma_deg,
        "sigma_px_per_image": sigmas if len(set(sigmas.values())) > 1 else next(iter(sigmas.values()), None),
        "geometry": asdict(geometry),
        "display_width": display_width,
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "maps.json", "w") as fh:
        json.dump(summary, fh, indent=2)
    return summary


@app.command("maps", cls=renamed({"--sigma": "--sigma-px"}))
def maps_command(
    fixations: Annotated[Path, typer.Option(help="Fixation table CSV (image, subject, index, x, y, duration_ms).")],
    images: Annotated[Path, typer.Option(help="Folder with the images named in the table.")],
    out: Annotated[Path, typer.Option(help="Output folder (maps/, overlays/, maps.json).")],
    sigma_px: Annotated[Optional[float], typer.Option(help="Gaussian sigma in image pixels (overrides --sigma-deg).")] = None,
    sigma_deg: Annotated[float, typer.Option(help="Gaussian sigma in degrees of visual angle.")] = 1.0,
    screen_px: ScreenPx = "1920x1080",
    screen_cm: ScreenCm = "53.1x29.9",
    distance_cm: DistanceCm = 60.0,
    display_width: Annotated[
        Optional[float], typer.Option(help="On-screen width of the images in screen pixels (default: native).")
    ] = None,
    pooled: Annotated[bool, typer.Option("--pooled/--per-observer", help="One map per image, or one per observer.")] = True,
    normalize: Annotated[str, typer.Option(help="max (BCE targets, [0,1]) | sum (density) | none.")] = "max",
    format: Annotated[str, typer.Option(help="npy | npz.")] = "npy",
    overlays: Annotated[bool, typer.Option("--overlays/--no-overlays", help="Write PNG overlays.")] = True,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N images (sorted by name).")] = None,
) -> None:
    """Heatmaps (eq 3, ¶80) and overlays for every image of a fixation table."""
    if normalize not in ("max", "sum", "none"):
        raise typer.BadParameter(f"--normalize must be max, sum or none; got {normalize!r}")
    geometry = make_geometry(screen_px, screen_cm, distance_cm)
    try:
        summary = run_maps(
            fixations, images, out, sigma_px, sigma_deg, geometry, display_width, pooled, normalize, format, overlays, limit
        )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"wrote {summary['n_written']} map(s) to {out / 'maps'}")
    if summary["n_missing"]:
        shown = ", ".join(summary["missing"][:5])
        console.print(f"[yellow]skipped {summary['n_missing']} image(s) not found in {images}:[/yellow] {shown}")


# -------------------------------------------------------------------------------- fixations
def run_fixations(
    samples_path: Path,
    fmt: str,
    out: Path,
    image: Optional[str] = None,
    subject: Optional[str] = None,
    append: bool = False,
    read_kwargs: Optional[dict] = None,
    validate_kwargs: Optional[dict] = None,
    detect_kwargs: Optional[dict] = None,
) -> dict:
    """Read, validate, detect; write the fixations as ``(image, subject)`` to the table ``out``.

    Returns a summary with the validation report and the number of fixations.
    """
    samples = read_samples(samples_path, fmt, **(read_kwargs or {}))
    clean, report = validate_samples(samples, **(validate_kwargs or {}))
    fix = detect_fixations(clean, **(detect_kwargs or {}))
    table = read_fixation_table(out) if append and out.exists() else FixationTable()
    image = image or samples_path.stem
    subject = subject or samples_path.stem
    table.add(image, subject, fix.as_array())
    write_fixation_table(table, out)
    return {
        "image": image,
        "subject": subject,
        "n_fixations": len(fix),
        "mean_duration_ms": float(fix.duration_ms.mean()) if len(fix) else 0.0,
        "validation": report.as_dict(),
        "import": {k: v for k, v in samples.meta.items() if k != "file"},
    }


@app.command("fixations")
def fixations_command(
    samples: Annotated[Path, typer.Option(help="Recording to read.")],
    format: Annotated[str, typer.Option(help="asc | tobii | pupil | csv.")],
    out: Annotated[Path, typer.Option(help="Fixation table CSV to write.")],
    image: Annotated[Optional[str], typer.Option(help="Image name for the table (default: file stem).")] = None,
    subject: Annotated[Optional[str], typer.Option(help="Subject id for the table (default: file stem).")] = None,
    append: Annotated[bool, typer.Option(help="Add to an existing table instead of replacing it.")] = False,
    image_rect: Annotated[
        Optional[str], typer.Option(help="LEFT,TOP,WIDTH,HEIGHT of the image on screen (screen px).")
    ] = None,
    image_size: Annotated[Optional[str], typer.Option(help="WxH of the image in its own pixels.")] = None,
    frame_size: Annotated[Optional[str], typer.Option(help="pupil: WxH of the frame norm_pos refers to.")] = None,
    media: Annotated[Optional[str], typer.Option(help="tobii: keep rows of this Presented Stimulus name.")] = None,
    method: Annotated[str, typer.Option(help="auto (by source: i2mc for webcam, ivt otherwise) | ivt | idt | i2mc.")] = "auto",
    velocity_threshold: Annotated[float, typer.Option(help="I-VT threshold, deg/s.")] = 30.0,
    dispersion_threshold: Annotated[float, typer.Option(help="I-DT threshold, deg.")] = 1.0,
    min_duration: Annotated[float, typer.Option(help="Shortest fixation, ms.")] = 100.0,
    resample_hz: Annotated[Optional[float], typer.Option(help="Resample to this rate first (default: median rate).")] = None,
    max_gap_ms: Annotated[float, typer.Option(help="Longest track loss interpolated across, ms.")] = 75.0,
    out_of_image: Annotated[str, typer.Option(help="nan | clip | keep for samples outside the image.")] = "nan",
    min_confidence: Annotated[Optional[float], typer.Option(help="Drop samples below this confidence.")] = None,
    min_trial_ms: Annotated[float, typer.Option(help="Shortest usable recording, ms.")] = 200.0,
    source: Annotated[str, typer.Option(help="Gaze source: tracker | webcam | mouse (picks the auto method).")] = "tracker",
    screen_px: ScreenPx = "1920x1080",
    screen_cm: ScreenCm = "53.1x29.9",
    distance_cm: DistanceCm = 60.0,
) -> None:
    """Detect fixations (eq 3) in one recording and write them as a fixation table."""
    if format not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {sorted(FORMATS)}; got {format!r}")
    read_kwargs: dict = {}
    if image_rect:
        read_kwargs["image_rect"] = parse_rect(image_rect)
    if image_size:
        read_kwargs["image_size"] = parse_pair(image_size, "--image-size", int)
    if format == "pupil":
        if not frame_size:
            raise typer.BadParameter("--frame-size WxH is needed for Pupil Labs files")
        read_kwargs["frame_size"] = parse_pair(frame_size, "--frame-size", int)
    if media:
        read_kwargs["media"] = media
    if format == "csv":
        read_kwargs["source"] = source
    elif source != "tracker":
        raise typer.BadParameter(f"--source applies to csv files; {format} files come from lab trackers")
    validate_kwargs = {"out_of_image": out_of_image, "min_confidence": min_confidence, "min_duration_ms": min_trial_ms}
    detect_kwargs = {
        "geometry": make_geometry(screen_px, screen_cm, distance_cm),
        "method": method,
        "velocity_threshold_deg_s": velocity_threshold,
        "dispersion_threshold_deg": dispersion_threshold,
        "min_duration_ms": min_duration,
        "resample_hz": resample_hz,
        "max_gap_ms": max_gap_ms,
    }
    try:
        summary = run_fixations(samples, format, out, image, subject, append, read_kwargs, validate_kwargs, detect_kwargs)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    v = summary["validation"]
    console.print(
        f"{summary['n_fixations']} fixation(s), mean {summary['mean_duration_ms']:.0f} ms -> {out}\n"
        f"samples {v['n_samples']}: lost {v['n_lost']} in {v['n_lost_runs']} run(s) (longest gap "
        f"{v['longest_gap_ms']:.0f} ms), low confidence {v['n_low_confidence']}, "
        f"out of image {v['n_out_of_image']} ({v['out_of_image']}); valid {v['n_valid']}"
    )


# ----------------------------------------------------------------------------------- import
def _key_values(items: list[str], what: str) -> dict[str, str]:
    """``["x=x_pred", "trial=a,b"]`` -> ``{"x": "x_pred", "trial": "a,b"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{what} must be KEY=VALUE; got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _filters(items: list[str], what: str) -> dict[str, list[str]]:
    """``["type=prediction", "type=zone"]`` -> ``{"type": ["prediction", "zone"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{what} must be COLUMN=VALUE; got {item!r}")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@app.command("import")
def import_command(
    table: Annotated[Path, typer.Option(help="Long gaze table (CSV/TSV) of many participants and trials.")],
    out: Annotated[Path, typer.Option(help="Fixation table CSV to write.")],
    preset: Annotated[Optional[str], typer.Option(help=f"Column names of a platform: {' | '.join(sorted(PRESETS))}.")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="Mapping file (.toml or .json; may name a preset).")] = None,
    column: Annotated[
        Optional[list[str]], typer.Option(help=f"KEY=COLUMN, repeatable; keys: {', '.join(COLUMN_KEYS)} (trial: a,b).")
    ] = None,
    keep: Annotated[Optional[list[str]], typer.Option(help="COLUMN=VALUE: only such rows are samples (repeatable).")] = None,
    box_rows: Annotated[Optional[list[str]], typer.Option(help="COLUMN=VALUE: rows that carry the image box (repeatable).")] = None,
    box_target: Annotated[Optional[str], typer.Option(help="Target in the box JSON column that is the image.")] = None,
    time_unit: Annotated[Optional[str], typer.Option(help="auto | ms | s | us.")] = None,
    y_origin: Annotated[Optional[str], typer.Option(help="top | bottom: where y = 0 is on screen.")] = None,
    image_rect: Annotated[
        Optional[str], typer.Option(help="LEFT,TOP,WIDTH,HEIGHT of the image on screen for the whole study (screen px).")
    ] = None,
    image_size: Annotated[Optional[str], typer.Option(help="WxH of the images in their own pixels, whole study.")] = None,
    images: Annotated[Optional[Path], typer.Option(help="Folder of the images, to read their sizes.")] = None,
    source: Annotated[Optional[str], typer.Option(help="Gaze source (default webcam).")] = None,
    method: Annotated[str, typer.Option(help="auto (by source: i2mc for webcam) | ivt | idt | i2mc.")] = "auto",
    velocity_threshold: Annotated[float, typer.Option(help="I-VT threshold, deg/s.")] = 30.0,
    dispersion_threshold: Annotated[float, typer.Option(help="I-DT threshold, deg (5 suits webcam gaze).")] = 1.0,
    min_duration: Annotated[float, typer.Option(help="Shortest fixation, ms.")] = 100.0,
    out_of_image: Annotated[
        str, typer.Option(help="keep | nan | clip for samples outside the image (webcam error often exceeds it).")
    ] = "keep",
    min_trial_ms: Annotated[float, typer.Option(help="Shortest usable trial, ms.")] = 200.0,
    summary: Annotated[Optional[Path], typer.Option(help="Write the import summary (JSON) here.")] = None,
    screen_px: ScreenPx = "1920x1080",
    screen_cm: ScreenCm = "53.1x29.9",
    distance_cm: DistanceCm = 60.0,
) -> None:
    """Fixation table (eq 3) for every trial of a long table from WebGazer/jsPsych, Gorilla, Labvanced."""
    overrides: dict = {}
    try:
        if mapping is not None:
            file_preset, overrides = load_mapping(mapping)
            preset = preset or file_preset
        cols = {**overrides.get("columns", {}), **_key_values(column or [], "--column")}
        if "trial" in cols and isinstance(cols["trial"], str):
            cols["trial"] = [c.strip() for c in cols["trial"].split(",") if c.strip()]
        if cols:
            overrides["columns"] = cols
        if keep:
            overrides["keep"] = {**overrides.get("keep", {}), **_filters(keep, "--keep")}
        if box_rows:
            overrides["box_rows"] = _filters(box_rows, "--box-rows")
        for key, value in (("box_json_target", box_target), ("time_unit", time_unit), ("y_origin", y_origin), ("source", source)):
            if value is not None:
                overrides[key] = value
        if image_rect:
            overrides["image_rect"] = parse_rect(image_rect)
        if image_size:
            overrides["image_size"] = parse_pair(image_size, "--image-size", int)
        table_mapping = make_mapping(preset, overrides)
        result = import_long_table(
            table,
            table_mapping,
            out,
            images=images,
            geometry=make_geometry(screen_px, screen_cm, distance_cm),
            validate_kwargs={"out_of_image": out_of_image, "min_duration_ms": min_trial_ms},
            detect_kwargs={
                "method": method,
                "min_duration_ms": min_duration,
                "velocity_threshold_deg_s": velocity_threshold,
                "dispersion_threshold_deg": dispersion_threshold,
            },
        )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if summary is not None:
        with atomic_write(summary, "w") as fh:
            json.dump(result, fh, indent=2)
    console.print(
        f"{result['n_fixations']} fixation(s) from {result['n_trials_written']} of {result['n_trials']} trial(s) of "
        f"{result['n_participants']} participant(s) -> {out}\n"
        f"rows {result['n_rows']}: samples {result['n_sample_rows']}, box rows {result['n_box_rows']}, other "
        f"{result['n_other_rows']}; time in {result['time_unit']}; method {result['method']}; reordered "
        f"{result['n_reordered']}, duplicate time stamps dropped {result['n_duplicate_times']}; repeated views "
        f"{result['n_repeated_views']}"
    )
    for s in result["skipped"][:10]:
        console.print(f"[yellow]skipped[/yellow] {s['trial']} (line {s['line']}): {s['reason']}")
    if len(result["skipped"]) > 10:
        console.print(f"[yellow]... and {len(result['skipped']) - 10} more skipped trial(s)[/yellow]")
