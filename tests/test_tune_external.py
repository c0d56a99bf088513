"""Tuning a generator gazetune has never seen: TorchScript, a factory, a StyleGAN pickle.

The generator architecture is written here (not a built-in), saved as a module on ``sys.path`` so
that it can be scripted and named by a factory spec.  Tiny nets, a few steps each.
"""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
import types
import uuid

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gazetune.checkpoint import read_checkpoint
from gazetune.cli import app
from gazetune.config import load_config
from gazetune.nets import load_generator
from gazetune.nets.external import AdaptedGenerator, load_stylegan_pickle, resolve_generator
from gazetune.nets.latent import latents_from_seeds
from gazetune.tune.maps import MapProvider
from gazetune.tune.train import TuneConfig, tune

# A 24 px RGB generator (a different design from the built-ins: a linear stem, transposed-conv
# upsampling, batch-free), and a class-conditional variant with a label embedding.
ARCH = '''
import torch
from torch import nn


class TinyGen(nn.Module):
    def __init__(self, z_dim: int = 6, width: int = 8):
        super().__init__()
        self.z_dim = z_dim
        self.width = width
        self.stem = nn.Linear(z_dim, width * 6 * 6)
        self.up1 = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        self.out = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, z):
        x = torch.relu(self.stem(z)).view(-1, self.width, 6, 6)
        x = torch.relu(self.up1(x))
        x = torch.relu(self.up2(x))
        return torch.tanh(self.out(x))


class TinyCondGen(nn.Module):
    def __init__(self, z_dim: int = 6, c_dim: int = 3, width: int = 8):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.embed = nn.Linear(c_dim, z_dim, bias=False)
        self.body = TinyGen(z_dim, width)

    def forward(self, z, c):
        return self.body(z + self.embed(c))


def make():
    torch.manual_seed(11)
    return TinyGen()


def make_conditional():
    torch.manual_seed(12)
    return TinyCondGen()
'''

# a stand-in for an NVlabs G: the call signature and attributes of stylegan2-ada / stylegan3
FAKE_NV = '''
import torch
from torch import nn


class FakeNVGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = 5, 0, 5
        self.img_resolution, self.img_channels = 16, 1
        self.mapping = nn.Linear(5, 5)
        self.register_buffer("w_avg", torch.zeros(5))
        self.synthesis = nn.Linear(5, 16 * 16)
        self.calls = []

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, noise_mode="random"):
        self.calls.append((float(truncation_psi), noise_mode))
        w = self.mapping(z)
        w = self.w_avg + truncation_psi * (w - self.w_avg)
        x = self.synthesis(w).view(-1, 1, 16, 16)
        if noise_mode == "random":
            x = x + 0.01 * torch.randn_like(x)
        return torch.tanh(x)
'''

SMALL = dict(d_width=4, batch=4, log_every=1, n_samples=4, sample_every=0, mode="none")


class Killed(Exception):
    """Raised by :class:`KillAfter`: the run stops as if the process were killed."""


class KillAfter:
    """A step hook that kills the run once ``step`` is done (after any checkpoint of that step)."""

    def __init__(self, step: int):
        self.step = step

    def __call__(self, step: int, _stats: dict) -> None:
        if step >= self.step:
            raise Killed


@pytest.fixture(scope="module")
def arch(tmp_path_factory):
    """The test's architecture as an importable module; its name, a scripted file and the module."""
    root = tmp_path_factory.mktemp("usercode")
    name = f"usergen_{uuid.uuid4().hex[:8]}"
    (root / f"{name}.py").write_text(textwrap.dedent(ARCH))
    sys.path.insert(0, str(root))
    mod = __import__(name)
    scripted = root / "mine.pt"
    torch.jit.save(torch.jit.script(mod.make()), str(scripted))
    yield types.SimpleNamespace(name=name, mod=mod, scripted=scripted, root=root)
    sys.path.remove(str(root))
    sys.modules.pop(name, None)


