"""``TrainConfig.precision`` (bf16 autocast) and ``channels_last``: runs, matches fp32 / the default
layout within tolerance, resumes with its settings, CLI flags.  bf16 autocast runs on the CPU in
PyTorch 2.x, so everything here runs without a GPU.  Tiny nets (16 px, width 8), a few steps."""

from __future__ import annotations

import json
import math
import sys
import textwrap
import uuid

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gazetune.checkpoint import read_checkpoint
from gazetune.cli import app
from gazetune.config import load_config
from gazetune.nets.discriminator import UNetDiscriminator
from gazetune.nets.external import NVlabsGenerator
from gazetune.tune.maps import MapProvider
from gazetune.tune.train import TrainConfig, TuneConfig, pretrain, tune

TINY = dict(size=16, channels=3, z_dim=8, g_width=8, d_width=8, batch=4, log_every=1, sample_every=0,
            checkpoint_every=0, n_samples=4, r1_gamma=1.0, r1_interval=2)


def _real(n: int = 8, size: int = 16, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, channels, size, size)).astype(np.float32)


def _rows(run) -> list[dict]:
    return [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r.get("kind") == "step"]


def _losses(row: dict) -> dict[str, float]:
    return {k: v for k, v in row.items() if k.startswith(("D/", "G/"))}


