"""A small style-based generator (StyleGAN2-like), readable top to bottom.

``z (N, z_dim) -> image (N, channels, size, size)`` in [-1, 1], the same contract as
:class:`gazetune.nets.generator.DCGANGenerator` (attribute ``z_dim``, ``forward(z)``, ``config()``).

How an image is made
--------------------
1. **Mapping network** ``z -> w``: the latent is scaled to unit RMS, then passes through a few
   fully connected layers (leaky ReLU) into an intermediate latent ``w`` of ``w_dim`` numbers.
   Its layers learn 100x slower than the rest (``lr_mul=0.01``), as in StyleGAN.
2. **Synthesis network**: a learned constant ``s0 x s0`` tensor is refined by one block per
   resolution (``s0, 2 s0, ..., size``; the sizes of :func:`~gazetune.nets.generator.stage_sizes`,
   so any side from 32 to 256 px, powers of two or not).  Each block upsamples (bilinear) and
   applies two **modulated 3x3 convolutions**, each followed by per-pixel noise, a bias and a
   leaky ReLU, and adds its own ``to_image`` output to the upsampled image of the block before
   (the "skip" architecture).  Every convolution has its own copy of ``w`` (``num_ws`` of them).
3. **Modulation and demodulation** (StyleGAN2; the successor of the AdaIN normalisation of
   Seg2Eye/StyleGAN): a learned affine map turns ``w`` into one scale per input channel,
   ``s = A(w)``; the convolution weight becomes ``W'_oi = s_i W_oi``, and the output channel is
   divided by the expected norm ``sqrt(sum_i,k W'_oik^2)``, which normalises the feature
   statistics as AdaIN does but from the weights alone, so no feature map is ever normalised
   (no "droplet" artefacts).  Computed as ``conv(x * s, W) / norm`` - the same numbers as a
   grouped per-sample convolution, and much faster on a CPU.
4. **Style mixing** (training only): with probability ``mixing_prob`` an image's ``w`` is replaced,
   from a random layer onward, by the ``w`` of a second random latent, so neighbouring layers
   cannot rely on sharing one style.
5. **Truncation** ``w = w_avg + psi (w - w_avg)``: ``w_avg`` is a running mean of ``w`` kept during
   training; ``psi < 1`` trades variety for typical images, ``psi = 0`` gives the mean image.

Determinism: which image is "(version, seed)"
---------------------------------------------
In **eval mode** the output is a pure function of ``z`` (and ``psi``): the per-layer noise is a
*fixed* buffer per layer (``noise_const``, drawn once at construction from ``seed`` with a local
``torch.Generator`` and stored in the state dict), there is no mixing, and nothing depends on the
rest of the batch.  So a generator version plus a latent seed names one image, as the direct gaze
maps need (FIG. 4).

In **train mode** the defaults add fresh noise (``noise_mode="random"``) and style mixing.  Their
random numbers come from the generator's own ``torch.Generator``, whose state is kept in the buffer
``rng_state``: torch's global RNG is never touched and a checkpoint (state dict) resumes the exact
same draws.  For tuning with *direct* maps of observed images, build it with ``mixing_prob=0`` and
``noise_mode="const"`` so that a training forward of an observed seed draws exactly the image
that was looked at.

TorchScript: ``torch.jit.script`` and ``torch.jit.trace`` both work in eval mode (the random
training draws are marked ``@torch.jit.unused``; a scripted copy is for sampling).
"""

import math
from typing import Any, List, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from gazetune.nets.generator import DCGANGenerator, stage_sizes

NOISE_MODES = ("random", "const", "none")


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) scaled by sqrt(2) so it keeps the signal's variance."""
    return F.leaky_relu(x, 0.2) * 1.4142135623730951


# ------------------------------------------------------------------------------------------------
# 1. mapping network


