"""Generator and U-Net discriminator: shapes, ranges, odd sizes, loading user generators."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gazetune.nets import DCGANGenerator, UNetDiscriminator, latents_from_seeds, load_generator
from gazetune.nets.generator import check_generator, stage_sizes


@pytest.mark.parametrize("size", [25, 28, 32])
def test_generator_any_size_in_range(size):
    torch.manual_seed(0)
    g = DCGANGenerator(z_dim=8, size=size, channels=3, width=4)
    x = g(torch.randn(3, 8) * 10)  # large latents: tanh keeps [-1, 1]
    assert x.shape == (3, 3, size, size)
    assert float(x.abs().max()) <= 1.0
    assert g.z_dim == 8


def test_stage_sizes_halve_with_ceiling():
    assert stage_sizes(25) == [4, 7, 13, 25]
    assert stage_sizes(64) == [4, 8, 16, 32, 64]
    assert stage_sizes(4) == [4]
    with pytest.raises(ValueError, match="positive"):
        stage_sizes(0)


def test_generator_image_of_a_seed_does_not_depend_on_batch():
    # pixel norm instead of batch norm: (version, seed) names one image
    torch.manual_seed(0)
    g = DCGANGenerator(z_dim=8, size=25, channels=1, width=4).train()
    z = latents_from_seeds([3, 5, 9], 8)
    alone = g(z[1:2])
    together = g(z)[1:2]
    torch.testing.assert_close(alone, together)


def test_generator_rejects_bad_latents_and_args():
    g = DCGANGenerator(z_dim=8, size=32, channels=1, width=4)
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        g(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="channels"):
        DCGANGenerator(channels=2)


@pytest.mark.parametrize("size", [25, 32])
def test_unet_discriminator_shapes(size):
    torch.manual_seed(0)
    d = UNetDiscriminator(size=size, channels=3, width=4, spectral=(size == 32))
    img, pix = d(torch.randn(2, 3, size, size))
    assert img.shape == (2,)
    assert pix.shape == (2, 1, size, size)
    with pytest.raises(ValueError, match="shape"):
        d(torch.randn(2, 1, size, size))


def test_unet_pixel_logits_are_local():
    # changing one corner of a textured input must change pixel logits near it more than far away;
    # much more without normalisation (group normalisation couples pixels through the image's
    # statistics: about 5x measured, see gazetune.nets.discriminator)
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y = x.clone()
    y[..., :4, :4] = 1.0
    for norm, ratio in (("group", 3.0), ("none", 50.0)):
        torch.manual_seed(0)
        d = UNetDiscriminator(size=32, channels=1, width=4, norm=norm)
        with torch.no_grad():
            diff = (d(y)[1] - d(x)[1]).abs()[0, 0]
        assert float(diff[:4, :4].mean()) > ratio * float(diff[-4:, -4:].mean()), norm


class TinyG(nn.Module):
    def __init__(self):
        super().__init__()
        self.z_dim = 4
        self.lin = nn.Linear(4, 2 * 5 * 5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(z)).view(-1, 2, 5, 5)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_load_torchscript_generator(tmp_path, how):
    torch.manual_seed(0)
    g = TinyG().eval()
    z = latents_from_seeds([0, 1], 4)
    path = tmp_path / "g.pt"
    if how == "script":  # scripting keeps the int attribute z_dim
        torch.jit.save(torch.jit.script(g), str(path))
    else:  # tracing drops attributes: z_dim travels as an extra file
        torch.jit.save(torch.jit.trace(g, z), str(path), _extra_files={"z_dim": "4"})
    loaded = load_generator(path)
    assert check_generator(loaded) == 4
    torch.testing.assert_close(loaded(z), g(z))


def test_load_generator_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "nope.pt")
    m = torch.jit.script(nn.Linear(2, 2))
    torch.jit.save(m, str(tmp_path / "lin.pt"))
    with pytest.raises(TypeError, match="z_dim"):
        load_generator(tmp_path / "lin.pt")
