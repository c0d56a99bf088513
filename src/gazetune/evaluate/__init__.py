"""Measure realism: image-set distances (SWD, C2ST, FID, KID and their salient-region variants),
human fool rate and HYPE-infinity error rate with confidence intervals, and HTML reports.

Names are imported lazily so that ``gazetune --help`` does not load PyTorch.

* :mod:`gazetune.evaluate.human`: :class:`Trial`, :class:`RateEstimate`, :func:`fool_rate`,
  :func:`error_rate`, :func:`study_rates`, :func:`two_way_bootstrap`, :func:`wilson_interval`,
  :func:`read_trials_csv`, :func:`write_trials_csv`.
* :mod:`gazetune.evaluate.distances`: :func:`swd`, :func:`c2st`, :func:`c2st_features`, :func:`fid`,
  :func:`kid`, :func:`frechet_distance`, :func:`kernel_distance`, :func:`salient_crops`,
  :func:`laplacian_pyramid`.
* :mod:`gazetune.evaluate.inception`: :func:`inception_features` (optional extra ``fid``).
* :mod:`gazetune.evaluate.suite`: :func:`evaluate_images`, :func:`sample_generator`, :data:`METRICS`.
* :mod:`gazetune.evaluate.report`: :class:`HtmlReport`, :func:`rate_figure`,
  :func:`estimates_figure`, :func:`map_overlay`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **dict.fromkeys(("Trial", "RateEstimate", "GeneratorRates", "fool_rate", "error_rate", "study_rates",
                     "two_way_bootstrap", "wilson_interval", "read_trials_csv", "write_trials_csv"), "human"),
    **dict.fromkeys(("swd", "c2st", "c2st_features", "fid", "kid", "frechet_distance", "kernel_distance",
                     "salient_crops", "laplacian_pyramid", "SWDResult", "C2STResult"), "distances"),
    **dict.fromkeys(("inception_features", "InceptionUnavailable"), "inception"),
    **dict.fromkeys(("evaluate_images", "sample_generator", "append_jsonl", "METRICS"), "suite"),
    **dict.fromkeys(("HtmlReport", "rate_figure", "estimates_figure", "map_overlay"), "report"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"gazetune.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'gazetune.evaluate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