def _real(size: int = 24, n: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _all_equal(a, b) -> None:
    assert set(a.tensors) == set(b.tensors)
    for k in a.tensors:
        assert torch.equal(a.tensors[k], b.tensors[k]), k


def test_cli_tunes_a_torchscript_generator_on_builtin_data(arch, tmp_path):
    """gazetune gan tune --generator mine.pt --data builtin: the 25 px grey faces are resized to the
    generator's 24 px RGB; warm-up rows are tagged; the run samples, evaluates and renders."""
    (tmp_path / "small.toml").write_text("d_width = 4\nbatch = 4\nn_samples = 4\nlog_every = 1\n")
    runner = CliRunner()
    run = tmp_path / "run"
    r = runner.invoke(app, ["gan", "tune", "--generator", str(arch.scripted), "--images", "builtin", "--steps", "3",
                            "--warmup-steps", "2", "--mode", "none", "--out", str(run),
                            "--config", str(tmp_path / "small.toml")])
    assert r.exit_code == 0, r.output
    assert "D warm-up (2 steps" in r.output
    cfg = load_config(TuneConfig, run / "config.toml")
    assert (cfg.size, cfg.channels, cfg.z_dim, cfg.g_arch) == (24, 3, 6, "torchscript")
    assert cfg.generator == str(arch.scripted) and cfg.warmup_steps == 2
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    steps = [x for x in rows if x["kind"] == "step"]
    assert [(x["step"], x["phase"]) for x in steps] == [(1, "warmup"), (2, "warmup"), (3, "tune"), (4, "tune"),
                                                      (5, "tune")]
    assert "G/eq1" not in steps[0] and "health/acc_real" in steps[0] and "G/eq1" in steps[2]
    warm = [x for x in rows if x.get("event") == "d_warmup"]
    assert len(warm) == 1 and warm[0]["phase"] == "warmup" and "last_window_acc" in warm[0]
    export = [x for x in rows if x.get("event") == "generator_export"]
    assert export and export[0]["torchscript"] == "torchscript"
    assert "d_warmup" in json.loads((run / "health.json").read_text())

    # the generator moved; the run loads as a gazetune generator and as plain TorchScript
    before = torch.jit.load(str(arch.scripted))
    ck = read_checkpoint(run / "checkpoint.safetensors")
    assert any(not torch.equal(before.state_dict()[k], ck.state_dict("G")["net." + k]) for k in before.state_dict())
    z = latents_from_seeds([0, 1, 2], 6)
    with torch.no_grad():
        tuned = load_generator(run)(z)
        exported = torch.jit.load(str(run / "generator.pt"))(z)
        original = before(z)
    assert tuned.shape == (3, 3, 24, 24) and torch.equal(tuned, exported)
    assert not torch.equal(tuned, original)
    state = load_file(run / "generator.safetensors")
    fresh = torch.jit.load(str(arch.scripted))
    fresh.load_state_dict(state)
    assert torch.equal(fresh(z), tuned)

    # sampling (stages.render) and evaluation of the run
    from gazetune.stages import render

    imgs = render(run, [0, 1, 2])
    assert imgs.shape == (3, 3, 24, 24) and np.allclose(imgs, tuned.numpy(), atol=1e-6)
    np.savez(tmp_path / "real.npz", images=(np.random.default_rng(0).integers(0, 256, (8, 24, 24, 3))).astype(np.uint8))
    r = runner.invoke(app, ["eval", "images", "--real", str(tmp_path / "real.npz"), "--generator", str(run), "--n", "8",
                            "--metrics", "swd", "--json", str(tmp_path / "ev.json")])
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "ev.json").read_text())
    assert any(isinstance(v, dict) and np.isfinite(v.get("swd", np.nan)) for v in result.values()), result

    # tuning again from the tuned run (a run carries its D: no warm-up) and with --discriminator
    r = runner.invoke(app, ["gan", "tune", "--generator", str(run), "--images", "builtin", "--steps", "1", "--mode", "none",
                            "--out", str(tmp_path / "again"), "--config", str(tmp_path / "small.toml")])
    assert r.exit_code == 0, r.output
    again = load_config(TuneConfig, tmp_path / "again" / "config.toml")
    assert again.warmup_steps == 0 and again.g_arch == "torchscript"
    r = runner.invoke(app, ["gan", "tune", "--generator", str(arch.scripted), "--discriminator", str(run), "--images",
                            "builtin", "--steps", "1", "--mode", "none", "--out", str(tmp_path / "withd"),
                            "--config", str(tmp_path / "small.toml")])
    assert r.exit_code == 0, r.output
    assert load_config(TuneConfig, tmp_path / "withd" / "config.toml").warmup_steps == 0