class RecordingD(UNetDiscriminator):
    """A U-Net D that records, per call, whether autocast is on, whether its input and its conv
    weights are channels-last (and not plain contiguous), and the input's dtype."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen: list[tuple[bool, bool, torch.dtype, bool]] = []

    def forward(self, x):
        w = next(p for p in self.parameters() if p.ndim == 4)
        self.seen.append((torch.is_autocast_enabled("cpu"), _cl(x), x.dtype, _cl(w)))
        return super().forward(x)


def _cl(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _recording_d(cfg: TrainConfig) -> RecordingD:
    torch.manual_seed(cfg.seed)
    return RecordingD(cfg.size, cfg.channels, cfg.d_width, spectral=cfg.spectral_norm, norm=cfg.d_norm)


def test_bf16_pretraining_runs_finite_and_close_to_fp32(tmp_path):
    runs = {}
    for prec in ("fp32", "bf16"):
        cfg = TrainConfig(**TINY, steps=3, precision=prec)
        D = _recording_d(cfg)
        pretrain(cfg, _real(), tmp_path / prec, progress=False, discriminator=D)
        runs[prec] = (_rows(tmp_path / prec), D.seen)
    (rows32, seen32), (rows16, seen16) = runs["fp32"], runs["bf16"]
    assert len(rows16) == 3
    for row in rows16:
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float)), row
    # the main phases ran under autocast, R1 (Dreg, real images with grad) in float32; fp32 never
    assert {s[0] for s in seen16} == {True, False} and not any(s[0] for s in seen32)
    assert all(s[2] == torch.float32 for s in seen16)  # the batches themselves stay float32
    a, b = _losses(rows32[0]), _losses(rows16[0])
    assert set(a) == set(b) and "D/r1" in a
    for k in a:  # same weights and batch at step 1: only the arithmetic differs
        assert b[k] == pytest.approx(a[k], rel=0.05, abs=0.02), k
    assert any(a[k] != b[k] for k in a)  # bf16 did change the arithmetic
    assert load_config(TrainConfig, tmp_path / "bf16" / "config.toml").precision == "bf16"


def test_channels_last_matches_the_default_layout(tmp_path):
    seen = {}
    for cl in (False, True):
        cfg = TrainConfig(**TINY, steps=3, channels_last=cl)
        D = _recording_d(cfg)
        pretrain(cfg, _real(), tmp_path / str(cl), progress=False, discriminator=D)
        seen[cl] = D.seen
    # every batch (R1's real images too) and D's weights channels-last; by default the weights are
    # not, nor R1's real batch (DiffAugment's output is channels-last on the CPU either way)
    assert all(s[1] and s[3] for s in seen[True])
    assert not any(s[3] for s in seen[False]) and not all(s[1] for s in seen[False])
    # the same losses and gradient norms step by step (the weights themselves are not compared:
    # Adam turns float rounding in a near-zero gradient into a step of up to lr either way)
    rows0, rows1 = _rows(tmp_path / "False"), _rows(tmp_path / "True")
    assert len(rows0) == len(rows1) == 3
    for r0, r1 in zip(rows0, rows1):
        for k, v in _losses(r0).items():
            assert r1[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
        for k in ("health/grad_D", "health/grad_G"):
            assert r1[k] == pytest.approx(r0[k], rel=1e-3), k
    a = read_checkpoint(tmp_path / "False" / "checkpoint.safetensors")
    b = read_checkpoint(tmp_path / "True" / "checkpoint.safetensors")
    assert set(a.tensors) == set(b.tensors)  # the same checkpoint (contiguous tensors) either way
    assert load_config(TrainConfig, tmp_path / "True" / "config.toml").channels_last is True


def test_bf16_channels_last_run_resumes_bit_identically(tmp_path):
    cfg = TrainConfig(**{**TINY, "checkpoint_every": 2}, steps=4, precision="bf16", channels_last=True)
    straight = pretrain(cfg, _real(), tmp_path / "straight", progress=False)
    half = pretrain(TrainConfig(**{**TINY, "checkpoint_every": 2}, steps=2, precision="bf16", channels_last=True),
                    _real(), tmp_path / "resumed", progress=False)
    pretrain(cfg, _real(), tmp_path / "resumed", resume=True, progress=False)
    a, b = read_checkpoint(straight), read_checkpoint(half)
    assert a.metadata["step"] == b.metadata["step"] == "4"
    for k in a.tensors:
        assert torch.equal(a.tensors[k], b.tensors[k]), k


def test_invalid_values_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="channels_last"):
        TuneConfig(channels_last="yes")
    runner = CliRunner()
    r = runner.invoke(app, ["gan", "pretrain", "--out", str(tmp_path / "x"), "--precision", "fp16"])
    assert r.exit_code != 0 and "--precision" in r.output
    (tmp_path / "bad.toml").write_text('precision = "fp16"\n')
    r = runner.invoke(app, ["gan", "pretrain", "--out", str(tmp_path / "y"), "--config", str(tmp_path / "bad.toml")])
    assert r.exit_code != 0 and "precision" in r.output and "fp16" in r.output
    assert not (tmp_path / "y" / "checkpoint.safetensors").exists()


def test_cli_flags_recorded_and_kept_on_resume(tmp_path):
    np.savez(tmp_path / "data.npz", images=(255 * (_real(8, 16, 1)[:, 0] + 1) / 2).astype(np.uint8))
    (tmp_path / "small.toml").write_text("z_dim = 8\ng_width = 8\nd_width = 8\nbatch = 4\nn_samples = 4\n"
                                         "size = 16\nchannels = 1\nsample_every = 0\n")
    runner = CliRunner()
    pre = tmp_path / "pre"
    base = ["--images", str(tmp_path / "data.npz"), "--config", str(tmp_path / "small.toml")]
    r = runner.invoke(app, ["gan", "pretrain", *base, "--steps", "1", "--out", str(pre), "--precision", "bf16",
                            "--channels-last"])
    assert r.exit_code == 0, r.output
    cfg = load_config(TrainConfig, pre / "config.toml")
    assert (cfg.precision, cfg.channels_last) == ("bf16", True)
    r = runner.invoke(app, ["gan", "pretrain", *base, "--steps", "2", "--out", str(pre), "--resume"])
    assert r.exit_code == 0, r.output
    cfg = load_config(TrainConfig, pre / "config.toml")
    assert (cfg.steps, cfg.precision, cfg.channels_last) == (2, "bf16", True)  # kept without the flags
    tuned = tmp_path / "tuned"
    r = runner.invoke(app, ["gan", "tune", "--generator", str(pre), "--images", str(tmp_path / "data.npz"),
                            "--mode", "none", "--steps", "1", "--batch", "4", "--out", str(tuned),
                            "--precision", "bf16", "--channels-last"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["gan", "tune", "--images", str(tmp_path / "data.npz"), "--mode", "none", "--steps", "2",
                            "--batch", "4", "--out", str(tuned), "--resume", "--no-channels-last"])
    assert r.exit_code == 0, r.output
    cfg = load_config(TuneConfig, tuned / "config.toml")  # precision kept, the layout given anew
    assert (cfg.steps, cfg.precision, cfg.channels_last) == (2, "bf16", False)
    assert read_checkpoint(tuned / "checkpoint.safetensors").metadata["step"] == "2"


ARCH = '''
import torch
from torch import nn


class TinyGen(nn.Module):
    def __init__(self):
        super().__init__()
        self.z_dim = 6
        self.stem = nn.Linear(6, 8 * 4 * 4)
        self.up = nn.ConvTranspose2d(8, 8, 4, stride=4)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, z):
        x = torch.relu(self.stem(z)).view(-1, 8, 4, 4)
        return torch.tanh(self.out(torch.relu(self.up(x))))


def make():
    torch.manual_seed(3)
    return TinyGen()
'''


@pytest.mark.parametrize("form", ["factory", "torchscript"])
def test_external_generator_tunes_in_bf16_channels_last(tmp_path, form):
    name = f"precgen_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(ARCH))
    sys.path.insert(0, str(tmp_path))
    try:
        mod = __import__(name)
        spec = f"{name}:make"
        if form == "torchscript":
            spec = str(tmp_path / "mine.pt")
            torch.jit.save(torch.jit.script(mod.make()), spec)
        cfg = TuneConfig(d_width=8, batch=4, log_every=1, n_samples=4, sample_every=0, mode="none", steps=2,
                         warmup_steps=1, precision="bf16", channels_last=True)
        out = tune(cfg, torch.as_tensor(_real()), MapProvider("none"), tmp_path / "run", generator=spec,
                   progress=False)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
    rows = _rows(tmp_path / "run")
    assert len(rows) == 3 and all(math.isfinite(v) for r in rows for v in _losses(r).values())
    ck = read_checkpoint(out)
    before = mod.make().state_dict()
    moved = [k for k, v in before.items() if not torch.allclose(ck.tensors[f"G/net.{k}"], v)]
    assert moved  # the generator's weights were tuned
    assert (tmp_path / "run" / "generator.safetensors").exists()


def test_stylegan_network_runs_outside_autocast():
    """NVlabs code sets its own precision and its CUDA kernels take fp16/fp32 only: the adapter
    switches autocast off around it and returns float32."""

    class FakeNV(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.z_dim, self.c_dim = 4, 0
            self.lin = torch.nn.Linear(4, 64)
            self.seen = []

        def forward(self, z, c, truncation_psi=1, noise_mode="const"):
            self.seen.append((torch.is_autocast_enabled("cpu"), z.dtype))
            return torch.tanh(self.lin(z)).view(-1, 1, 8, 8)

    g = NVlabsGenerator(FakeNV())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = g(torch.randn(2, 4))
    assert g.net.seen == [(False, torch.float32)] and x.dtype == torch.float32


def test_style_generator_pretrains_in_bf16(tmp_path):
    cfg = TrainConfig(**TINY, steps=1, g_arch="style", precision="bf16")
    pretrain(cfg, _real(), tmp_path / "style", progress=False)
    assert all(math.isfinite(v) for v in _losses(_rows(tmp_path / "style")[0]).values())
