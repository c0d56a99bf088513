"""Training loop: outputs of a run, bit-exact resume after a kill, tuning moves the generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gazetune.config import load_config
from gazetune.nets import load_generator
from gazetune.checkpoint import read_checkpoint
from gazetune.tune.maps import MapProvider, MapSet
from gazetune.tune.train import TrainConfig, TuneConfig, pretrain, tune

SMALL = dict(size=25, channels=1, z_dim=8, g_width=4, d_width=4, batch=4, log_every=1, n_samples=4)


def _images(n: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 25, 25, generator=g) * 2 - 1


class Killed(Exception):
    pass


def _kill_at(step: int):
    def hook(s: int, _stats: dict) -> None:
        if s == step:
            raise Killed

    return hook


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "run"
    cfg = TrainConfig(**SMALL, steps=4, sample_every=2, checkpoint_every=2)
    pretrain(cfg, _images(), out, progress=False)
    return out, cfg


def test_pretrain_writes_run_files(pretrained):
    out, cfg = pretrained
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint.safetensors", "config.toml", "health.json", "log.jsonl", "samples_000002.png",
                     "samples_000004.png"]
    assert load_config(TrainConfig, out / "config.toml") == cfg.resolved()
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert {x["kind"] for x in lines} == {"step"}
    assert {"D/eq2", "D/eq10a", "G/eq1", "G/eq9a", "wall_s", "health/acc_real", "health/acc_fake",
            "health/logit_gap", "health/grad_D", "health/grad_G"} <= set(lines[0])
    health = json.loads((out / "health.json").read_text())
    assert health["steps_measured"] == 4 and health["warnings"] == []
    ck = read_checkpoint(out / "checkpoint.safetensors")
    assert ck.metadata["step"] == "4" and ck.metadata["generator_version"] == "run@4"
    g = load_generator(out)
    assert g(torch.zeros(2, 8)).shape == (2, 1, 25, 25)


def test_resume_after_kill_is_bit_identical(pretrained, tmp_path):
    straight, cfg = pretrained
    out = tmp_path / "killed"
    with pytest.raises(Killed):  # killed after step 3; last checkpoint is step 2
        pretrain(cfg, _images(), out, progress=False, hooks=[_kill_at(3)])
    assert read_checkpoint(out / "checkpoint.safetensors").metadata["step"] == "2"
    with pytest.raises(FileExistsError, match="resume"):
        pretrain(cfg, _images(), out, progress=False)
    pretrain(cfg, _images(), out, resume=True, progress=False)
    a = read_checkpoint(straight / "checkpoint.safetensors")
    b = read_checkpoint(out / "checkpoint.safetensors")
    assert a.metadata["step"] == b.metadata["step"] == "4"
    assert set(a.tensors) == set(b.tensors)
    for k in a.tensors:  # G, D, G_ema, Adam moments, RNG states
        assert torch.equal(a.tensors[k], b.tensors[k]), k


def test_tune_moves_generator_and_logs_mode(pretrained, tmp_path):
    pre, _ = pretrained
    names = [f"img{k}" for k in range(12)]
    rng = np.random.default_rng(0)
    maps = MapSet(
        real={n: rng.random((10, 10), dtype=np.float32) for n in names[:6]},  # resized to 25 px
        synthetic={("run@4", s): rng.random((25, 25), dtype=np.float32) for s in (3, 7)},
    )
    provider = MapProvider("auto", maps=maps, min_observed=8)
    cfg = TuneConfig(batch=4, steps=2, log_every=1, sample_every=0, checkpoint_every=0, alpha=0.5, lr_g=1e-3)
    tune(cfg, _images(), provider, tmp_path / "tuned", init_checkpoint=pre, names=names, progress=False)
    before = read_checkpoint(pre / "checkpoint.safetensors").state_dict("G")
    after = read_checkpoint(tmp_path / "tuned" / "checkpoint.safetensors").state_dict("G")
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved, "a tuning step must change generator weights"
    lines = [json.loads(x) for x in (tmp_path / "tuned" / "log.jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "event" and lines[0]["event"] == "map_mode" and lines[0]["mode"] == "direct"
    assert lines[0]["n_real_maps"] == 6 and lines[0]["n_synthetic_maps"] == 2
    assert lines[1]["event"] == "optimizer_state" and lines[1]["restored"] == ["G", "D"]
    assert "G/eq9b" in lines[2] and "D/eq10b" in lines[2]
    saved = load_config(TuneConfig, tmp_path / "tuned" / "config.toml")
    assert saved.size == 25 and saved.z_dim == 8 and saved.alpha == 0.5  # network fields from the checkpoint
    assert saved.lr_d == pytest.approx(4 * 1e-3)  # unset lr_d: 4x lr_G at the generator's 25 px


def test_default_lr_d_follows_the_image_side(tmp_path):
    """lr_d unset: 4x lr_G up to 32 px, 1x above (at 64 px 4x killed D); the run's config.toml
    and its optimiser hold the number; a given lr_d is kept at any size."""
    from gazetune.tune.train import default_lr_d

    assert default_lr_d(32, 2e-4) == pytest.approx(8e-4) and default_lr_d(64, 2e-4) == pytest.approx(2e-4)
    assert TrainConfig().resolved().lr_d == pytest.approx(8e-4)
    assert TuneConfig().resolved().lr_d == pytest.approx(4e-4)
    assert TrainConfig(size=64, lr_d=5e-4).resolved().lr_d == 5e-4
    g = torch.Generator().manual_seed(0)
    for size, lr_d, want in ((64, None, 2e-4), (64, 6e-4, 6e-4), (32, None, 8e-4)):
        cfg = TrainConfig(**{**SMALL, "size": size}, lr_d=lr_d, steps=1, sample_every=0, checkpoint_every=0)
        out = tmp_path / f"s{size}_{lr_d}"
        pretrain(cfg, torch.rand(4, 1, size, size, generator=g) * 2 - 1, out, progress=False)
        assert load_config(TrainConfig, out / "config.toml").lr_d == pytest.approx(want)
        ck = read_checkpoint(out / "checkpoint.safetensors")
        assert json.loads(ck.metadata["opt_D/param_groups"])[0]["lr"] == pytest.approx(want)
        assert json.loads(ck.metadata["opt_G/param_groups"])[0]["lr"] == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="lr_d"):
        TrainConfig(lr_d=-1e-4)


def test_tune_restores_the_base_adam_moments_at_the_tuning_lr(pretrained, tmp_path):
    """optimizer_state "restore" (default): G's and D's Adam moments continue from the pretraining
    checkpoint (step count base + 1; second moments v = b2 v_base + (1 - b2) g^2 >= b2 v_base in
    every weight) at the tuning run's learning rates; "fresh" starts them at zero."""
    pre, pcfg = pretrained
    base = read_checkpoint(pre / "checkpoint.safetensors")
    runs = {}
    for state in ("restore", "fresh"):
        cfg = TuneConfig(batch=4, steps=1, log_every=1, sample_every=0, checkpoint_every=0, alpha=0.0, mode="none",
                         lr_g=3e-5, lr_d=7e-5, optimizer_state=state)
        tune(cfg, _images(), MapProvider("none"), tmp_path / state, init_checkpoint=pre, progress=False)
        runs[state] = read_checkpoint(tmp_path / state / "checkpoint.safetensors")
    b2 = pcfg.beta2
    for name, lr in (("G", 3e-5), ("D", 7e-5)):
        for state, ck in runs.items():
            assert json.loads(ck.metadata[f"opt_{name}/param_groups"])[0]["lr"] == lr
        keys = [k for k in base.tensors if k.startswith(f"opt_{name}/state/") and k.endswith("/exp_avg_sq")]
        assert keys
        for k in keys:
            step = k.replace("exp_avg_sq", "step")
            assert float(runs["restore"].tensors[step]) == float(base.tensors[step]) + 1 == pcfg.steps + 1
            assert float(runs["fresh"].tensors[step]) == 1
            v_base, v_after = base.tensors[k], runs["restore"].tensors[k]
            assert torch.all(v_after >= b2 * v_base * (1 - 1e-6)), k
            assert not torch.all(runs["fresh"].tensors[k] >= b2 * v_base * (1 - 1e-6)), k  # the check can fail
    events = [json.loads(x) for x in (tmp_path / "fresh" / "log.jsonl").read_text().splitlines()]
    assert not [e for e in events if e.get("event") == "optimizer_state"]
    with pytest.raises(ValueError, match="optimizer_state"):
        TuneConfig(optimizer_state="warm")


