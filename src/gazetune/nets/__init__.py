"""Networks: generator(s), U-Net discriminator, human-response model (FIG. 5)."""

from gazetune.nets.latent import latent_from_seed, latents_from_seeds

__all__ = ["latent_from_seed", "latents_from_seeds"]
