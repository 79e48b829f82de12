"""eigen_depth.images against the library calls the original made (docs/specification.md section 4): scikit-image's
resize, scipy's zoom as the original called it (on (1, 1, h, w) arrays), pycaffe's load_image channel rules,
the uint8 truncation and V(d)."""
import math
import os

import cv2
import numpy as np
import pytest
import scipy.ndimage
import skimage.io
import skimage.transform

from eigen_depth import images
from eigen_depth.conventions import THESIS
from eigen_depth.errors import DatasetError

RNG = np.random.default_rng(7)


def eight_bit(shape):
    """float32 pixels k/255, what pycaffe's load_image gives for an 8-bit PNG."""
    return (RNG.integers(0, 256, shape) / 255).astype(np.float32)


@pytest.mark.parametrize("source,target", [((320, 420), (218, 298)), ((500, 741), (218, 298)),
                                            ((480, 640), (320, 420)), ((120, 100), (218, 298)),
                                            ((9, 7), (218, 298)), ((320, 420), (320, 420))])
@pytest.mark.parametrize("channels", [3, None])
def test_resize_is_skimage_bit_for_bit(source, target, channels):
    shape = source + ((channels,) if channels else ())
    image = eight_bit(shape)
    expected = skimage.transform.resize(image, target + shape[2:], order=1, mode="constant", anti_aliasing=False)
    got = images.resize_bilinear(image, *target)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", [(320, 420, 3), (320, 420), (61, 47, 2), (218, 298, 3)])
def test_resize_to_planes_is_skimage_bit_for_bit_in_planes(shape):
    image = eight_bit(shape)
    expected = skimage.transform.resize(image, (218, 298) + shape[2:], order=1, mode="constant", anti_aliasing=False)
    expected = expected[None] if len(shape) == 2 else np.moveaxis(expected, 2, 0)
    got = images.resize_bilinear_planes(image, 218, 298)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_resize_keeps_skimage_clipping_when_upsampling_an_image_without_black():
    image = (0.3 + 0.5 * RNG.random((5, 6, 3))).astype(np.float32)   # min > 0: the zero border is clipped away
    expected = skimage.transform.resize(image, (218, 298, 3), order=1, mode="constant", anti_aliasing=False)
    np.testing.assert_array_equal(images.resize_bilinear(image, 218, 298), expected)
    assert images.resize_bilinear(image, 218, 298).min() >= image.min()


def test_resize_of_an_image_with_nan_matches_skimage():
    image = eight_bit((40, 50))
    image[3, 4] = np.nan
    expected = skimage.transform.resize(image, (20, 30), order=1, mode="constant", anti_aliasing=False)
    np.testing.assert_array_equal(images.resize_bilinear(image, 20, 30), expected)


@pytest.mark.parametrize("size,target", [((54, 74), (320, 420)), ((27, 37), (320, 420)), ((25, 35), (318, 418)),
                                         ((26, 36), (320, 420))])
def test_zoom_is_the_original_scipy_call(size, target):
    batch = RNG.normal(0.3, 0.1, (3, 1) + size).astype(np.float32)
    factors = (1, 1, float(target[0]) / size[0], float(target[1]) / size[1])
    expected = np.concatenate([scipy.ndimage.zoom(batch[i:i + 1], factors, order=3) for i in range(3)])
    got = images.zoom_cubic(batch, *target)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_depth_visualisation_is_v_of_d_by_hand():
    # V(d) = clip(2 * 0.179581 ln(clip(d, .001, 1000)) + 1, 0, 1); uint8(V * 255) truncates.
    half = math.exp(-0.5 / (2 * 0.179581))            # V = 0.5 -> 127.5 -> 127
    d = np.array([1.0, 10.0, 0.0, half, math.exp(-1 / (2 * 0.179581)) * 0.9], dtype=np.float32)
    pixels = images.to_uint8(images.depth_to_unit(d))
    assert pixels.tolist() == [255, 255, 0, 127, 0]


def test_the_input_is_written_back_with_the_original_float32_truncation():
    rgb = np.array([[[0.0, 1.0, 128 / 255]]], dtype=np.float32)
    chw = np.transpose(rgb, (2, 0, 1)) * np.float32(255) - np.float32(127)
    expected = np.array((((chw + 127) / np.float32(255.0)) * np.float32(255)).transpose(1, 2, 0), dtype=np.uint8)
    got = THESIS.to_rgb_uint8(chw)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8 and got.shape == (1, 1, 3)