def test_tune_rejects_wrong_images(pretrained, tmp_path):
    pre, _ = pretrained
    with pytest.raises(ValueError, match=r"\(N, 1, 25, 25\)"):
        tune(TuneConfig(steps=1), torch.zeros(4, 3, 25, 25), MapProvider("none"), tmp_path / "t", pre, progress=False)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        tune(TuneConfig(steps=1), torch.full((4, 1, 25, 25), 3.0), MapProvider("none"), tmp_path / "t", pre, progress=False)


class CountingSaliency(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0
        self.scale = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        self.calls += 1
        return self.scale * x.mean(dim=1, keepdim=True)


def test_predicted_step_predicts_fakes_once_and_trains_neither_model():
    from gazetune.nets import DCGANGenerator, UNetDiscriminator
    from gazetune.tune.train import GazeGANLoss, sample_batch, train_step

    torch.manual_seed(0)
    cfg = TuneConfig(**SMALL, steps=1, cutmix_prob=1.0, alpha=1.0)
    G = DCGANGenerator(8, 25, 1, 4)
    D = UNetDiscriminator(25, 1, 4)
    sal = CountingSaliency()
    provider = MapProvider("predicted", saliency_model=sal)
    provider.bind([str(k) for k in range(12)], (25, 25), 8)
    gen = torch.Generator().manual_seed(0)
    loss = GazeGANLoss(G, D, cfg, provider, gen)
    opts = {"G": torch.optim.Adam(G.parameters()), "D": torch.optim.Adam(D.parameters())}
    stats = train_step(loss, opts, None, sample_batch(provider, _images(), 4, gen))
    assert {"D/eq10b", "G/eq9b", "D/cutmix", "D/consistency"} <= set(stats)
    assert sal.calls == 2  # real batch once, fakes once (reused by Gmain: G unchanged after Dmain)
    assert sal.scale.grad is None


def test_history_share_resumes_bit_identical_and_is_checkpointed(tmp_path):
    """SimGAN history on (share 0.5): the pool goes into the checkpoint, and a run killed and
    resumed ends with the same weights, optimiser state and pool as a straight run."""
    cfg = TrainConfig(**SMALL, steps=4, sample_every=0, checkpoint_every=2, history_share=0.5, history_capacity=6)
    straight = pretrain(cfg, _images(), tmp_path / "straight", progress=False)
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        pretrain(cfg, _images(), out, progress=False, hooks=[_kill_at(3)])
    pretrain(cfg, _images(), out, resume=True, progress=False)
    a, b = read_checkpoint(straight), read_checkpoint(out / "checkpoint.safetensors")
    assert a.tensors["history/items"].shape == (6, 1, 25, 25)  # 2 per step, capped at the capacity
    assert set(a.tensors) == set(b.tensors)
    for k in a.tensors:
        assert torch.equal(a.tensors[k], b.tensors[k]), k
    # and the history changes training: same seed without it ends elsewhere
    off = pretrain(TrainConfig(**SMALL, steps=4, sample_every=0, checkpoint_every=2), _images(), tmp_path / "off",
                   progress=False)
    c = read_checkpoint(off)
    assert "history/items" not in c.tensors
    assert any(not torch.equal(a.tensors[k], c.tensors[k]) for k in a.tensors if k.startswith("D/"))


def test_history_carries_direct_maps_with_their_images():
    """In direct mode an old fake comes back with its own map (one extra channel in the pool)."""
    from gazetune.nets import DCGANGenerator, UNetDiscriminator
    from gazetune.tune.history import HistoryBuffer
    from gazetune.tune.train import GazeGANLoss

    cfg = TuneConfig(**SMALL, steps=1)
    loss = GazeGANLoss(DCGANGenerator(8, 25, 1, 4), UNetDiscriminator(25, 1, 4), cfg, MapProvider("none"),
                       torch.Generator().manual_seed(0), history=HistoryBuffer(16, 0.5, seed=3))
    seen_old = 0
    for k in range(4):
        fake = torch.rand(8, 1, 25, 25, generator=torch.Generator().manual_seed(k))
        sm = fake.mean(dim=(2, 3), keepdim=True).expand(-1, 1, 25, 25) * 10 + k  # a map that names its image
        mixed, mixed_sm = loss._mix_history(fake, sm)
        assert mixed.shape == fake.shape and mixed_sm.shape == sm.shape
        # every map still belongs to the image beside it
        expect = mixed.mean(dim=(2, 3), keepdim=True) * 10
        batch_of = torch.round(mixed_sm[:, :, :1, :1] - expect).flatten()
        assert torch.allclose(mixed_sm[:, :, :1, :1] - expect, batch_of.view(-1, 1, 1, 1), atol=1e-4)
        assert torch.equal(mixed[:4], fake[:4])  # current fakes first
        seen_old += int((batch_of < k).sum())
    assert seen_old > 0  # later batches really contain earlier images


class _RecordingD(torch.nn.Module):
    """Wraps a discriminator and keeps its pixel logits (with their gradient) of the last call."""

    def __init__(self, d):
        super().__init__()
        self.d = d
        self.pix = None

    def forward(self, x):
        img, pix = self.d(x)
        pix.retain_grad()
        self.pix = pix
        return img, pix


@pytest.mark.parametrize("phase", ["Dmain", "Gmain"])
def test_alpha_weights_the_gradients_exactly_where_the_map_is(phase):
    """Through the loss object: with alpha = 1 the per-pixel gradient is zero where the map is
    zero and the map's weight times the alpha = 0 gradient where it is not."""
    from gazetune.nets import DCGANGenerator, UNetDiscriminator
    from gazetune.tune.train import Batch, GazeGANLoss

    torch.manual_seed(0)
    G, D = DCGANGenerator(8, 25, 1, 4), _RecordingD(UNetDiscriminator(25, 1, 4))
    sm = torch.zeros(4, 1, 25, 25)
    sm[:, :, 5:15, 5:15] = 1.0  # the map: a 10 x 10 square
    batch = Batch(real=_images(4), z=torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), sm_real=sm, sm_fake=sm)
    grads = {}
    for alpha in (0.0, 1.0):
        cfg = TuneConfig(**SMALL, steps=1, alpha=alpha, diffaug="", cutmix_prob=0.0, pixel_weight=1.0)
        loss = GazeGANLoss(G, D, cfg, MapProvider("none"), torch.Generator().manual_seed(0))
        for p in list(G.parameters()) + list(D.parameters()):
            p.grad = None
        terms = loss.accumulate_gradients(phase, batch)
        assert ("D/eq10b" if phase == "Dmain" else "G/eq9b") in terms
        grads[alpha] = D.pix.grad.clone()
    inside = torch.zeros_like(grads[0.0], dtype=torch.bool)
    inside[:, :, 5:15, 5:15] = True
    weight = 25 * 25 / 100  # SM / mean(SM) inside the square
    assert torch.count_nonzero(grads[0.0][~inside]) > 0
    assert torch.all(grads[1.0][~inside] == 0)
    assert torch.allclose(grads[1.0][inside], weight * grads[0.0][inside], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("side", ["d", "g"])
def test_weight_side_weighs_only_its_own_network(side):
    """weight_side "d": D's per-pixel gradient is the weighted one (eq 10b) and G's the unweighted
    one (eq 9a, as with no maps); "g" the other way round.  Bad values are refused."""
    from gazetune.nets import DCGANGenerator, UNetDiscriminator
    from gazetune.tune.train import Batch, GazeGANLoss

    torch.manual_seed(0)
    G, D = DCGANGenerator(8, 25, 1, 4), _RecordingD(UNetDiscriminator(25, 1, 4))
    sm = torch.zeros(4, 1, 25, 25)
    sm[:, :, 5:15, 5:15] = 1.0
    batch = Batch(real=_images(4), z=torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), sm_real=sm, sm_fake=sm)

    def pixel_grad(phase, **kw):
        cfg = TuneConfig(**SMALL, steps=1, diffaug="", cutmix_prob=0.0, pixel_weight=1.0, **kw)
        loss = GazeGANLoss(G, D, cfg, MapProvider("none"), torch.Generator().manual_seed(0))
        for p in list(G.parameters()) + list(D.parameters()):
            p.grad = None
        terms = loss.accumulate_gradients(phase, batch)
        return terms, D.pix.grad.clone()

    for phase, weighted in (("Dmain", side == "d"), ("Gmain", side == "g")):
        terms, got = pixel_grad(phase, alpha=1.0, weight_side=side)
        _, plain = pixel_grad(phase, alpha=0.0)
        _, both = pixel_grad(phase, alpha=1.0, weight_side="both")
        name = {"Dmain": ("D/eq10b", "D/eq10a"), "Gmain": ("G/eq9b", "G/eq9a")}[phase]
        assert name[0 if weighted else 1] in terms and name[1 if weighted else 0] not in terms
        assert torch.equal(got, both if weighted else plain)
        assert not torch.equal(both, plain)  # the comparison can tell the two apart
    with pytest.raises(ValueError, match="weight_side"):
        TuneConfig(**SMALL, weight_side="both_sides")