class EqualLinear(nn.Module):
    """Fully connected layer with an "equalised learning rate".

    Weights are stored as N(0, 1) / ``lr_mul`` and scaled by ``lr_mul / sqrt(in)`` on every call,
    so Adam moves all layers at a comparable relative speed; ``lr_mul < 1`` slows a layer down.
    """

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class MappingNetwork(nn.Module):
    """``z (N, z_dim) -> w (N, w_dim)``: unit-RMS latent, then ``layers`` leaky-ReLU layers."""

    def __init__(self, z_dim: int, w_dim: int, layers: int = 4, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.fcs = nn.ModuleList(EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul) for i in range(layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        for fc in self.fcs:
            x = _lrelu(fc(x))
        return x


# ------------------------------------------------------------------------------------------------
# 2-3. synthesis layers


class ModulatedConv(nn.Module):
    """A convolution whose input channels are scaled per sample by the style ``s = A(w)``.

    ``forward(x (N, in, H, W), w (N, w_dim)) -> (N, out, H, W)``.  With ``demodulate`` each output
    channel is divided by the norm its modulated weights would give a unit-variance input
    (StyleGAN2's demodulation, the weight-side form of AdaIN's instance normalisation).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)  # styles start at 1: plain conv
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)  # (N, in)
        weight = self.weight * self.scale
        x = F.conv2d(x * s[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            # sum over (in, kh, kw) of (W_oik s_i)^2 = sum_i s_i^2 (sum_k W_oik^2)
            norm = torch.rsqrt(s.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + 1e-8)  # (N, out)
            x = x * norm[:, :, None, None]
        return x


class StyleLayer(nn.Module):
    """Modulated 3x3 conv, then per-pixel noise (learned strength), bias and leaky ReLU.

    ``noise_const`` is this layer's fixed noise image (eval mode); ``forward`` takes the noise to
    add explicitly so that the caller decides between fixed, fresh and no noise.
    """

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, size: int, noise: torch.Tensor):
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("noise_const", noise.reshape(1, 1, size, size))
        self.size = size

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w) + self.noise_strength * noise
        return _lrelu(x + self.bias[None, :, None, None])


class ToImage(nn.Module):
    """Modulated 1x1 conv to ``channels`` (no demodulation: it sets the output's scale) + bias.

    ``gain`` scales the output: the blocks' images are summed, and at initialisation their sum
    should stay in tanh's linear range rather than saturate.
    """

    def __init__(self, in_ch: int, channels: int, w_dim: int, gain: float = 1.0):
        super().__init__()
        self.conv = ModulatedConv(in_ch, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.gain = float(gain)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) * self.gain + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: upsample (not in the first block), two :class:`StyleLayer`, ``to_image``.

    ``forward(x, img, w0, w1, n0, n1)``: ``w0``/``n0`` style and noise of the first layer,
    ``w1``/``n1`` of the second (``to_image`` uses ``w1`` too); returns the new features and the
    running image (this block's ``to_image`` plus the upsampled image of the block before).
    """

    def __init__(
        self, in_ch: int, out_ch: int, channels: int, w_dim: int, size: int, first: bool, noise_gen: torch.Generator,
        image_gain: float = 1.0,
    ):
        super().__init__()
        self.first = first
        self.size = size
        self.layer0 = StyleLayer(in_ch, out_ch, w_dim, size, torch.randn(size, size, generator=noise_gen))
        self.layer1 = StyleLayer(out_ch, out_ch, w_dim, size, torch.randn(size, size, generator=noise_gen))
        self.to_image = ToImage(out_ch, channels, w_dim, image_gain)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, n0: torch.Tensor, n1: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.first:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.layer1(self.layer0(x, w0, n0), w1, n1)
        y = self.to_image(x, w1)
        if not self.first:
            y = y + F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x, y


# ------------------------------------------------------------------------------------------------
# the generator


class StyleGenerator(nn.Module):
    """Style-based generator ``z (N, z_dim) -> (N, channels, size, size)`` in [-1, 1].

    Parameters
    ----------
    z_dim
        Latent size (latents are standard normal, :func:`gazetune.nets.latent_from_seed`).
    size
        Output side in pixels, 32 to 256 (any integer; stages halve with rounding up down to 4 px).
    channels
        1 (grey) or 3 (RGB).
    width
        Feature channels at the output resolution; each smaller stage doubles it up to
        ``max_channels``.
    max_channels
        Cap on the feature channels of the coarse stages (default ``8 * width``).
    w_dim
        Size of the intermediate latent ``w`` (default ``z_dim``).
    mapping_layers
        Fully connected layers of the mapping network.
    mixing_prob
        Probability, per training image, of style mixing (StyleGAN2 uses 0.9; 0 turns it off).
    noise_mode
        Noise in train mode: ``"random"`` (fresh each call), ``"const"`` (the fixed per-layer
        buffers, as in eval) or ``"none"``.  Eval mode uses the fixed buffers unless ``"none"``.
    truncation_psi
        Default truncation of :meth:`forward` in eval mode (1 = none).
    w_avg_beta
        Decay of the running mean ``w_avg`` updated by every training forward.
    seed
        Seed of the fixed noise buffers and of the training draws (a local generator).
    """

    def __init__(
        self,
        z_dim: int = 64,
        size: int = 64,
        channels: int = 3,
        width: int = 32,
        max_channels: int | None = None,
        w_dim: int | None = None,
        mapping_layers: int = 4,
        mixing_prob: float = 0.9,
        noise_mode: str = "random",
        truncation_psi: float = 1.0,
        w_avg_beta: float = 0.995,
        seed: int = 0,
    ):
        super().__init__()
        if z_dim < 1 or width < 1 or mapping_layers < 1:
            raise ValueError(f"z_dim, width and mapping_layers must be >= 1; got {z_dim}, {width}, {mapping_layers}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
        if not 8 <= size <= 1024:
            raise ValueError(f"size must be 8 to 1024 pixels (32-256 is the tested range); got {size}")
        if not 0.0 <= mixing_prob <= 1.0:
            raise ValueError(f"mixing_prob must be in [0, 1]; got {mixing_prob}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}")
        self.z_dim = int(z_dim)
        self.size = int(size)
        self.channels = int(channels)
        self.width = int(width)
        self.max_channels = int(max_channels) if max_channels is not None else 8 * self.width
        self.w_dim = int(w_dim) if w_dim is not None else self.z_dim
        self.mapping_layers = int(mapping_layers)
        self.mixing_prob = float(mixing_prob)
        self.noise_mode = str(noise_mode)
        self.truncation_psi = float(truncation_psi)
        self.w_avg_beta = float(w_avg_beta)
        self.seed = int(seed)

        self.sizes = stage_sizes(self.size)
        n = len(self.sizes)
        chans = [min(self.max_channels, self.width * 2 ** (n - 1 - k)) for k in range(n)]
        self.num_ws = 2 * n  # two style layers per block; to_image shares the second one's w
        self.mapping = MappingNetwork(self.z_dim, self.w_dim, self.mapping_layers)
        self.const = nn.Parameter(torch.randn(1, chans[0], self.sizes[0], self.sizes[0]))
        noise_gen = torch.Generator().manual_seed(self.seed)
        gain = 0.5 / math.sqrt(n)  # the n summed block images start with std about 0.5 in all
        self.blocks = nn.ModuleList(
            SynthesisBlock(chans[max(k - 1, 0)], chans[k], self.channels, self.w_dim, s, k == 0, noise_gen, gain)
            for k, s in enumerate(self.sizes)
        )
        self.register_buffer("w_avg", torch.zeros(self.w_dim))
        # state of the private generator for training draws (mixing, fresh noise), in the state dict
        self.register_buffer("rng_state", torch.Generator().manual_seed(self.seed + 1).get_state())

    # -- z -> w ---------------------------------------------------------------------------------

    def map(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """``w`` of each latent, truncated toward ``w_avg`` by ``psi``: ``(N, w_dim)``.

        In train mode this also moves ``w_avg`` toward the batch mean of ``w``.
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}); got {list(z.shape)}")
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(torch.lerp(w.detach().float().mean(dim=0), self.w_avg, self.w_avg_beta))
        if psi != 1.0:
            w = self.w_avg + psi * (w - self.w_avg)
        return w

    # -- w -> image ------------------------------------------------------------------------------

    def fixed_noise(self, n: int) -> List[torch.Tensor]:
        """The noise of eval mode, one ``(1, 1, s, s)`` tensor per style layer (zeros for ``"none"``)."""
        out: List[torch.Tensor] = []
        for blk in self.blocks:
            for layer in (blk.layer0, blk.layer1):
                noise = layer.noise_const
                out.append(torch.zeros_like(noise) if self.noise_mode == "none" else noise)
        return out

    def synthesize(self, ws: torch.Tensor, noise: List[torch.Tensor]) -> torch.Tensor:
        """Image from per-layer styles ``ws (N, num_ws, w_dim)`` and per-layer noise (2 per block)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must have shape (N, {self.num_ws}, w_dim); got {list(ws.shape)}")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        img = torch.zeros(0)
        k = 0
        for blk in self.blocks:
            x, img = blk(x, img, ws[:, k], ws[:, k + 1], noise[k], noise[k + 1])
            k += 2
        return torch.tanh(img)

    def mix(self, z1: torch.Tensor, z2: torch.Tensor, crossover: int, psi: float = 1.0) -> torch.Tensor:
        """Image with the styles of ``z1`` for layers ``< crossover`` and of ``z2`` from there on
        (``crossover`` in ``0..num_ws``; fixed noise, as in eval mode)."""
        if not 0 <= crossover <= self.num_ws:
            raise ValueError(f"crossover must be in 0..{self.num_ws}; got {crossover}")
        w1, w2 = self.map(z1, psi), self.map(z2, psi)
        layer = torch.arange(self.num_ws, device=z1.device)[None, :, None]
        ws = torch.where(layer < crossover, w1[:, None], w2[:, None])
        return self.synthesize(ws, self.fixed_noise(z1.shape[0]))

    # -- training draws (private generator, never torch's global RNG) ---------------------------

    @torch.jit.unused
    def _training_styles_and_noise(self, z: torch.Tensor, psi: float) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        gen = torch.Generator().set_state(self.rng_state.cpu())
        n, dev = z.shape[0], z.device
        ws = self.map(z, psi)[:, None].repeat(1, self.num_ws, 1)
        if self.mixing_prob > 0:
            z2 = torch.randn(n, self.z_dim, generator=gen).to(dev, z.dtype)
            mixed = torch.rand(n, generator=gen) < self.mixing_prob
            cut = torch.randint(1, self.num_ws, (n,), generator=gen)
            cut = torch.where(mixed, cut, torch.full_like(cut, self.num_ws)).to(dev)
            w2 = self.map(z2, psi)
            later = torch.arange(self.num_ws, device=dev)[None, :] >= cut[:, None]
            ws = torch.where(later[:, :, None], w2[:, None], ws)
        if self.noise_mode == "random":
            noise = [torch.randn(n, 1, s, s, generator=gen).to(dev, z.dtype) for s in self.sizes for _ in range(2)]
        else:
            noise = self.fixed_noise(n)
        self.rng_state.copy_(gen.get_state())
        return ws, noise

    # -- the contract ------------------------------------------------------------------------------

    def forward(self, z: torch.Tensor, psi: float = -1.0) -> torch.Tensor:
        """``z (N, z_dim) -> (N, channels, size, size)`` in [-1, 1].

        ``psi`` is the truncation (default: ``truncation_psi`` in eval mode, none in train mode).
        """
        if psi < 0:
            psi = 1.0 if self.training else self.truncation_psi
        if self.training and (self.mixing_prob > 0 or self.noise_mode == "random"):
            ws, noise = self._training_styles_and_noise(z, psi)
        else:
            ws = self.map(z, psi)[:, None].repeat(1, self.num_ws, 1)
            noise = self.fixed_noise(z.shape[0])
        return self.synthesize(ws, noise)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, enough to rebuild the network (stored in checkpoints)."""
        return {
            "z_dim": self.z_dim, "size": self.size, "channels": self.channels, "width": self.width,
            "max_channels": self.max_channels, "w_dim": self.w_dim, "mapping_layers": self.mapping_layers,
            "mixing_prob": self.mixing_prob, "noise_mode": self.noise_mode, "truncation_psi": self.truncation_psi,
            "w_avg_beta": self.w_avg_beta, "seed": self.seed,
        }


# ------------------------------------------------------------------------------------------------
# choosing the built-in generator

GENERATOR_KINDS = {"dcgan": DCGANGenerator, "style": StyleGenerator}


def build_generator(kind: str = "dcgan", **kwargs: Any) -> nn.Module:
    """A built-in generator by name: ``"dcgan"`` (:class:`DCGANGenerator`) or ``"style"``
    (:class:`StyleGenerator`); ``kwargs`` are its constructor arguments (e.g. ``g.config()``).

    >>> build_generator("style", z_dim=16, size=32, channels=1, width=8).num_ws
    8
    """
    if kind not in GENERATOR_KINDS:
        raise ValueError(f"unknown generator kind {kind!r}; use one of {sorted(GENERATOR_KINDS)}")
    return GENERATOR_KINDS[kind](**kwargs)