def test_factory_generator_resumes_bit_identically_after_a_kill(arch, tmp_path):
    """A class-conditional factory generator: warm-up + tuning killed in the middle and resumed
    ends with the same weights, optimiser moments and RNG states as a straight run."""
    spec = f"{arch.name}:make_conditional"
    cfg = TuneConfig(**SMALL, steps=3, warmup_steps=2, checkpoint_every=2)
    straight = tune(cfg, _real(), MapProvider("none"), tmp_path / "straight", generator=spec, progress=False)
    out = tmp_path / "killed"
    with pytest.raises(Killed):  # killed after step 3 (first tuning step); last checkpoint at step 2
        tune(cfg, _real(), MapProvider("none"), out, generator=spec, progress=False, hooks=[KillAfter(3)])
    assert read_checkpoint(out / "checkpoint.safetensors").metadata["step"] == "2"
    tune(cfg, _real(), MapProvider("none"), out, generator=spec, resume=True, progress=False)
    a, b = read_checkpoint(straight), read_checkpoint(out / "checkpoint.safetensors")
    assert a.metadata["step"] == "5"
    _all_equal(a, b)
    # the state dict loads into what the factory builds; the spec is in the run's config
    assert load_config(TuneConfig, out / "config.toml").generator == spec
    net = arch.mod.make_conditional()
    net.load_state_dict(load_file(out / "generator.safetensors"))
    g = load_generator(out)
    assert isinstance(g, AdaptedGenerator) and g.z_dim == 7 and g.c_dim == 3
    z = latents_from_seeds([3, 4, 5, 6], 7)
    with torch.no_grad():
        assert torch.allclose(g(z), net(z[:, :6], torch.nn.functional.one_hot(g.labels(z), 3).float()))
        untuned = AdaptedGenerator(arch.mod.make_conditional(), 6, 3)(z)
        assert not torch.equal(g(z), untuned)
    # the traced export loads without the user's code
    ts = torch.jit.load(str(out / "generator.pt"))
    assert torch.allclose(ts(z), g(z), atol=1e-6)


def test_class_labels_are_uniform_and_fixed_by_the_seed(arch):
    g = AdaptedGenerator(arch.mod.make_conditional(), 6, 3)
    z = latents_from_seeds(range(3000), 7)
    counts = torch.bincount(g.labels(z), minlength=3).float() / 3000
    assert torch.all((counts - 1 / 3).abs() < 0.04), counts
    assert torch.equal(g.labels(z[:10]), g.labels(latents_from_seeds(range(10), 7)))


def test_size_and_channels_come_from_the_generator(arch, tmp_path):
    res = resolve_generator(f"{arch.name}:make")
    assert (res.size, res.channels, res.G.z_dim) == (24, 3, 6)
    with pytest.raises(ValueError, match=r"\(N, 3, 24, 24\)"):
        tune(TuneConfig(**SMALL, steps=1, warmup_steps=0), _real(25), MapProvider("none"), tmp_path / "t",
             generator=f"{arch.name}:make", progress=False)