def test_cutmix_pixel_loss_mixes_the_maps_with_the_images_mask(monkeypatch):
    """In a CutMix D step the pixel weights of the mixed image are the real image's weights where
    the mask takes the real image and the fake's elsewhere (the same mask as the pixels)."""
    from gazetune.nets import DCGANGenerator, UNetDiscriminator
    from gazetune.tune import train as T
    from gazetune.tune.losses import saliency_weights

    seen = {}
    original = T.L.discriminator_cutmix_loss

    def spy(pix, mask, weights=None, reduction="mean"):
        seen["mask"], seen["weights"] = mask.detach().clone(), weights.detach().clone()
        return original(pix, mask, weights, reduction)

    monkeypatch.setattr(T.L, "discriminator_cutmix_loss", spy)
    torch.manual_seed(0)
    sm_real = torch.zeros(4, 1, 25, 25)
    sm_real[:, :, 2:10, 2:10] = 1.0
    sm_fake = torch.zeros(4, 1, 25, 25)
    sm_fake[:, :, 12:22, 12:22] = 1.0
    batch = T.Batch(real=_images(4), z=torch.randn(4, 8, generator=torch.Generator().manual_seed(1)),
                    sm_real=sm_real, sm_fake=sm_fake)
    cfg = TuneConfig(**SMALL, steps=1, alpha=1.0, diffaug="", cutmix_prob=1.0)
    loss = T.GazeGANLoss(DCGANGenerator(8, 25, 1, 4), UNetDiscriminator(25, 1, 4), cfg, MapProvider("none"),
                         torch.Generator().manual_seed(0))
    terms = loss.accumulate_gradients("Dmain", batch)
    assert "D/cutmix" in terms
    mask = seen["mask"]
    assert 0 < float(mask.mean()) < 1  # both images present in the mix
    expected = mask * saliency_weights(sm_real, 1.0) + (1 - mask) * saliency_weights(sm_fake, 1.0)
    assert torch.allclose(seen["weights"], expected)
