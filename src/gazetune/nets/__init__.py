"""Networks: generator(s), U-Net discriminator, human-response model (FIG. 5)."""

from gazetune.nets.discriminator import UNetDiscriminator
from gazetune.nets.generator import DCGANGenerator, load_generator
from gazetune.nets.latent import latent_from_seed, latents_from_seeds

__all__ = ["DCGANGenerator", "UNetDiscriminator", "latent_from_seed", "latents_from_seeds", "load_generator"]