def test_bad_specs_name_what_is_wrong(arch, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Python factory"):
        resolve_generator(tmp_path / "nope.pt")
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        resolve_generator("no_such_module_xyz:make")
    with pytest.raises(AttributeError, match="has no 'missing'"):
        resolve_generator(f"{arch.name}:missing")
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.bin"):
        resolve_generator(tmp_path / "junk.bin")


def test_stylegan_pickle_without_nvlabs_code_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dnnlib", None)  # import dnnlib raises ImportError
    monkeypatch.setitem(sys.modules, "torch_utils", None)
    (tmp_path / "net.pkl").write_bytes(pickle.dumps({"G_ema": "not loaded"}))
    with pytest.raises(ImportError, match=r"dnnlib and torch_utils.*PYTHONPATH"):
        resolve_generator(tmp_path / "net.pkl")
    r = CliRunner().invoke(app, ["gan", "tune", "--generator", str(tmp_path / "net.pkl"), "--out", str(tmp_path / "r")])
    assert r.exit_code != 0 and "dnnlib" in r.output and "torch_utils" in r.output


def test_stylegan_pickle_tunes_with_psi_and_noise_mode(tmp_path, monkeypatch):
    """With (stand-in) NVlabs modules importable, G_ema of the pickle is tuned with the given psi
    and noise mode and saved back as a pickle and a state dict."""
    (tmp_path / "fake_nv.py").write_text(textwrap.dedent(FAKE_NV))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("dnnlib", "torch_utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "legacy", None)
    import fake_nv

    torch.manual_seed(0)
    (tmp_path / "net.pkl").write_bytes(pickle.dumps({"G": fake_nv.FakeNVGenerator(), "G_ema": fake_nv.FakeNVGenerator()}))
    cfg = TuneConfig(**SMALL, steps=2, warmup_steps=1, truncation_psi=0.7, noise_mode="random")
    real = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = torch.get_rng_state()
    out = tune(cfg, real, MapProvider("none"), tmp_path / "run", generator=tmp_path / "net.pkl", progress=False)
    assert torch.equal(before, torch.get_rng_state())  # random noise drawn from the run's own generator
    run = out.parent
    tuned = load_stylegan_pickle(run / "generator.pkl")
    assert any(psi == 0.7 for psi, _ in tuned.calls)
    orig = load_stylegan_pickle(tmp_path / "net.pkl")
    assert not torch.equal(tuned.synthesis.weight, orig.synthesis.weight)
    assert set(load_file(run / "generator.safetensors")) == set(orig.state_dict())
    g = load_generator(run)
    assert g.psi == 0.7 and g.noise_mode == "random"
    z = latents_from_seeds([0, 1], 5)
    with torch.no_grad():
        assert torch.equal(g(z), g(z))  # eval mode: the constant noise, one image per seed
        g.train()
        state = g.rng_state.clone()
        a, b = g(z), g(z)  # training: fresh noise from the private generator, replayable from its state
        g.rng_state.copy_(state)
        assert not torch.equal(a, b) and torch.equal(g(z), a)


class _MeanSaliency(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=1, keepdim=True).abs() + 0.1


@pytest.mark.parametrize("mode", ["predicted", "direct"])
def test_external_generator_tunes_with_maps(arch, tmp_path, mode):
    """Maps weight the per-pixel losses (eq 9b/10b) of an external generator: predicted by a
    saliency model, or measured, the synthetic ones named by the factory's version ("make")."""
    from gazetune.tune.maps import MapSet

    res = resolve_generator(f"{arch.name}:make")
    assert res.version == "make"
    if mode == "predicted":
        provider = MapProvider("predicted", saliency_model=_MeanSaliency())
    else:
        rng = np.random.default_rng(0)
        maps = MapSet(real={str(k): rng.random((24, 24), dtype=np.float32) for k in range(12)},
                      synthetic={("make", s): rng.random((24, 24), dtype=np.float32) for s in range(4)})
        provider = MapProvider("direct", maps=maps, generator_version=res.version)
    cfg = TuneConfig(**{**SMALL, "mode": mode}, steps=1, warmup_steps=1, checkpoint_every=0)
    tune(cfg, _real(), provider, tmp_path / "run", generator=res, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    tuned = [x for x in rows if x.get("phase") == "tune"]
    assert tuned and "G/eq9b" in tuned[-1] and "D/eq10b" in tuned[-1]
