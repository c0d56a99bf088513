"""``gazetune gan pretrain / maps / tune`` end to end on a tiny .npz data set."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from gazetune.cli import app
from gazetune.checkpoint import read_checkpoint
from gazetune.tune.maps import MapSet


def test_gan_cli_pretrain_maps_tune(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"f{k}.png" for k in range(8)]
    np.savez(tmp_path / "data.npz", images=rng.integers(0, 256, (8, 25, 25), dtype=np.uint8), names=np.array(names))
    (tmp_path / "small.toml").write_text("z_dim = 8\ng_width = 4\nd_width = 4\nbatch = 4\nn_samples = 4\n")
    runner = CliRunner()
    pre = tmp_path / "pre"
    r = runner.invoke(app, [
        "gan", "pretrain", "--images", str(tmp_path / "data.npz"), "--size", "25", "--channels", "1",
        "--steps", "2", "--out", str(pre), "--config", str(tmp_path / "small.toml"),
    ])
    assert r.exit_code == 0, r.output
    assert (pre / "samples_000002.png").exists()
    version = read_checkpoint(pre / "checkpoint.safetensors").metadata["generator_version"]
    assert version == "pre@2"

    rows = ["image,subject,index,x,y,duration_ms"]
    rows += [f"{n},s1,0,12,12,300" for n in names[:3]] + [f"synthetic/{version}/5,s1,0,3,4,200"]
    (tmp_path / "fix.csv").write_text("\n".join(rows) + "\n")
    r = runner.invoke(app, [
        "gan", "map-set", "--fixations", str(tmp_path / "fix.csv"), "--sigma-px", "2", "--height-px", "25",
        "--width-px", "25", "--out", str(tmp_path / "maps.npz"),
    ])
    assert r.exit_code == 0, r.output
    ms = MapSet.load(tmp_path / "maps.npz")
    assert sorted(ms.real) == names[:3] and ms.seeds(version) == [5]

    r = runner.invoke(app, [
        "gan", "tune", "--checkpoint", str(pre), "--images", str(tmp_path / "data.npz"), "--maps",
        str(tmp_path / "maps.npz"), "--mode", "auto", "--min-observed", "4", "--alpha", "0.5", "--steps", "1",
        "--out", str(tmp_path / "tuned"), "--batch", "4", "--steps", "2", "--history-share", "0.5",
        "--history-capacity", "3",
    ])
    assert r.exit_code == 0, r.output
    assert "map mode: direct" in r.output
    # the SimGAN pool (images + their direct maps as one extra channel) is in the checkpoint
    ck = read_checkpoint(tmp_path / "tuned" / "checkpoint.safetensors")
    assert ck.tensors["history/items"].shape == (3, 2, 25, 25)
    assert 'history_share = 0.5' in (tmp_path / "tuned" / "config.toml").read_text()
    first = json.loads((tmp_path / "tuned" / "log.jsonl").read_text().splitlines()[0])
    assert first["n_real_maps"] == 3 and first["n_synthetic_maps"] == 1

    r = runner.invoke(app, ["gan", "tune", "--checkpoint", str(pre), "--mode", "predicted", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "saliency model" in r.output
    r = runner.invoke(app, ["gan", "tune", "--checkpoint", str(pre), "--mode", "none", "--history-share", "1",
                            "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "--history-share" in r.output and "[0, 1)" in r.output


def test_gan_cli_tune_against_human_model(tmp_path):
    """FIG. 5 alone from the command line: --mode none --human-model adds eq 12 and logs P(real)."""
    from gazetune.human.model import HumanModelConfig, build_human_model, save_human_model

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "data.npz", images=rng.integers(0, 256, (8, 25, 25), dtype=np.uint8))
    (tmp_path / "small.toml").write_text("z_dim = 8\ng_width = 4\nd_width = 4\nbatch = 4\nn_samples = 4\n")
    runner = CliRunner()
    pre = tmp_path / "pre"
    r = runner.invoke(app, ["gan", "pretrain", "--images", str(tmp_path / "data.npz"), "--size", "25", "--channels", "1",
                            "--steps", "1", "--out", str(pre), "--config", str(tmp_path / "small.toml")])
    assert r.exit_code == 0, r.output
    save_human_model(build_human_model(HumanModelConfig(in_channels=1, image_size=(25, 25), width=4)), tmp_path / "h.safetensors")
    args = ["gan", "tune", "--checkpoint", str(pre), "--images", str(tmp_path / "data.npz"), "--mode", "none",
            "--steps", "2", "--batch", "4"]
    r = runner.invoke(app, args + ["--out", str(tmp_path / "t"), "--human-model", str(tmp_path / "h.safetensors"),
                                   "--human-weight", "0.5"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "t" / "log.jsonl").read_text().splitlines()]
    stepped = [row for row in rows if "G/eq12_human" in row]
    assert stepped and 0.0 < stepped[-1]["human/p_real"] < 1.0 and stepped[-1]["human/weight"] == 0.5
    r = runner.invoke(app, args + ["--out", str(tmp_path / "u"), "--human-model", str(tmp_path / "missing")])
    assert r.exit_code != 0 and "human model not found" in r.output


def test_config_values_reach_the_run_unless_an_option_overrides_them(tmp_path):
    """Keys set only in --config (size, channels, steps, device for pretrain; steps, alpha, mode
    for tune) take effect; an option given on the command line wins."""
    from gazetune.config import load_config
    from gazetune.tune.train import TrainConfig, TuneConfig

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", images=rng.integers(0, 256, (8, 20, 20), dtype=np.uint8))
    (tmp_path / "pre.toml").write_text(
        "size = 16\nchannels = 1\nsteps = 3\ndevice = 'cpu'\nz_dim = 8\ng_width = 4\nd_width = 4\nbatch = 4\n"
        "n_samples = 4\nseed = 7\n")
    runner = CliRunner()
    r = runner.invoke(app, ["gan", "pretrain", "--images", str(tmp_path / "data.npz"), "--out", str(tmp_path / "pre"),
                            "--config", str(tmp_path / "pre.toml")])
    assert r.exit_code == 0, r.output
    cfg = load_config(TrainConfig, tmp_path / "pre" / "config.toml")
    assert (cfg.size, cfg.steps, cfg.seed) == (16, 3, 7)
    assert read_checkpoint(tmp_path / "pre" / "checkpoint.safetensors").metadata["step"] == "3"

    (tmp_path / "tune.toml").write_text("steps = 2\nalpha = 0.25\nmode = 'none'\nbatch = 4\nn_samples = 4\n")
    r = runner.invoke(app, ["gan", "tune", "--checkpoint", str(tmp_path / "pre"), "--images", str(tmp_path / "data.npz"),
                            "--out", str(tmp_path / "t1"), "--config", str(tmp_path / "tune.toml")])
    assert r.exit_code == 0, r.output
    t1 = load_config(TuneConfig, tmp_path / "t1" / "config.toml")
    assert (t1.steps, t1.alpha, t1.mode) == (2, 0.25, "none")
    assert "map mode: none" in r.output
    r = runner.invoke(app, ["gan", "tune", "--checkpoint", str(tmp_path / "pre"), "--images", str(tmp_path / "data.npz"),
                            "--out", str(tmp_path / "t2"), "--config", str(tmp_path / "tune.toml"), "--steps", "1"])
    assert r.exit_code == 0, r.output
    assert load_config(TuneConfig, tmp_path / "t2" / "config.toml").steps == 1
