"""One RGB -> grey conversion (gazetune.images.rgb_to_grey), the same as Pillow's convert("L")."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gazetune
from gazetune.images import convert_channels, rgb_to_grey


@pytest.mark.parametrize("name", ["astronaut.png", "coffee.png"])
def test_matches_pillow_on_a_real_photo_within_one_level(name):
    import skimage.data

    path = Path(skimage.data.__file__).parent / name  # bundled with scikit-image, no download
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        want = np.asarray(rgb.convert("L"), dtype=np.float32)
    got = rgb_to_grey(np.asarray(rgb, dtype=np.float32), axis=-1)[..., 0]
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1.0


def test_every_layout_and_type_gives_the_same_grey():
    rng = np.random.default_rng(0)
    nchw = rng.uniform(-1, 1, (2, 3, 5, 4)).astype(np.float32)
    a = rgb_to_grey(nchw)
    assert a.shape == (2, 1, 5, 4)
    np.testing.assert_allclose(convert_channels(nchw, 1), a, atol=1e-7)
    np.testing.assert_allclose(rgb_to_grey(nchw.transpose(0, 2, 3, 1), axis=-1)[..., 0], a[:, 0], atol=1e-6)
    t = torch.from_numpy(nchw).requires_grad_()
    g = rgb_to_grey(t)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float32
    np.testing.assert_allclose(g.detach().numpy(), a, atol=1e-6)
    g.sum().backward()
    np.testing.assert_allclose(t.grad[0, :, 0, 0].numpy(), [0.299, 0.587, 0.114], rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_grey(nchw[:, :2])


def test_no_other_grey_conversion_in_the_package():
    root = Path(gazetune.__file__).parent
    pattern = re.compile(r"0\.299|0\.2126|0\.7152|convert\(\"L\"\)|rgb2gr[ae]y")
    found = sorted(f.relative_to(root).as_posix() for f in root.rglob("*.py") if pattern.search(f.read_text()))
    # dataset.py: rgb_to_grey itself, and Pillow reading images that already are grey ("1", "L", "LA")
    assert found == ["images/dataset.py"]
