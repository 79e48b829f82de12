"""tools/make_examples.py: the offline sample data in the thesis's test format (docs/specification.md sections 4-6),
checked against scikit-image's Middlebury pair and its calibration directly."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from eigen_depth import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIEWS = ("full", "left", "centre", "right")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_examples.py"), str(folder), "--snapshots"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def motorcycle():
    left, _, disparity = skimage.data.stereo_motorcycle()
    return left, disparity


def read(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def expected_depth8(disparity):
    """docs/specification.md section 6: depth_mm = 193.001 * 994.978 / (d + 31.086); 8-bit = clip(m/10, .025559, 1) * 255,
    truncated; no ground truth -> 0."""
    depth_m = 193.001 * 994.978 / (disparity.astype(np.float64) + 31.086) / 1000
    pixels = np.array(np.clip(depth_m / 10, 0.025559, 1) * 255, dtype=np.uint8)
    pixels[~np.isfinite(disparity)] = 0
    return pixels


def test_the_test_folder_holds_four_pairs_in_the_thesis_format(examples):
    names = sorted(os.listdir(examples / "test"))
    assert names == sorted(f"motorcycle_{v}_{k}.png" for v in VIEWS for k in ("colors", "depth"))
    for view in VIEWS:
        colors, depth = read(examples / "test" / f"motorcycle_{view}_colors.png"), read(examples / "test" / f"motorcycle_{view}_depth.png")
        assert colors.shape == (320, 420, 3) and colors.dtype == np.uint8
        assert depth.shape == (320, 420) and depth.dtype == np.uint8


@pytest.mark.parametrize("view,column", [("left", 0), ("centre", 160), ("right", 321)])
def test_native_windows_are_crops_with_depth_from_the_calibration(examples, motorcycle, view, column):
    left, disparity = motorcycle
    window = (slice(90, 410), slice(column, column + 420))
    colors = read(examples / "test" / f"motorcycle_{view}_colors.png")[:, :, ::-1]
    np.testing.assert_array_equal(colors, left[window])
    depth = read(examples / "test" / f"motorcycle_{view}_depth.png")
    np.testing.assert_array_equal(depth, expected_depth8(disparity[window]))
    holes = ~np.isfinite(disparity[window])
    assert holes.any() and (depth[holes] == 0).all() and (depth[~holes] > 0).all()


def test_the_full_view_keeps_holes_and_the_depth_range(examples, motorcycle):
    _, disparity = motorcycle
    depth = read(examples / "test" / "motorcycle_full_depth.png")
    meters = depth[depth > 0] / 255 * 10
    assert 2.0 < meters.min() and meters.max() < 5.1          # 193.001 * 994.978 / (59.9 .. 7.2 + 31.086) mm
    missing = (depth == 0).mean()
    assert abs(missing - (~np.isfinite(disparity[:, 42:698])).mean()) < 0.03


def test_photos_cover_gray_rgba_jpeg_16_bit_and_tiff(examples):
    photos = examples / "photos"
    assert sorted(os.listdir(photos)) == ["astronaut_16bit.png", "camera_gray.png", "chelsea.jpg", "coffee_rgba.png",
                                          "rocket.tif"]
    np.testing.assert_array_equal(read(photos / "camera_gray.png"), skimage.data.camera())
    rgba = read(photos / "coffee_rgba.png")
    assert rgba.shape[2] == 4 and set(np.unique(rgba[:, :, 3])) == {128, 255}
    np.testing.assert_array_equal(rgba[:, :, [2, 1, 0]], skimage.data.coffee())
    deep = read(photos / "astronaut_16bit.png")
    assert deep.dtype == np.uint16
    np.testing.assert_array_equal(deep[:, :, ::-1], skimage.data.astronaut().astype(np.uint16) * 257)
    assert read(photos / "chelsea.jpg").shape == skimage.data.chelsea().shape
    np.testing.assert_array_equal(read(photos / "rocket.tif")[:, :, ::-1], skimage.data.rocket())


def test_demo_snapshots_load_and_run(examples):
    folder = examples / "snaps"
    assert sorted(os.listdir(folder)) == sorted(f"demo_iter_{i}.{e}" for i in (1000, 2000, 3000)
                                                for e in ("caffemodel", "prototxt"))
    snapshots = evaluate.find_snapshots(str(folder))
    assert [s.iteration for s in snapshots] == [1000, 2000, 3000]
    model = evaluate.load_model(snapshots[0], torch.device("cpu"))
    out = model.predict(np.zeros((2, 3, 218, 298), np.float32))
    assert model.output_name == "depth" and out.shape == (2, 1, 26, 36)
    readme = (examples / "README.txt").read_text()
    assert "RANDOM weights" in readme and "without ground truth" in readme
