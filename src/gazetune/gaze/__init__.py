"""Gaze processing: raw samples -> fixations (eq 3) -> heatmaps and scanpaths (¶80-81)."""

from gazetune.gaze.fixation_table import FixationTable, read_fixation_table, write_fixation_table
from gazetune.gaze.heatmap import heatmap, pooled_heatmap

__all__ = ["FixationTable", "heatmap", "pooled_heatmap", "read_fixation_table", "write_fixation_table"]
