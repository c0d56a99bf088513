"""The user's own generator: resolve a generator SPEC, adapt it to the contract, save and reload it.

``gazetune gan tune --generator SPEC`` takes any of

============================  ========================================================================
SPEC                          what is loaded
============================  ========================================================================
a gazetune run directory      its ``checkpoint.safetensors``: a built-in generator (DCGAN or style) or
(or its checkpoint file)      an external one tuned earlier, with its EMA weights and discriminator
a TorchScript file            ``torch.jit.load``; every parameter is trainable
``package.module:function``   a Python factory returning an ``nn.Module`` with ``z_dim`` (optional
                              ``c_dim`` > 0: class-conditional, ``forward(z, c)`` with one-hot ``c``)
a ``.pkl`` network pickle     StyleGAN2-ADA / StyleGAN3 (``G_ema`` of the pickle); needs NVlabs'
                              ``dnnlib`` and ``torch_utils`` importable (their checkout on
                              ``PYTHONPATH``); truncation ``psi`` and ``noise_mode`` are applied
============================  ========================================================================

Every external network is wrapped in an :class:`AdaptedGenerator` (or :class:`NVlabsGenerator`),
which follows the gazetune contract ``forward(z (N, z_dim)) -> (N, C, H, W)``.  For a
class-conditional network the latent gets one extra coordinate ``u``: the class label is
``floor(Phi(u) * c_dim)`` (``Phi`` the standard normal CDF), so labels are uniform over the classes
and still a pure function of the latent seed, which keeps "(generator version, seed)" one image.

A tuning run of an external generator records its :class:`GeneratorSource` in the checkpoint
(metadata ``generator_source``) and, at every checkpoint, exports the EMA generator
(:func:`export_generator`): ``generator.safetensors`` (the user network's own state dict, loadable
into what the factory builds), ``generator.pt`` (TorchScript, where scripting or tracing works) and
the form it came in (TorchScript -> ``generator.pt``; pickle -> ``generator.pkl`` with ``G_ema``).
:func:`generator_from_checkpoint` rebuilds the generator of such a run; ``load_generator`` uses it.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import math
import os
import pickle
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from gazetune.atomic import atomic_write_bytes
from gazetune.checkpoint import Checkpoint, read_checkpoint
from gazetune.nets.latent import latents_from_seeds

CHECKPOINT = "checkpoint.safetensors"
EXPORT_STATE = "generator.safetensors"
EXPORT_SCRIPT = "generator.pt"
EXPORT_PICKLE = "generator.pkl"
SOURCE_SCRIPT = "generator_source.pt"  # copy of a TorchScript input, so the run needs no outside file
NOISE_MODES = ("const", "random", "none")
_FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


@dataclass
class GeneratorSource:
    """Where a generator came from, enough to rebuild its structure (stored with runs).

    Attributes
    ----------
    kind
        ``"builtin"`` (gazetune's DCGAN / style generator), ``"torchscript"``, ``"factory"`` or
        ``"stylegan"`` (an NVlabs network pickle).
    spec
        The SPEC as the user gave it (path or ``package.module:function``).
    arch
        Built-in architecture (``"dcgan"``, ``"style"``); empty for external generators.
    psi, noise_mode
        Truncation and noise mode of a StyleGAN pickle (ignored by the other kinds).
    z_dim, c_dim
        Latent size and number of classes of the user network (``c_dim = 0``: unconditional).
    """

    kind: str
    spec: str
    arch: str = ""
    psi: float = 1.0
    noise_mode: str = "const"
    z_dim: int = 0
    c_dim: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "GeneratorSource":
        return cls(**json.loads(text))

    @property
    def external(self) -> bool:
        return self.kind != "builtin"


@dataclass
class ResolvedGenerator:
    """A generator ready to tune (see :func:`resolve_generator`).

    ``G`` follows the contract; ``G_ema`` and ``D`` are set when the SPEC was a gazetune run (its
    averaged generator and its discriminator); ``size`` and ``channels`` come from one forward
    pass; ``version`` names the generator for synthetic gaze maps (a run's ``generator_version``,
    else the file stem or factory name); ``spec`` is the SPEC as given.
    """

    G: nn.Module
    source: GeneratorSource
    size: int
    channels: int
    version: str
    spec: str = ""
    G_ema: Optional[nn.Module] = None
    D: Optional[nn.Module] = None
    checkpoint: Optional[Checkpoint] = field(default=None, repr=False)
    run_dir: Optional[Path] = None


# ------------------------------------------------------------------------------------------------
# the contract around a user network


def _labels(u: torch.Tensor, c_dim: int) -> torch.Tensor:
    """Class labels uniform over ``c_dim`` classes from standard normal ``u``: ``floor(Phi(u) c)``."""
    p = 0.5 * (1.0 + torch.erf(u / math.sqrt(2.0)))
    return torch.clamp((p * c_dim).floor().long(), 0, c_dim - 1)


class AdaptedGenerator(nn.Module):
    """A user network behind the gazetune contract ``forward(z (N, z_dim)) -> (N, C, H, W)``.

    Parameters
    ----------
    net
        The user's module (a TorchScript module or what a factory returned).
    z_dim
        Latent size of ``net``.
    c_dim
        Number of classes (0 = unconditional).  When > 0, ``self.z_dim = z_dim + 1`` and ``net`` is
        called as ``net(z, c)`` with one-hot ``c (N, c_dim)`` whose label comes from the last
        latent coordinate (uniform over the classes).
    """

    def __init__(self, net: nn.Module, z_dim: int, c_dim: int = 0):
        super().__init__()
        self.net = net
        self.net_z_dim = int(z_dim)
        self.c_dim = int(c_dim)
        self.z_dim = self.net_z_dim + (1 if self.c_dim > 0 else 0)

    def __deepcopy__(self, memo: dict) -> "AdaptedGenerator":
        # copy.deepcopy of a TorchScript module gives parameters that are not leaves (their
        # requires_grad cannot be switched off, as the EMA copy needs): copy it by saving and loading
        if isinstance(self.net, torch.jit.ScriptModule) and id(self.net) not in memo:
            buf = io.BytesIO()
            torch.jit.save(self.net, buf)
            buf.seek(0)
            dev = next((p.device for p in self.net.parameters()), torch.device("cpu"))
            memo[id(self.net)] = torch.jit.load(buf, map_location=dev)
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new

    def labels(self, z: torch.Tensor) -> torch.Tensor:
        """Class label of each latent (``(N,)`` long; zeros for an unconditional network)."""
        if self.c_dim <= 0:
            return torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        return _labels(z[:, self.net_z_dim], self.c_dim)

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}); got {list(z.shape)}")
        zz = z[:, : self.net_z_dim]
        if self.c_dim <= 0:
            return zz, torch.zeros(z.shape[0], 0, dtype=z.dtype, device=z.device)
        c = torch.nn.functional.one_hot(_labels(z[:, self.net_z_dim], self.c_dim), self.c_dim).to(z.dtype)
        return zz, c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        zz, c = self._split(z)
        if self.c_dim > 0:
            return self.net(zz, c)
        return self.net(zz)


class NVlabsGenerator(AdaptedGenerator):
    """A StyleGAN2-ADA / StyleGAN3 ``G`` (``G(z, c, truncation_psi=, noise_mode=)``) behind the contract.

    ``noise_mode="random"`` draws fresh noise in training from a private generator (state in the
    buffer ``rng_state``), so torch's global RNG is untouched and a resumed run draws the same
    noise; in eval mode it uses the constant noise, so a latent seed names one image.  ``"const"``
    (default) and ``"none"`` are deterministic throughout.

    The NVlabs network runs outside any autocast region (``--precision bf16`` leaves it in
    float32): it sets its own precision per layer (``num_fp16_res``, ``conv_clamp``) and its CUDA
    kernels (``bias_act``, ``upfirdn2d``) take float16 and float32 only.  Its output is float32.
    """

    def __init__(self, net: nn.Module, psi: float = 1.0, noise_mode: str = "const", seed: int = 0):
        super().__init__(net, int(net.z_dim), int(getattr(net, "c_dim", 0) or 0))
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}")
        self.psi = float(psi)
        self.noise_mode = str(noise_mode)
        self.register_buffer("rng_state", torch.Generator().manual_seed(int(seed)).get_state())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        with torch.autocast(z.device.type, enabled=False):
            return self._forward(z.float()).float()

    def _forward(self, z: torch.Tensor) -> torch.Tensor:
        zz, c = self._split(z)
        if not (self.training and self.noise_mode == "random"):  # eval: "random" uses the constant noise
            mode = "const" if self.noise_mode == "random" else self.noise_mode
            return self.net(zz, c, truncation_psi=self.psi, noise_mode=mode)
        gen = torch.Generator().set_state(self.rng_state.cpu())
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        self.rng_state.copy_(gen.get_state())
        devices = [z.device.index or 0] if z.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self.net(zz, c, truncation_psi=self.psi, noise_mode="random")


def unwrap(g: nn.Module) -> nn.Module:
    """The user's own network inside an :class:`AdaptedGenerator` (``g`` itself otherwise)."""
    return g.net if isinstance(g, AdaptedGenerator) else g


# ------------------------------------------------------------------------------------------------
# loading each kind


def spec_kind(spec: str | os.PathLike) -> str:
    """``"run"``, ``"torchscript"``, ``"stylegan"`` or ``"factory"`` for a SPEC (errors name it)."""
    s = str(spec)
    p = Path(s)
    if p.is_dir():
        if not (p / CHECKPOINT).exists():
            raise FileNotFoundError(f"generator {s}: a directory without {CHECKPOINT} (not a gazetune run)")
        return "run"
    if p.is_file():
        if p.suffix == ".pkl":
            return "stylegan"
        with open(p, "rb") as fh:
            head = fh.read(8)
        if head[:2] == b"PK":
            return "torchscript"
        if p.suffix == ".safetensors":
            return "run"
        raise ValueError(f"generator {s}: not a TorchScript file (zip archive), a .pkl network pickle or a "
                         f"gazetune checkpoint (.safetensors)")
    if _FACTORY.match(s):
        return "factory"
    raise FileNotFoundError(f"generator {s!r}: no such file or directory, and not a Python factory "
                            f"'package.module:function'")


def _torchscript_net(path: Path, device: str | torch.device) -> tuple[nn.Module, int, int]:
    extra = {"z_dim": "", "c_dim": ""}
    try:
        net = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as e:
        raise ValueError(f"generator {path}: cannot load as TorchScript: {str(e).splitlines()[0]}") from None
    z_dim = getattr(net, "z_dim", None)
    if not isinstance(z_dim, int):
        z_dim = int(extra["z_dim"]) if extra["z_dim"] else None
    if z_dim is None:
        raise ValueError(f"generator {path}: TorchScript module has no integer attribute z_dim and no extra "
                         "file 'z_dim' (torch.jit.save(m, path, _extra_files={'z_dim': '64'}))")
    c_dim = getattr(net, "c_dim", None)
    if not isinstance(c_dim, int):
        c_dim = int(extra["c_dim"]) if extra["c_dim"] else 0
    return net, int(z_dim), int(c_dim)


def _call_factory(spec: str) -> nn.Module:
    mod_name, fn_name = spec.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ImportError(f"generator factory {spec!r}: cannot import module {mod_name!r} ({e}); put its package "
                          "on PYTHONPATH or install it") from None
    obj: Any = mod
    for part in fn_name.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"generator factory {spec!r}: module {mod_name!r} has no {fn_name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"generator factory {spec!r}: {fn_name!r} is not callable")
    net = obj()
    if not isinstance(net, nn.Module):
        raise TypeError(f"generator factory {spec!r} returned {type(net).__name__}, not a torch.nn.Module")
    return net


def _int_attr(net: nn.Module, name: str, where: str, required: bool) -> int:
    v = getattr(net, name, None)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = int(v.item())
    if v is None and not required:
        return 0
    if not isinstance(v, int) or isinstance(v, bool) or v < (1 if required else 0):
        raise TypeError(f"generator {where}: needs an integer attribute {name} "
                        f"({'>= 1' if required else '>= 0'}); got {name}={v!r}")
    return int(v)


def nvlabs_missing() -> list[str]:
    """Names of the NVlabs modules a StyleGAN pickle needs that cannot be imported here."""
    missing = []
    for name in ("dnnlib", "torch_utils"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def load_stylegan_pickle(path: str | os.PathLike, key: str = "G_ema") -> nn.Module:
    """The network ``key`` (default ``G_ema``) of a StyleGAN2-ADA / StyleGAN3 pickle.

    The pickle refers to NVlabs' ``torch_utils`` (persistence) and ``dnnlib``; they must be
    importable.  ``legacy.load_network_pkl`` is used when ``legacy`` imports (it also converts
    TensorFlow pickles), a plain unpickling otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"network pickle not found: {path}")
    missing = nvlabs_missing()
    if missing:
        raise ImportError(
            f"generator {path}: a StyleGAN2-ADA/StyleGAN3 pickle needs NVlabs' {' and '.join(missing)} "
            f"(cannot import {', '.join(repr(m) for m in missing)}). Clone "
            "https://github.com/NVlabs/stylegan3 (or stylegan2-ada-pytorch) and put the checkout on PYTHONPATH, "
            "e.g. PYTHONPATH=/path/to/stylegan3 gazetune gan tune --generator net.pkl ...")
    with open(path, "rb") as fh:
        try:
            legacy = importlib.import_module("legacy")
            data = legacy.load_network_pkl(fh) if hasattr(legacy, "load_network_pkl") else pickle.load(fh)
        except ImportError:
            data = pickle.load(fh)
    if not isinstance(data, dict) or key not in data:
        have = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"generator {path}: the pickle has no {key!r} network (has {have})")
    net = data[key]
    if not isinstance(net, nn.Module):
        raise TypeError(f"generator {path}: {key!r} is a {type(net).__name__}, not a torch.nn.Module")
    return net


def build_external(source: GeneratorSource, device: str | torch.device = "cpu", from_file: Path | None = None,
                   seed: int = 0) -> nn.Module:
    """The adapted generator of an external ``source`` with its original weights.

    ``from_file`` replaces the file named by ``source.spec`` (a run's own copy of the TorchScript
    or pickle).
    """
    if source.kind == "torchscript":
        path = Path(from_file or source.spec)
        if not path.is_file():
            raise FileNotFoundError(f"TorchScript generator not found: {path}")
        net, z_dim, c_dim = _torchscript_net(path, device)
        return AdaptedGenerator(net, z_dim, c_dim)
    if source.kind == "factory":
        with torch.random.fork_rng(devices=[]):  # a factory's random init must not move the caller's RNG
            torch.manual_seed(seed)
            net = _call_factory(source.spec)
        z_dim = _int_attr(net, "z_dim", source.spec, required=True)
        c_dim = _int_attr(net, "c_dim", source.spec, required=False)
        return AdaptedGenerator(net.to(device), z_dim, c_dim)
    if source.kind == "stylegan":
        net = load_stylegan_pickle(from_file or source.spec)
        _int_attr(net, "z_dim", source.spec, required=True)
        return NVlabsGenerator(copy.deepcopy(net).to(device), source.psi, source.noise_mode, seed=seed)
    raise ValueError(f"unknown external generator kind {source.kind!r}")


@torch.no_grad()
def probe_output(G: nn.Module, where: str = "generator") -> tuple[int, int]:
    """``(channels, size)`` of ``G``'s images from one eval-mode forward pass of two latents."""
    was = G.training
    dev = next((p.device for p in G.parameters()), torch.device("cpu"))
    try:
        G.eval()
        z_dim = int(G.z_dim)
        x = G(latents_from_seeds([0, 1], z_dim).to(dev))
    finally:
        G.train(was)
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 2:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{where}: forward(z (2, {z_dim})) must return images (2, C, H, W); got {shape}")
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"{where}: makes {x.shape[2]}x{x.shape[3]} images; only square images are supported")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{where}: its output has NaN or inf values")
    return int(x.shape[1]), int(x.shape[2])


def _version_of(spec: str, kind: str) -> str:
    if kind == "factory":
        return spec.split(":", 1)[1]
    return Path(spec).stem


def _builtin(arch: str, gcfg: dict) -> nn.Module:
    from gazetune.nets.style_generator import build_generator

    return build_generator(arch, **gcfg)


def source_of(ck: Checkpoint) -> GeneratorSource:
    """The :class:`GeneratorSource` a checkpoint records (a built-in one for older checkpoints)."""
    meta = ck.metadata
    if "generator_source" in meta:
        return GeneratorSource.from_json(meta["generator_source"])
    return GeneratorSource("builtin", "", arch=meta.get("generator_arch", "dcgan"))


def _run_file(run_dir: Path, source: GeneratorSource) -> Path | None:
    """The run's own copy of the generator's structure (TorchScript or pickle), if any."""
    # (not generator.pt for TorchScript: for a class-conditional net that is the traced wrapper)
    names = {"torchscript": [SOURCE_SCRIPT], "stylegan": [EXPORT_PICKLE]}.get(source.kind, [])
    for name in names:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def generator_from_checkpoint(ck: Checkpoint, run_dir: Path, which: str = "G_ema",
                              device: str | torch.device = "cpu", gcfg_override: dict | None = None) -> nn.Module:
    """Rebuild the generator a gazetune checkpoint holds (built-in or external) with weights ``which``.

    An external generator is rebuilt from the run's own copy of its structure (TorchScript or
    pickle) or the original SPEC; when that code is gone (a factory that no longer imports), the
    run's TorchScript export ``generator.pt`` is loaded instead (EMA weights only).
    """
    if which not in ("G", "G_ema"):
        raise ValueError(f"which must be 'G' or 'G_ema'; got {which!r}")
    source = source_of(ck)
    if not source.external:
        gcfg = json.loads(ck.metadata["generator_config"])
        if source.arch == "style":  # e.g. no style mixing while tuning (the DCGAN has no such settings)
            gcfg.update(gcfg_override or {})
        g = _builtin(source.arch or "dcgan", gcfg)
        g.load_state_dict(ck.state_dict(which))
        return g.to(device)
    try:
        g = build_external(source, device, from_file=_run_file(run_dir, source))
    except (ImportError, AttributeError, FileNotFoundError) as e:
        export = run_dir / EXPORT_SCRIPT
        if which == "G_ema" and export.is_file():
            warnings.warn(f"{e}; loading the run's TorchScript export {export} instead", stacklevel=2)
            from gazetune.nets.generator import load_generator

            return load_generator(export, device=device)
        raise
    g.load_state_dict(ck.state_dict(which))
    return g.to(device)


def resolve_generator(spec: str | os.PathLike, psi: float = 1.0, noise_mode: str = "const",
                      device: str | torch.device = "cpu", seed: int = 0,
                      gcfg_override: dict | None = None) -> ResolvedGenerator:
    """Load the generator a SPEC names, ready to tune (see the module docstring for SPECs).

    ``psi`` and ``noise_mode`` apply to StyleGAN pickles; ``seed`` seeds a factory's initial
    weights (a factory that loads trained weights is unaffected) and the private noise generator;
    ``gcfg_override`` changes a built-in style generator's settings (e.g. no style mixing for tuning).
    """
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}")
    kind = spec_kind(spec)
    if kind == "run":
        p = Path(spec)
        ck_path = p / CHECKPOINT if p.is_dir() else p
        run_dir = ck_path.parent
        ck = read_checkpoint(ck_path)
        if "discriminator_config" not in ck.metadata or "G" not in ck.modules():
            raise ValueError(f"generator {spec}: {ck_path} is not a gazetune training checkpoint (no G and D)")
        source = source_of(ck)
        G = generator_from_checkpoint(ck, run_dir, "G", device, gcfg_override)
        G_ema = generator_from_checkpoint(ck, run_dir, "G_ema", device, gcfg_override)
        from gazetune.nets.discriminator import build_discriminator

        D = build_discriminator(json.loads(ck.metadata["discriminator_config"]))
        D.load_state_dict(ck.state_dict("D"))
        channels, size = probe_output(G_ema, f"generator {spec}")
        version = ck.metadata.get("generator_version", run_dir.name)
        return ResolvedGenerator(G, source, size, channels, version, str(spec), G_ema, D.to(device), ck, run_dir)
    source = GeneratorSource(kind, str(spec), psi=float(psi), noise_mode=noise_mode)
    G = build_external(source, device, seed=seed)
    source.z_dim, source.c_dim = G.net_z_dim, G.c_dim
    channels, size = probe_output(G, f"generator {spec}")
    return ResolvedGenerator(G, source, size, channels, _version_of(str(spec), kind), str(spec))


