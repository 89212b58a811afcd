"""Reading, writing and finding images (facesr.io.images)."""

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.io.images import expand_inputs, read_image, to_tensor, to_uint8, write_image
from facesr.errors import FacesrError, InputError

RNG = np.random.default_rng(0)


def save(tmp_path, img: Image.Image, name: str, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Independent reference: composite over white, per pixel, in float."""
    a = alpha.astype(np.float64)[..., None] / 255
    return rgb.astype(np.float64) * a + 255 * (1 - a)


def assert_rgb_close(got, want, tol=1):
    assert got.dtype == np.uint8 and got.shape == want.shape[:2] + (3,)
    assert np.abs(got.astype(np.int64) - np.round(want).astype(np.int64)).max() <= tol


# --- modes -----------------------------------------------------------------------------


def test_rgb(tmp_path):
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    got = read_image(save(tmp_path, Image.fromarray(rgb), "a.png"))
    np.testing.assert_array_equal(got, rgb)


def test_grey_l(tmp_path):
    grey = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    got = read_image(save(tmp_path, Image.fromarray(grey, "L"), "a.png"))
    np.testing.assert_array_equal(got, np.repeat(grey[..., None], 3, axis=2))


def test_grey_alpha_la(tmp_path):
    grey = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    alpha[0, 0], alpha[0, 1] = 0, 255
    img = Image.fromarray(np.stack([grey, alpha], -1), "LA")
    got = read_image(save(tmp_path, img, "a.png"))
    assert_rgb_close(got, over_white(np.repeat(grey[..., None], 3, 2), alpha))
    assert tuple(got[0, 0]) == (255, 255, 255)  # fully transparent -> white
    assert got[0, 1, 0] == grey[0, 1]  # opaque -> unchanged


def test_rgba(tmp_path):
    rgba = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[1, 1, 3] = 0, 255
    got = read_image(save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png"))
    assert_rgb_close(got, over_white(rgba[..., :3], rgba[..., 3]))
    assert tuple(got[0, 0]) == (255, 255, 255)
    np.testing.assert_array_equal(got[1, 1], rgba[1, 1, :3])


PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30]  # black, red, green, (10,20,30)
INDICES = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.uint8)


def palette_image():
    img = Image.fromarray(INDICES, "P")
    img.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
    return img


def test_palette_without_transparency(tmp_path):
    got = read_image(save(tmp_path, palette_image(), "a.png"))
    colours = np.array(PALETTE, dtype=np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(got, colours[INDICES])


def test_palette_with_transparency(tmp_path):
    got = read_image(save(tmp_path, palette_image(), "a.png", transparency=1))  # red is transparent
    colours = np.array(PALETTE, dtype=np.uint8).reshape(-1, 3)
    want = colours[INDICES]
    want[INDICES == 1] = 255
    np.testing.assert_array_equal(got, want)


def test_sixteen_bit_grey_scales_to_eight_bit(tmp_path):
    values = np.array([[0, 257, 32768, 65535], [128, 1000, 40000, 65280]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    got = read_image(save(tmp_path, img, "a.png"))
    want = np.round(values / 65535 * 255)
    assert_rgb_close(got, np.repeat(want[..., None], 3, 2), tol=0)
    assert got[0, 3, 0] == 255 and got[0, 1, 0] == 1 and got[0, 0, 0] == 0


def test_sixteen_bit_dark_image_is_not_mistaken_for_eight_bit(tmp_path):
    values = np.array([[0, 100], [200, 255]], dtype=np.uint16)  # a very dark 16-bit image
    got = read_image(save(tmp_path, Image.fromarray(values), "a.png"))
    assert got.max() <= 1


def test_cmyk(tmp_path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0]],
                     [[0, 0, 0, 255], [100, 50, 200, 30], [10, 20, 30, 128], [255, 255, 255, 255]]], dtype=np.uint8)
    got = read_image(save(tmp_path, Image.fromarray(cmyk, "CMYK"), "a.tif"))
    # CMYK -> RGB: channel = (255 - ink) * (255 - K) / 255
    want = (255 - cmyk[..., :3].astype(np.float64)) * (255 - cmyk[..., 3:].astype(np.float64)) / 255
    assert_rgb_close(got, want)
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[0, 1]) == (0, 255, 255)
    assert tuple(got[1, 0]) == (0, 0, 0)


# --- bad inputs ------------------------------------------------------------------------


def assert_input_error(path, *words, **kw):
    with pytest.raises(InputError) as info:
        read_image(path, **kw)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for word in words:
        assert word in message.lower()
    return message


def noisy_png(tmp_path, name="good.png", size=64, **kw):
    return save(tmp_path, Image.fromarray(RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)), name, **kw)


def test_missing_file(tmp_path):
    assert_input_error(tmp_path / "nope.png", "not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert_input_error(path, "empty")


def test_text_file_named_png(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("hello, I am not an image\n")
    assert_input_error(path, "not an image")


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg"])
def test_truncated_file(tmp_path, name):
    path = noisy_png(tmp_path, name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_input_error(path, "truncated")


def test_folder_is_not_a_file(tmp_path):
    folder = tmp_path / "dir.png"
    folder.mkdir()
    assert_input_error(folder, "folder")


def test_too_many_pixels(tmp_path):
    path = noisy_png(tmp_path, size=11)
    assert_input_error(path, "too large", max_pixels=100)
    assert read_image(path, max_pixels=121).shape == (11, 11, 3)


# --- writing ---------------------------------------------------------------------------


def test_write_image_round_trips_png_and_leaves_no_temp_files(tmp_path):
    rgb = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "out.png"
    write_image(path, rgb)
    write_image(path, rgb[::-1].copy())  # overwrite in place
    assert [p.name for p in path.parent.iterdir()] == ["out.png"]
    np.testing.assert_array_equal(read_image(path), rgb[::-1])


def test_failed_write_leaves_no_temp_file(tmp_path):
    with pytest.raises(Exception):
        write_image(tmp_path / "out.unknown-format", np.zeros((2, 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


# --- expand_inputs ---------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    for rel in ["a/1.png", "a/2.jpg", "a/notes.txt", "a/.hidden.png", "a/deep/3.png", "b/4.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return tmp_path


def names(paths):
    return [p.name for p in paths]


def test_expand_folder_lists_images_only(tree):
    assert names(expand_inputs([str(tree / "a")])) == ["1.png", "2.jpg"]
    assert names(expand_inputs([str(tree / "a")], recursive=True)) == ["1.png", "2.jpg", "3.png"]


def test_expand_files_globs_and_duplicates(tree):
    got = expand_inputs([str(tree / "b/4.png"), str(tree / "a"), str(tree / "a/1.png"), str(tree / "*/*.png"),
                         str(tree / "a/../b/4.png")])
    assert names(got) == ["4.png", "1.png", "2.jpg"]
    assert all(p.is_absolute() for p in got)


def test_expand_recursive_glob(tree):
    assert names(expand_inputs([str(tree / "**/*.png")])) == ["1.png", "3.png", "4.png"]


def test_expand_missing_path(tree):
    with pytest.raises(FacesrError, match="missing.png"):
        expand_inputs([str(tree / "a"), str(tree / "missing.png")])


@pytest.mark.parametrize("pattern", ["empty", "a/*.gif"])
def test_expand_empty_result(tree, pattern):
    (tree / "empty").mkdir()
    with pytest.raises(FacesrError, match="no images"):
        expand_inputs([str(tree / pattern)])


# --- tensors ---------------------------------------------------------------------------


def test_tensor_round_trip():
    rgb = RNG.integers(0, 256, (6, 4, 3), dtype=np.uint8)
    t = to_tensor(rgb)
    assert t.shape == (3, 6, 4) and t.dtype == torch.float32
    assert float(t[1, 2, 3]) == pytest.approx(rgb[2, 3, 1] / 255.0)
    np.testing.assert_array_equal(to_uint8(t), rgb)
    np.testing.assert_array_equal(to_uint8(t + 0.4 / 255), rgb)  # rounds to nearest


def test_to_uint8_clamps():
    x = torch.tensor([-0.5, 0.0, 1.0, 1.7]).view(1, 1, 4).expand(3, 1, 4)
    np.testing.assert_array_equal(to_uint8(x)[0, :, 0], [0, 0, 255, 255])


def test_written_files_get_the_usual_mode(tmp_path):
    import stat

    from facesr.io.images import default_file_mode, write_image

    write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == default_file_mode()
