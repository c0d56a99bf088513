"""A small, self-contained HTML report: headings, text, tables, images, matplotlib figures.

>>> rep = HtmlReport("Run 3")
>>> rep = rep.add_heading("Scores").add_table([["v1", 0.31], ["v2", 0.42]], header=["generator", "fool rate"])
>>> html = rep.to_html()
>>> "<table" in html and "0.420" in html
True

Images are PNGs, embedded as base64 (one file to mail around) or, with ``embed=False``, written
to a folder next to the HTML (``<name>_files/``).  Plots use matplotlib's Agg backend (no display
needed).  :func:`rate_figure` draws a metric per generator version with confidence-interval error
bars; :meth:`HtmlReport.add_images` lays images out in a responsive grid.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gazetune.atomic import atomic_write_bytes, atomic_write_text

_CSS = """
:root { --fg: #1d232b; --muted: #5b6673; --line: #dde2e8; --bg: #ffffff; --soft: #f5f7fa; --accent: #2f6fb0; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: var(--fg);
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 2rem 1.25rem 4rem; background: var(--bg); min-height: 100vh; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 1.5rem; }
h1 { font-size: 1.9rem; margin: 0 0 .25rem; }
.meta { color: var(--muted); font-size: .9rem; margin: 0 0 .75rem; }
h2 { font-size: 1.35rem; margin: 2.2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }
p { margin: .5rem 0 .9rem; max-width: 75ch; }
.table-wrap { overflow-x: auto; margin: .6rem 0 1.2rem; }
table { border-collapse: collapse; font-size: .93rem; font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; color: var(--muted); font-size: .85rem; padding-top: .35rem; text-align: left; }
th, td { padding: .35rem .75rem; border-bottom: 1px solid var(--line); text-align: left; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; }
tbody tr:hover { background: #eef4fb; }
figure { margin: .8rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 4px; }
figure img.pixel { image-rendering: pixelated; }
figcaption { color: var(--muted); font-size: .88rem; margin-top: .35rem; }
.grid { display: grid; gap: .9rem; grid-template-columns: repeat(auto-fill, minmax(var(--cell, 180px), 1fr)); }
.grid figure { margin: 0; }
.grid figure img { width: 100%; }
"""


@dataclass
class _Png:
    data: bytes
    name: str


def to_png_bytes(image: Any) -> bytes:
    """Encode an image array as PNG.

    ``image`` is ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` (``C`` 1, 3 or 4), a torch tensor or
    NumPy array; uint8 is taken as is, floats are read as [-1, 1] when any value is negative and as
    [0, 1] otherwise, and clipped.
    """
    from PIL import Image

    arr = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"image must be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; got shape {arr.shape}")
    if arr.dtype != np.uint8:
        f = arr.astype(np.float64)
        if not np.all(np.isfinite(f)):
            raise ValueError("image contains NaN or infinite values")
        if f.min() < 0:
            f = (f + 1) / 2
        arr = np.round(np.clip(f, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _fmt(v: Any) -> tuple[str, bool]:
    """Cell text and whether it is numeric."""
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else "no"), False
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}", True
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not np.isfinite(f):
            return "–", True
        if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e6):
            return f"{f:.2e}", True
        return f"{f:.3f}", True
    if v is None:
        return "", False
    if hasattr(v, "rate") and hasattr(v, "lo") and hasattr(v, "hi"):  # a RateEstimate
        return f"{v.rate:.3f} [{v.lo:.3f}, {v.hi:.3f}]", True
    return str(v), False


class HtmlReport:
    """Build an HTML page block by block, then :meth:`save` it.

    Parameters
    ----------
    title
        Page title and top heading.
    subtitle
        Optional line under the title (the creation time is added to it).
    embed
        True: images inline as base64 (a single file).  False: PNGs in ``<name>_files/`` beside it.
    """

    def __init__(self, title: str, subtitle: str = "", embed: bool = True) -> None:
        self.title = title
        self.subtitle = subtitle
        self.embed = embed
        self._blocks: list[str | tuple[str, _Png, str, str]] = []
        self._n_images = 0

    # -- content ------------------------------------------------------------------------------
    def add_heading(self, text: str, level: int = 2) -> "HtmlReport":
        """A section heading; ``level`` 2 (section) or 3 (subsection)."""
        if level not in (2, 3, 4):
            raise ValueError(f"heading level must be 2, 3 or 4 (1 is the title); got {level}")
        self._blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def add_text(self, text: str) -> "HtmlReport":
        """Paragraphs of plain text (escaped); blank lines separate paragraphs."""
        for para in str(text).strip().split("\n\n"):
            if para.strip():
                self._blocks.append(f"<p>{html.escape(para.strip())}</p>")
        return self

    def add_html(self, fragment: str) -> "HtmlReport":
        """A raw HTML fragment (not escaped: only for trusted content)."""
        self._blocks.append(fragment)
        return self

    def add_table(
        self,
        rows: Iterable[Sequence[Any]] | Iterable[Mapping[str, Any]],
        header: Sequence[str] | None = None,
        caption: str = "",
    ) -> "HtmlReport":
        """A table.  ``rows`` are sequences (with ``header``) or mappings (their keys make the
        header when it is not given).  Floats are shown with 3 decimals, integers with thousands
        separators, rate estimates as ``rate [lo, hi]``; numbers are right-aligned."""
        rows = list(rows)
        if rows and isinstance(rows[0], Mapping):
            keys = list(header) if header is not None else list(dict.fromkeys(k for r in rows for k in r))  # type: ignore[union-attr]
            header = keys
            rows = [[r.get(k) for k in keys] for r in rows]  # type: ignore[union-attr]
        parts = ['<div class="table-wrap"><table>']
        if caption:
            parts.append(f"<caption>{html.escape(caption)}</caption>")
        if header:
            parts.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr></thead>")
        parts.append("<tbody>")
        for row in rows:
            cells = []
            for v in row:  # type: ignore[union-attr]
                text, numeric = _fmt(v)
                cells.append(f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table></div>")
        self._blocks.append("".join(parts))
        return self

    def _png(self, image: Any) -> _Png:
        self._n_images += 1
        if isinstance(image, (str, os.PathLike)):
            path = Path(image)
            if not path.is_file():
                raise FileNotFoundError(f"image file not found: {path}")
            data = path.read_bytes()
            if not data.startswith(b"\x89PNG"):
                raise ValueError(f"{path} is not a PNG file")
            return _Png(data, f"{self._n_images:03d}_{path.stem}.png")
        return _Png(to_png_bytes(image), f"{self._n_images:03d}.png")

    def add_image(self, image: Any, caption: str = "", width: int | None = None, pixelated: bool = False) -> "HtmlReport":
        """An image: a PNG path, or an array (see :func:`to_png_bytes`).

        ``width`` is the display width in CSS pixels (default: natural size, at most the page);
        ``pixelated`` keeps small images crisp when enlarged.
        """
        style = f' style="width:{int(width)}px"' if width else ""
        cls = ' class="pixel"' if pixelated else ""
        self._blocks.append(("figure", self._png(image), caption, f"{cls}{style}"))
        return self

    def add_images(
        self, images: Sequence[Any], captions: Sequence[str] | None = None, cell_px: int = 180, pixelated: bool = True
    ) -> "HtmlReport":
        """Several images in a responsive grid (cells at least ``cell_px`` wide)."""
        captions = list(captions) if captions is not None else [""] * len(images)
        if len(captions) != len(images):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        self._blocks.append(f'<div class="grid" style="--cell:{int(cell_px)}px">')
        for im, cap in zip(images, captions):
            self._blocks.append(("figure", self._png(im), cap, ' class="pixel"' if pixelated else ""))
        self._blocks.append("</div>")
        return self

    def add_image_grid(self, images: Any, caption: str = "", nrow: int = 8, width: int | None = None) -> "HtmlReport":
        """A grid of ``(N, C, H, W)`` images in [-1, 1] as one picture (see :func:`gazetune.images.image_grid`)."""
        from gazetune.images import image_grid

        return self.add_image(image_grid(images, nrow=nrow), caption=caption, width=width, pixelated=True)

    def add_figure(self, fig: Any, caption: str = "", dpi: int = 110) -> "HtmlReport":
        """A matplotlib figure, rendered to PNG (and closed)."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        self._n_images += 1
        self._blocks.append(("figure", _Png(buf.getvalue(), f"{self._n_images:03d}_figure.png"), caption, ""))
        return self

    # -- output -------------------------------------------------------------------------------
    def to_html(self, files_dir: Path | None = None, files_href: str = "") -> str:
        """The page as a string.  With ``files_dir``, images are written there and linked as
        ``files_href/<name>``; otherwise they are embedded."""
        body = []
        for block in self._blocks:
            if isinstance(block, str):
                body.append(block)
                continue
            _, png, caption, attrs = block
            if files_dir is None:
                src = "data:image/png;base64," + base64.b64encode(png.data).decode("ascii")
            else:
                atomic_write_bytes(files_dir / png.name, png.data)
                src = f"{files_href}/{png.name}"
            cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
            alt = html.escape(caption or png.name, quote=True)
            body.append(f'<figure><img src="{src}" alt="{alt}"{attrs}>{cap}</figure>')
        meta = " · ".join(x for x in (self.subtitle, datetime.now().strftime("%Y-%m-%d %H:%M")) if x)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body><main>"
            f"<header><h1>{html.escape(self.title)}</h1><p class=\"meta\">{html.escape(meta)}</p></header>\n"
            + "\n".join(body)
            + "\n</main></body></html>\n"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page atomically (temporary file + rename) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        files_dir = None
        href = ""
        if not self.embed:
            files_dir = path.parent / f"{path.stem}_files"
            files_dir.mkdir(exist_ok=True)
            href = files_dir.name
        text = self.to_html(files_dir, href)
        atomic_write_text(path, text)
        return path


# ----------------------------------------------------------------------------------------------
# plots


def rate_figure(
    labels: Sequence[str],
    values: Sequence[float],
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
    ylabel: str = "",
    title: str = "",
    reference: float | None = None,
    reference_label: str = "",
) -> Any:
    """Points with confidence-interval error bars, one per label (e.g. generator version).

    Parameters
    ----------
    labels
        x-axis categories, in order.
    values, lo, hi
        Point estimates and interval bounds (same length as ``labels``); no bars when ``lo``/``hi``
        are None.
    ylabel, title
        Axis label and title.
    reference, reference_label
        Optional horizontal line, e.g. 0.5 for chance.

    Returns
    -------
    matplotlib.figure.Figure
        Made with the Agg backend (no display needed); pass it to :meth:`HtmlReport.add_figure`.
    """
    from matplotlib.figure import Figure

    v = np.asarray(values, dtype=float)
    if len(labels) != len(v):
        raise ValueError(f"{len(labels)} labels but {len(v)} values")
    fig = Figure(figsize=(max(3.5, 0.9 * len(labels) + 2), 3.2))
    ax = fig.add_subplot(1, 1, 1)
    xs = np.arange(len(v))
    if lo is not None and hi is not None:
        err = np.vstack([v - np.asarray(lo, float), np.asarray(hi, float) - v])
        ax.errorbar(xs, v, yerr=np.clip(err, 0, None), fmt="o", color="#2f6fb0", ecolor="#7aa3cc", capsize=5, lw=2)
    else:
        ax.plot(xs, v, "o", color="#2f6fb0")
    if reference is not None:
        ax.axhline(reference, color="#999", ls="--", lw=1, label=reference_label or None)
        if reference_label:
            ax.legend(frameon=False, loc="best")
    ax.set_xticks(xs, [str(s) for s in labels])
    ax.set_xlim(-0.6, len(v) - 0.4)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


def estimates_figure(estimates: Mapping[str, Any], ylabel: str = "", title: str = "", reference: float | None = None) -> Any:
    """:func:`rate_figure` from ``{label: RateEstimate}`` (anything with ``rate``, ``lo``, ``hi``)."""
    labels = list(estimates)
    return rate_figure(
        labels, [estimates[k].rate for k in labels], [estimates[k].lo for k in labels],
        [estimates[k].hi for k in labels], ylabel=ylabel, title=title, reference=reference,
        reference_label="chance" if reference == 0.5 else "",
    )


def map_overlay(image: Any, saliency: Any, alpha: float = 0.55) -> np.ndarray:
    """An image with a map drawn over it (``inferno`` colours), as uint8 ``(H, W, 3)``.

    ``image`` is ``(C, H, W)`` or ``(H, W)`` in [-1, 1]; ``saliency`` is a non-negative ``(h, w)``
    map (resized to the image), scaled to its maximum.
    """
    from matplotlib import colormaps
    from PIL import Image

    im = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float64)
    if im.ndim == 3:
        im = np.moveaxis(im, 0, -1)
        im = np.repeat(im, 3, axis=-1) if im.shape[-1] == 1 else im
    else:
        im = np.repeat(im[..., None], 3, axis=-1)
    im = np.clip((im + 1) / 2, 0, 1)
    m = np.asarray(saliency, dtype=np.float64)
    if m.shape != im.shape[:2]:
        m = np.asarray(Image.fromarray(m.astype(np.float32)).resize((im.shape[1], im.shape[0]), Image.BILINEAR))
    peak = m.max()
    m = m / peak if peak > 0 else m
    colour = colormaps["inferno"](m)[..., :3]
    a = alpha * m[..., None]
    return np.round((im * (1 - a) + colour * a) * 255).astype(np.uint8)
