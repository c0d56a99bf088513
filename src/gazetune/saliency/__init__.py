"""The saliency model M_saliency (patent eq 4-8): network, losses, metrics, baselines, training.

* :mod:`~gazetune.saliency.model`: :class:`SaliencyUNet` (eq 4) and safetensors checkpoints.
* :mod:`~gazetune.saliency.losses`: BCE (eq 5-6), centre weights (eq 8), weighted BCE (eq 7),
  KL divergence (Gatys et al. eq 3), ``1 - CC``.
* :mod:`~gazetune.saliency.metrics`: AUC-Judd, shuffled AUC, NSS, CC, SIM, KLD, information gain
  (pysaliency's definitions).
* :mod:`~gazetune.saliency.baselines`: centre bias and leave-one-observer-out maps.
* :mod:`~gazetune.saliency.train`: data loading at a working resolution, training, prediction,
  evaluation; :mod:`~gazetune.saliency.cli` the ``gazetune saliency`` commands.
"""

from gazetune.saliency.baselines import gaussian_center_bias, leave_one_out_maps, mean_map_center_bias
from gazetune.saliency.losses import bce_loss, cc_loss, center_weight, kl_loss, weighted_bce_loss
from gazetune.saliency.metrics import auc_judd, cc, information_gain, kld, nss, shuffled_auc, sim
from gazetune.saliency.model import SaliencyUNet, load_saliency_model, save_saliency_model
from gazetune.saliency.train import (
    FixationDataset,
    SaliencyTrainConfig,
    evaluate_saliency,
    load_fixation_dataset,
    predict_maps,
    split_names,
    train_saliency,
)

__all__ = [
    "FixationDataset",
    "SaliencyTrainConfig",
    "SaliencyUNet",
    "auc_judd",
    "bce_loss",
    "cc",
    "cc_loss",
    "center_weight",
    "evaluate_saliency",
    "gaussian_center_bias",
    "information_gain",
    "kl_loss",
    "kld",
    "leave_one_out_maps",
    "load_fixation_dataset",
    "load_saliency_model",
    "mean_map_center_bias",
    "nss",
    "predict_maps",
    "save_saliency_model",
    "shuffled_auc",
    "sim",
    "split_names",
    "train_saliency",
    "weighted_bce_loss",
]
