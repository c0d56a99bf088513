"""Gaze processing: raw samples -> fixations (eq 3) -> heatmaps and scanpaths (¶80-81).

Import paths follow the data flow: :mod:`~gazetune.gaze.importers` (files -> samples),
:mod:`~gazetune.gaze.longtable` (long tables of online studies -> samples per trial),
:mod:`~gazetune.gaze.samples` (validation, resampling), :mod:`~gazetune.gaze.geometry`
(pixels <-> degrees), :mod:`~gazetune.gaze.fixations` (pymovements I-VT / I-DT, I2MC; default
by gaze source), :mod:`~gazetune.gaze.simulate` (webcam-like recordings with known fixations),
:mod:`~gazetune.gaze.heatmap`, :mod:`~gazetune.gaze.scanpath` and :mod:`~gazetune.gaze.overlay`.
"""

from gazetune.gaze.fixation_table import FixationTable, read_fixation_table, write_fixation_table
from gazetune.gaze.fixations import DEFAULT_METHOD, Fixations, default_method, detect_fixations
from gazetune.gaze.geometry import ScreenGeometry
from gazetune.gaze.heatmap import heatmap, pooled_heatmap
from gazetune.gaze.importers import read_eyelink_asc, read_gaze_csv, read_pupil_csv, read_samples, read_tobii_tsv
from gazetune.gaze.longtable import PRESETS, TableMapping, import_long_table, make_mapping, read_long_table
from gazetune.gaze.overlay import heatmap_overlay, save_png, scanpath_overlay
from gazetune.gaze.samples import (
    GazeSamples,
    TrialTooShortError,
    ValidationReport,
    image_to_screen,
    resample_samples,
    screen_to_image,
    validate_samples,
)
from gazetune.gaze.scanpath import Scanpath, scanpath, scanpath_vector

__all__ = [
    "DEFAULT_METHOD",
    "PRESETS",
    "TableMapping",
    "default_method",
    "import_long_table",
    "make_mapping",
    "read_long_table",
    "FixationTable",
    "Fixations",
    "GazeSamples",
    "Scanpath",
    "ScreenGeometry",
    "TrialTooShortError",
    "ValidationReport",
    "detect_fixations",
    "heatmap",
    "heatmap_overlay",
    "image_to_screen",
    "pooled_heatmap",
    "read_eyelink_asc",
    "read_fixation_table",
    "read_gaze_csv",
    "read_pupil_csv",
    "read_samples",
    "read_tobii_tsv",
    "resample_samples",
    "save_png",
    "scanpath",
    "scanpath_overlay",
    "scanpath_vector",
    "screen_to_image",
    "validate_samples",
    "write_fixation_table",
]
