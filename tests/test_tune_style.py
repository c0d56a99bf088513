"""The style-based generator in the training loop: pretrain --arch style, resume, tune, load."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from gazetune.checkpoint import read_checkpoint
from gazetune.cli import app
from gazetune.config import load_config
from gazetune.nets import load_generator
from gazetune.nets.latent import latents_from_seeds
from gazetune.nets.style_generator import StyleGenerator
from gazetune.tune.maps import MapProvider
from gazetune.tune.train import TrainConfig, TuneConfig, pretrain, tune

STYLE = dict(g_arch="style", size=16, channels=1, z_dim=8, g_width=4, d_width=4, batch=4, log_every=1, n_samples=4,
             sample_every=0)


def _images(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1


class _Stop(Exception):
    pass


def _stop_after(step: int):
    def hook(s: int, _stats: dict) -> None:
        if s >= step:
            raise _Stop

    return hook


def test_style_pretraining_resumes_bit_identically_and_tunes(tmp_path):
    cfg = TrainConfig(**STYLE, steps=4, checkpoint_every=2)
    straight = pretrain(cfg, _images(), tmp_path / "straight", progress=False)
    ck = read_checkpoint(straight)
    assert ck.metadata["generator_arch"] == "style"
    assert "G/rng_state" in ck.tensors  # its private draws (noise, mixing) resume with the run
    out = tmp_path / "killed"
    with pytest.raises(_Stop):
        pretrain(cfg, _images(), out, progress=False, hooks=[_stop_after(3)])
    pretrain(cfg, _images(), out, resume=True, progress=False)
    other = read_checkpoint(out / "checkpoint.safetensors")
    assert set(ck.tensors) == set(other.tensors)
    for k in ck.tensors:
        assert torch.equal(ck.tensors[k], other.tensors[k]), k

    g = load_generator(out)
    assert isinstance(g, StyleGenerator) and g.mixing_prob == 0.9
    z = latents_from_seeds([0, 1], 8)
    with torch.no_grad():
        before = g(z)

    # tuning rebuilds the style generator (no mixing, fixed noise: a seed is one image)
    tuned = tune(TuneConfig(batch=4, steps=2, log_every=1, sample_every=0, mode="none"), _images(), MapProvider("none"),
                 tmp_path / "tuned", init_checkpoint=out, progress=False)
    t = load_generator(tuned.parent)
    assert isinstance(t, StyleGenerator) and t.mixing_prob == 0.0 and t.noise_mode == "const"
    with torch.no_grad():
        assert not torch.equal(t(z), before)
    saved = load_config(TuneConfig, tmp_path / "tuned" / "config.toml")
    assert saved.g_arch == "style" and saved.warmup_steps == 0


def test_cli_pretrain_arch_style(tmp_path):
    (tmp_path / "s.toml").write_text("z_dim = 8\ng_width = 4\nd_width = 4\nbatch = 4\nn_samples = 4\nsample_every = 0\n")
    r = CliRunner().invoke(app, ["gan", "pretrain", "--arch", "style", "--size", "16", "--channels", "1", "--steps", "1",
                                 "--out", str(tmp_path / "run"), "--config", str(tmp_path / "s.toml")])
    assert r.exit_code == 0, r.output
    assert load_config(TrainConfig, tmp_path / "run" / "config.toml").g_arch == "style"
    assert isinstance(load_generator(tmp_path / "run"), StyleGenerator)
    with pytest.raises(ValueError, match="g_arch"):
        pretrain(TrainConfig(**{**STYLE, "g_arch": "nope"}, steps=1), _images(), tmp_path / "bad", progress=False)
