"""Refine the outputs of a generator that cannot be tuned (SimGAN refiner, gaze-weighted)."""

from gazetune.refine.losses import local_discriminator_loss, patch_weights, refiner_adversarial_loss, self_regularization_loss
from gazetune.refine.model import LocalDiscriminator, Refiner
from gazetune.refine.train import RefineConfig, apply_refiner, load_refiner, refine_images, train_refiner

__all__ = [
    "LocalDiscriminator",
    "RefineConfig",
    "Refiner",
    "apply_refiner",
    "load_refiner",
    "local_discriminator_loss",
    "patch_weights",
    "refine_images",
    "refiner_adversarial_loss",
    "self_regularization_loss",
    "train_refiner",
]