def load_external(path: str | os.PathLike, device: str | torch.device = "cpu", psi: float = 1.0,
                  noise_mode: str = "const") -> nn.Module:
    """An untuned external generator (pickle, factory spec, or a ``generator.safetensors`` export)."""
    s = str(path)
    p = Path(s)
    if p.suffix == ".safetensors" and p.is_file():
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(s, "pt") as fh:
            meta = fh.metadata() or {}
        if "generator_source" not in meta:
            raise ValueError(f"{p}: neither a gazetune checkpoint nor a generator export (no generator_source)")
        source = GeneratorSource.from_json(meta["generator_source"])
        g = build_external(source, device, from_file=_run_file(p.parent, source))
        unwrap(g).load_state_dict(load_file(s))
        return g.to(device).eval()
    kind = spec_kind(s)
    if kind not in ("stylegan", "factory"):
        raise ValueError(f"{s}: not a network pickle or factory spec")
    return build_external(GeneratorSource(kind, s, psi=psi, noise_mode=noise_mode), device).eval()


# ------------------------------------------------------------------------------------------------
# saving a tuned external generator


def _torchscript_bytes(module: nn.Module, z_dim: int, c_dim: int, example: torch.Tensor) -> tuple[bytes | None, str]:
    """TorchScript of ``module`` (script, else trace) as bytes, and how it was made or why not."""
    extra = {"z_dim": str(z_dim), "c_dim": str(c_dim)}
    if isinstance(module, torch.jit.ScriptModule):
        scripted, how = module, "torchscript"
    else:
        scripted, how = None, ""
        reasons = []
        try:
            scripted, how = torch.jit.script(module), "script"
        except Exception as e:  # noqa: BLE001 - any scripting failure falls back to tracing
            reasons.append(f"script: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    scripted, how = torch.jit.trace(module, example, check_trace=False), "trace"
            except Exception as e2:  # noqa: BLE001
                reasons.append(f"trace: {type(e2).__name__}: {str(e2).splitlines()[0] if str(e2) else ''}")
        if scripted is None:
            return None, "; ".join(reasons)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf, _extra_files=extra)
    return buf.getvalue(), how


