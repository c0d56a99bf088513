"""gazetune.images: loaders (folder, npz, built-in faces), conversions, writers, splits."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gazetune.images import (
    ImageLoadError,
    ImageSet,
    convert_channels,
    load_image_set,
    resize_images,
    save_image_folder,
    save_image_grid,
    split_indices,
    to_uint8,
)


def _write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """b.png (gray ramp), a.jpg (RGB), sub/c.PNG (gray), plus a non-image text file."""
    rng = np.random.default_rng(3)
    _write_png(tmp_path / "b.png", np.tile(np.arange(0, 240, 15, dtype=np.uint8), (16, 1)))
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "a.jpg", quality=95)
    _write_png(tmp_path / "sub" / "c.PNG", np.full((16, 16), 200, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_sorted_recursive_and_values(folder: Path) -> None:
    s = load_image_set(folder)
    assert s.names == ["a.jpg", "b.png", "sub/c.PNG"]
    assert s.images.shape == (3, 3, 16, 16)  # a colour file makes the set RGB
    assert s.images.dtype == np.float32
    # b.png: first column is 0 -> -1, a gray ramp repeated in the three channels
    np.testing.assert_allclose(s.images[1, :, 0, 0], -1.0)
    np.testing.assert_allclose(s.images[1, 0], s.images[1, 2])
    np.testing.assert_allclose(s.images[2], 200 / 127.5 - 1, atol=1e-6)
    again = load_image_set(folder)
    np.testing.assert_array_equal(s.images, again.images)


def test_folder_gray_and_resize(folder: Path) -> None:
    s = load_image_set(folder, size=8, channels=1)
    assert s.images.shape == (3, 1, 8, 8)
    assert s.images.min() >= -1 and s.images.max() <= 1
    # a constant image stays constant after Lanczos resizing
    np.testing.assert_allclose(s.images[2], 200 / 127.5 - 1, atol=1e-4)


def test_mixed_sizes_need_size(tmp_path: Path) -> None:
    _write_png(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    _write_png(tmp_path / "wide.png", np.zeros((10, 20), np.uint8))
    with pytest.raises(ValueError, match="differ in size.*size="):
        load_image_set(tmp_path)
    s = load_image_set(tmp_path, size=6)  # wide one is centre-cropped to a square first
    assert s.images.shape == (2, 1, 6, 6)


def test_corrupt_files_listed_by_name(folder: Path) -> None:
    good = folder / "b.png"
    (folder / "truncated.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (folder / "fake.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(ImageLoadError) as info:
        load_image_set(folder)
    msg = str(info.value)
    assert "truncated.png" in msg and "fake.jpg" in msg and "2 of 5" in msg
    assert {n for n, _ in info.value.bad} == {"truncated.png", "fake.jpg"}
    with pytest.warns(UserWarning, match="skipped 2"):
        s = load_image_set(folder, on_error="skip")
    assert s.names == ["a.jpg", "b.png", "sub/c.PNG"]
    assert len(s.skipped) == 2 and s.skipped[0].startswith("fake.jpg")


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        load_image_set(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no png/jpg/jpeg images"):
        load_image_set(tmp_path)
    with pytest.raises(ValueError, match="builtin:cats"):
        load_image_set("builtin:cats")


def test_builtin_faces_are_the_faces() -> None:
    s = load_image_set("builtin:faces")
    assert s.images.shape == (100, 1, 25, 25)
    assert s.names[0] == "lfw_face_000.png" and s.names[-1] == "lfw_face_099.png"
    from skimage import data

    raw = data.lfw_subset()
    np.testing.assert_allclose(s.images[:, 0], raw[:100] * 2 - 1, atol=1e-6)
    # faces are full of fine detail; the 100 left-out background patches are smooth blocks
    def detail(a: np.ndarray) -> np.ndarray:
        return np.abs(np.diff(a, axis=-1)).mean(axis=(-2, -1)) + np.abs(np.diff(a, axis=-2)).mean(axis=(-2, -1))

    assert np.percentile(detail(raw[:100]), 10) > np.percentile(detail(raw[100:]), 90)
    assert load_image_set(None).names == s.names
    rgb = load_image_set(None, size=32, channels=3)
    assert rgb.images.shape == (100, 3, 32, 32)
    np.testing.assert_array_equal(rgb.images[:, 0], rgb.images[:, 1])


def test_npz_layouts_and_ranges(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "hwc.npz", images=u8, names=np.array(["w", "x", "y", "z"]))
    s = load_image_set(tmp_path / "hwc.npz")
    assert s.names == ["w", "x", "y", "z"] and s.images.shape == (4, 3, 6, 6)
    np.testing.assert_allclose(s.images, u8.transpose(0, 3, 1, 2) / 127.5 - 1, atol=1e-6)

    f01 = rng.random((2, 5, 5)).astype(np.float32)
    np.savez(tmp_path / "f01.npz", images=f01)
    s = load_image_set(tmp_path / "f01.npz")
    assert s.names == ["00000.png", "00001.png"]
    np.testing.assert_allclose(s.images[:, 0], f01 * 2 - 1, atol=1e-6)

    chw = (rng.random((2, 3, 5, 5)) * 2 - 1).astype(np.float32)
    np.savez(tmp_path / "chw.npz", images=chw)
    np.testing.assert_allclose(load_image_set(tmp_path / "chw.npz").images, chw, atol=1e-6)

    np.savez(tmp_path / "bad.npz", images=np.full((1, 4, 4), 7.0))
    with pytest.raises(ValueError, match="bad.npz.*outside"):
        load_image_set(tmp_path / "bad.npz")
    np.savez(tmp_path / "vr.npz", images=np.full((1, 4, 4), 7.0), value_range=[0, 14])
    np.testing.assert_allclose(load_image_set(tmp_path / "vr.npz").images, 0.0, atol=1e-6)
    np.savez(tmp_path / "nokey.npz", pixels=u8)
    with pytest.raises(KeyError, match="nokey.npz.*'images'"):
        load_image_set(tmp_path / "nokey.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ImageLoadError, match="broken.npz"):
        load_image_set(tmp_path / "broken.npz")


def test_channel_conversion_and_resize() -> None:
    rgb = np.zeros((1, 3, 2, 2), np.float32)
    rgb[0, 1] = 1.0  # pure green
    gray = convert_channels(rgb, 1)
    np.testing.assert_allclose(gray, 0.587, atol=1e-6)
    assert convert_channels(gray, 3).shape == (1, 3, 2, 2)
    up = resize_images(np.full((1, 1, 4, 4), 0.25, np.float32), 9, "bilinear")
    assert up.shape == (1, 1, 9, 9)
    np.testing.assert_allclose(up, 0.25, atol=1e-5)


def test_to_uint8_and_folder_round_trip(tmp_path: Path) -> None:
    assert to_uint8(np.array([[[-1.0, 0.0, 1.0, 2.0]]])).tolist() == [[[0], [128], [255], [255]]]
    s = load_image_set("builtin:faces").subset([0, 5, 7])
    s = ImageSet(s.images, ["x/a.jpg", "b.png", "c"])
    paths = save_image_folder(s, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths] == ["x/a.png", "b.png", "c.png"]
    back = load_image_set(tmp_path / "out")
    assert back.names == ["b.png", "c.png", "x/a.png"]
    np.testing.assert_allclose(back.images[2], s.images[0], atol=1 / 127.5)
    with pytest.raises(ValueError, match="both be written"):
        save_image_folder(ImageSet(s.images[:2], ["d.jpg", "d.png"]), tmp_path / "dup")
    with pytest.raises(ValueError, match="cannot be used as a file path"):
        save_image_folder(ImageSet(s.images[:1], ["../escape.png"]), tmp_path / "esc")


def test_save_image_grid(tmp_path: Path) -> None:
    imgs = np.stack([np.full((3, 4, 5), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    p = save_image_grid(imgs, tmp_path / "g" / "grid.png", nrow=2, padding=1)
    with Image.open(p) as im:
        arr = np.asarray(im)
    assert arr.shape == (2 * 5 + 1, 2 * 6 + 1, 3)
    assert arr[1, 1].tolist() == [0, 0, 0] and arr[1, 7].tolist() == [128, 128, 128]
    assert arr[6, 1].tolist() == [255, 255, 255]
    assert not [f for f in p.parent.iterdir() if f.name != "grid.png"]  # no temporary file left
    gray = save_image_grid(imgs[:, :1], tmp_path / "gray.png", nrow=8)
    with Image.open(gray) as im:
        assert im.mode == "L" and im.size == (3 * 6 + 1, 6)


def test_split_indices_deterministic() -> None:
    a, b = split_indices(100, 0.2, seed=5)
    assert len(a) == 80 and len(b) == 20
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(100))
    a2, b2 = split_indices(100, 0.2, seed=5)
    np.testing.assert_array_equal(b, b2)
    assert not np.array_equal(b, split_indices(100, 0.2, seed=6)[1])
    with pytest.raises(ValueError, match="fraction"):
        split_indices(10, 1.5)


def test_imageset_validation() -> None:
    with pytest.raises(ValueError, match="unique"):
        ImageSet(np.zeros((2, 1, 2, 2), np.float32), ["a", "a"])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ImageSet(np.full((1, 1, 2, 2), 3.0, np.float32), ["a"])
    with pytest.raises(ValueError, match="C in"):
        ImageSet(np.zeros((1, 2, 2, 2), np.float32), ["a"])
    s = ImageSet(np.zeros((2, 1, 2, 2), np.float32), ["a", "b"])
    assert s.index("b") == 1 and s.size == (2, 2) and s.channels == 1
    with pytest.raises(KeyError, match="'c'"):
        s.index("c")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tuple(s.to_tensor().shape) == (2, 1, 2, 2)