def write(path, pixels):
    ok = cv2.imwrite(str(path), pixels)
    assert ok
    return str(path)


def test_load_rgb_follows_pycaffe_gray_rgba_and_16_bit(tmp_path):
    gray = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
    got = images.load_rgb(write(tmp_path / "g.png", gray))
    assert got.dtype == np.float32 and got.shape == (6, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], (gray / 255).astype(np.float32))
    rgba = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    got = images.load_rgb(write(tmp_path / "a.png", rgba[:, :, [2, 1, 0, 3]]))       # OpenCV writes BGRA
    np.testing.assert_array_equal(got, (rgba[:, :, :3] / 255).astype(np.float32))
    deep = RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    got = images.load_rgb(write(tmp_path / "d.png", deep[:, :, ::-1]))
    np.testing.assert_array_equal(got, (deep / 65535).astype(np.float32))


def test_an_unreadable_image_names_the_file(tmp_path):
    path = tmp_path / "broken_colors.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(DatasetError, match="broken_colors.png"):
        images.load_rgb(str(path))
    # the readers' own words where they fit, not their advice to install another plugin
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"empty.jpg: cannot read the image \(the file is empty\)"):
        images.load_rgb(str(tmp_path / "empty.jpg"))
    (tmp_path / "notes.jpg").write_text("words, not pixels")
    with pytest.raises(DatasetError, match=r"notes.jpg: cannot read the image \(not an image in a format"):
        images.load_rgb(str(tmp_path / "notes.jpg"))
    # a PNG whose header declares 60000 x 60000 pixels (OpenCV stops above 2^30)
    header = cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes()
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (tmp_path / "huge.png").write_bytes(header[:8] + chunk + header[33:])
    with pytest.raises(DatasetError, match=r"huge.png: cannot read the image \(its header declares more pixels"):
        images.load_rgb(str(tmp_path / "huge.png"))


def test_png_encoding_round_trips_gray_rgb_rgba_and_16_bit(tmp_path):
    for pixels in (RNG.integers(0, 256, (4, 3), dtype=np.uint8), RNG.integers(0, 256, (4, 3, 3), dtype=np.uint8),
                   RNG.integers(0, 256, (4, 3, 4), dtype=np.uint8), RNG.integers(0, 65536, (4, 3), dtype=np.uint16)):
        path = str(tmp_path / "x.png")
        images.write_png(path, pixels)
        back = skimage.io.imread(path)
        np.testing.assert_array_equal(back, pixels)
    assert not [n for n in os.listdir(tmp_path) if n != "x.png"]      # no temporary file left


def test_depth_png16_is_rounded_millimetres():
    np.testing.assert_array_equal(images.depth_png16_mm(np.array([0.0012, 1.2344, 70.0, np.nan])),
                                  np.array([1, 1234, 65535, 0], dtype=np.uint16))


def test_an_8_bit_gt_is_its_pixels_over_255_and_a_coloured_one_its_green_channel(tmp_path):
    """The png8 GT at 420x320 (no resize): a gray PNG's value / 255 in float32; a colour PNG's middle (green)
    channel, with or without alpha; gray with alpha its gray."""
    from eigen_depth.evaluate.source import read_gt_tenth
    gray = RNG.integers(0, 256, (320, 420), dtype=np.uint8)
    green = RNG.integers(0, 256, (320, 420), dtype=np.uint8)
    other = RNG.integers(0, 256, (320, 420), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (320, 420), dtype=np.uint8)
    files = {"gray.png": (gray, gray), "rgb.png": (np.dstack([other, green, gray]), green),
             "rgba.png": (np.dstack([gray, green, other, alpha]), green),
             "gray_alpha.png": (np.dstack([gray, alpha]), gray)}
    for name, (pixels, expected) in files.items():
        skimage.io.imsave(str(tmp_path / name), pixels, check_contrast=False)
        got = read_gt_tenth(str(tmp_path / name), "png8")
        assert got.dtype == np.float32 and got.shape == (320, 420), name
        np.testing.assert_array_equal(got, (expected / 255.0).astype(np.float32), err_msg=name)