def export_generator(G_ema: nn.Module, source: GeneratorSource, out_dir: Path) -> dict[str, Any]:
    """Write the tuned (EMA) external generator to ``out_dir`` in every form that works.

    * ``generator.safetensors``: the user network's state dict (``load_state_dict`` into what the
      factory / NVlabs code builds), with the source in its metadata;
    * ``generator.pt``: TorchScript of the adapted generator (the loaded module itself for a
      TorchScript input; scripted, else traced, otherwise), skipped with a reason when neither works;
    * ``generator.pkl``: for a StyleGAN pickle, ``{"G_ema": network}`` like the input pickle.

    Returns ``{"files": [...], "torchscript": how or None, "reason": why not}`` for the run's log.
    """
    from safetensors.torch import save as st_save

    out_dir = Path(out_dir)
    net = unwrap(G_ema)
    info: dict[str, Any] = {"files": []}
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    atomic_write_bytes(out_dir / EXPORT_STATE, st_save(state, metadata={"generator_source": source.to_json()}))
    info["files"].append(EXPORT_STATE)
    dev = next((p.device for p in G_ema.parameters()), torch.device("cpu"))
    example = latents_from_seeds([0, 1], int(G_ema.z_dim)).to(dev)
    was = G_ema.training
    G_ema.eval()
    try:
        if source.kind == "torchscript" and isinstance(net, torch.jit.ScriptModule) and not getattr(G_ema, "c_dim", 0):
            data, how = _torchscript_bytes(net, int(G_ema.z_dim), 0, example)
        else:
            data, how = _torchscript_bytes(G_ema, int(G_ema.z_dim), 0, example)
    finally:
        G_ema.train(was)
    if data is not None:
        atomic_write_bytes(out_dir / EXPORT_SCRIPT, data)
        info["files"].append(EXPORT_SCRIPT)
        info["torchscript"] = how
    else:
        info["torchscript"] = None
        info["reason"] = how
    if source.kind == "stylegan":
        try:
            data = pickle.dumps({"G_ema": copy.deepcopy(net).cpu().eval()})
        except Exception as e:  # noqa: BLE001
            info["pickle_reason"] = f"{type(e).__name__}: {e}"
        else:
            atomic_write_bytes(out_dir / EXPORT_PICKLE, data)
            info["files"].append(EXPORT_PICKLE)
    return info


def copy_source(source: GeneratorSource, out_dir: Path, from_run: Path | None = None) -> None:
    """Keep a copy of a TorchScript input in the run (``generator_source.pt``), taken from the
    earlier run ``from_run`` when tuning continues one, else from the SPEC's file."""
    if source.kind != "torchscript":
        return
    dst = Path(out_dir) / SOURCE_SCRIPT
    src = _run_file(Path(from_run), source) if from_run is not None else None
    src = src or Path(source.spec)
    if not dst.exists() and src.resolve() != dst.resolve():
        atomic_write_bytes(dst, src.read_bytes())


__all__ = [
    "AdaptedGenerator", "GeneratorSource", "NVlabsGenerator", "ResolvedGenerator", "build_external", "copy_source",
    "export_generator", "generator_from_checkpoint", "load_external", "load_stylegan_pickle", "nvlabs_missing",
    "probe_output", "resolve_generator", "source_of", "spec_kind", "unwrap",
]
