"""`eigen-depth predict` on images of every kind (gray, RGBA, 16-bit PNG, JPEG, TIFF, odd sizes): the depth
maps come out at the input's resolution and equal an independent computation (the pycaffe-style reading and
resize with scikit-image, OpenCV's Caffe forward, scipy's cubic zoom, x10); the 16-bit PNG is the .npy in
millimetres; the .ply parses and its points follow the pinhole model with the NYU intrinsics scaled to the
image; folders are walked; bad inputs are one-line errors."""
import os

import cv2
import numpy as np
import pytest
import scipy.ndimage
import skimage.io
import skimage.transform
import skimage.util
import torch

from eigen_depth import cli
from eigen_depth.net import CaffeNet
from eigen_depth.testing import random_weights

SMALL_NET = """name: "small_global"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } } }
layer { name: "conv1" type: "Convolution" bottom: "X" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 11 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 4 kernel_size: 5 stride: 2 pad: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "fc-depth" type: "InnerProduct" bottom: "conv2" top: "fc-depth" inner_product_param { num_output: 999 } }
layer { name: "reshape" type: "Reshape" bottom: "fc-depth" top: "depth"
        reshape_param { shape { dim: 0 dim: 1 dim: 27 dim: 37 } } }
"""
# NYU Depth v2 colour camera at 640x480 (the NYU toolbox's camera_params.m)
NYU = {"fx": 518.86, "fy": 519.47, "cx": 325.58, "cy": 253.74, "width": 640, "height": 480}


def run_cli(capsys, *argv):
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    """(deploy prototxt, caffemodel) of a small global-context-like net with random weights whose depth
    (the net's unit, meters / 10) lies around 0.4 with a spread of about 0.05: positive everywhere."""
    folder = tmp_path_factory.mktemp("net")
    prototxt, weights = folder / "small.prototxt", folder / "small.caffemodel"
    prototxt.write_text(SMALL_NET)
    net = random_weights(CaffeNet(str(prototxt), "TEST", fill=False), seed=4)
    probe = np.random.default_rng(1).uniform(-127, 128, (4, 3, 218, 298)).astype(np.float32)
    fc = net.layer_by_name("fc-depth")
    with torch.no_grad():
        spread = float(net({"X": probe})["depth"].std())
        fc.blobs[0].mul_(0.05 / spread)
        fc.blobs[1].fill_(0.4)
    net.save(str(weights))
    return str(prototxt), str(weights)


def write_images(folder):
    """Test images of every kind: {name: path}."""
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    smooth = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (80, 60), interpolation=cv2.INTER_CUBIC)
    paths["gray"] = folder / "gray.png"                     # 8-bit gray, odd size
    cv2.imwrite(str(paths["gray"]), rng.integers(0, 256, (37, 53), dtype=np.uint8))
    paths["rgba"] = folder / "rgba.png"                     # RGBA (OpenCV writes BGRA)
    cv2.imwrite(str(paths["rgba"]), rng.integers(0, 256, (29, 41, 4), dtype=np.uint8))
    paths["deep"] = folder / "deep.png"                     # 16-bit colour
    cv2.imwrite(str(paths["deep"]), rng.integers(0, 65536, (33, 45, 3), dtype=np.uint16))
    paths["photo"] = folder / "photo.jpg"                   # JPEG
    cv2.imwrite(str(paths["photo"]), smooth, [cv2.IMWRITE_JPEG_QUALITY, 90])
    paths["scan"] = folder / "scan.tif"                     # TIFF, RGB
    skimage.io.imsave(str(paths["scan"]), rng.integers(0, 256, (21, 17, 3), dtype=np.uint8), check_contrast=False)
    paths["tiny"] = folder / "tiny.png"                     # smaller than the net's output
    cv2.imwrite(str(paths["tiny"]), rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    return {name: str(path) for name, path in paths.items()}


# -------------------------------------------------------------------------- the independent computation
def read_pixels(path):
    """The file's pixels, RGB(A) order. PNGs through OpenCV: Pillow (behind skimage.io) reads 16-bit colour
    PNGs as 8-bit."""
    if path.endswith(".png"):
        pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        return pixels[:, :, [2, 1, 0, 3][:pixels.shape[2]]] if pixels.ndim == 3 else pixels
    return skimage.io.imread(path)


def pycaffe_input(path):
    """The evaluator's input, by scikit-image calls: float RGB in [0, 1] (gray repeated, alpha dropped),
    resize to 218x298 (order 1, mode constant, no anti-aliasing), x255 - 127, CHW."""
    image = skimage.util.img_as_float(read_pixels(path)).astype(np.float32)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3]
    resized = skimage.transform.resize(image, (218, 298, 3), order=1, mode="constant", anti_aliasing=False)
    return np.transpose(resized.astype(np.float32) * 255 - 127, (2, 0, 1))


def expected_depth_m(small_net, path, log=False):
    """OpenCV's forward of the Caffe files, (--log: inverse log transform), scipy's cubic zoom to the
    image's size, x10: meters."""
    prototxt, weights = small_net
    net = cv2.dnn.readNetFromCaffe(prototxt, weights)
    net.setInput(pycaffe_input(path)[None])
    out = net.forward("reshape")[0, 0].astype(np.float32)
    if log:
        out = np.exp((out - 1.0) / 0.179581)
    height, width = read_pixels(path).shape[:2]
    zoomed = scipy.ndimage.zoom(out, (height / out.shape[0], width / out.shape[1]), order=3)
    assert zoomed.shape == (height, width)
    return zoomed * 10


def read_ply(path):
    """(header lines, structured array of the vertices) of a PLY with x y z red green blue."""
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    names = [line.split()[-1] for line in header if line.startswith("property")]
    assert names == ["x", "y", "z", "red", "green", "blue"]
    if "format binary_little_endian 1.0" in header:
        record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
        assert len(data) - end == count * record.itemsize
        return header, np.frombuffer(data, record, count, end)
    assert "format ascii 1.0" in header
    rows = np.loadtxt(data[end:].decode("ascii").splitlines(), ndmin=2) if count else np.zeros((0, 6))
    assert rows.shape == (count, 6)
    table = np.zeros(count, [("x", "f8"), ("y", "f8"), ("z", "f8"), ("red", "i8"), ("green", "i8"), ("blue", "i8")])
    for i, name in enumerate(names):
        table[name] = rows[:, i]
    return header, table


# -------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def predicted(small_net, tmp_path_factory):
    """One run over every kind of image, with point clouds: (images, out folder, status, stdout, stderr)."""
    root = tmp_path_factory.mktemp("predict")
    images = write_images(root / "in")
    out = root / "out"
    status = cli.main(["predict", *images.values(), "--model", small_net[0], "--weights", small_net[1],
                       "--out", str(out), "--pointcloud", "--batch-size", "4", "--no-progress", "--device", "cpu"])
    return images, out, status


def outputs(out, stem):
    return {"npy": out / f"{stem}_depth.npy", "png16": out / f"{stem}_depth_mm.png",
            "color": out / f"{stem}_depth_color.png", "ply": out / f"{stem}_points.ply"}


def test_every_kind_of_image_gets_every_output_at_its_resolution(predicted):
    images, out, status = predicted
    assert status == 0
    for name, path in images.items():
        height, width = read_pixels(path).shape[:2]
        files = outputs(out, name)
        depth = np.load(files["npy"])
        assert depth.dtype == np.float32 and depth.shape == (height, width), name
        png16 = cv2.imread(str(files["png16"]), cv2.IMREAD_UNCHANGED)
        assert png16.dtype == np.uint16 and png16.shape == (height, width), name
        colour = cv2.imread(str(files["color"]), cv2.IMREAD_UNCHANGED)
        assert colour.dtype == np.uint8 and colour.ndim == 3 and colour.shape[2] == 3, name
        assert colour.shape[0] >= height and colour.shape[1] > width, name      # the map plus its colour bar
        assert files["ply"].is_file(), name
    assert not [n for n in os.listdir(out) if n.startswith(".")]               # no temporary file left


def test_npy_is_the_caffe_output_zoomed_to_the_input_in_meters(predicted, small_net):
    images, out, _ = predicted
    for name, path in images.items():
        expected = expected_depth_m(small_net, path)
        depth = np.load(outputs(out, name)["npy"])
        assert np.abs(depth - expected).max() <= 1e-4 * np.abs(expected).max(), name
        assert 1.0 < expected.min() and expected.max() < 10.0                  # the net's range: about 4 m


def test_png16_is_the_npy_in_millimetres(predicted):
    images, out, _ = predicted
    for name in images:
        depth = np.load(outputs(out, name)["npy"]).astype(np.float64)
        png16 = cv2.imread(str(outputs(out, name)["png16"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png16, np.clip(np.round(depth * 1000), 0, 65535).astype(np.uint16))


def test_colour_map_shows_near_and_far_differently(predicted):
    images, out, _ = predicted
    depth = np.load(outputs(out, "photo")["npy"])
    colour = cv2.imread(str(outputs(out, "photo")["color"]))[:depth.shape[0], :depth.shape[1]]
    near, far = np.unravel_index(depth.argmin(), depth.shape), np.unravel_index(depth.argmax(), depth.shape)
    assert np.abs(colour[near].astype(int) - colour[far].astype(int)).sum() > 60


def test_point_cloud_follows_the_pinhole_model_with_nyu_intrinsics_scaled(predicted):
    images, out, _ = predicted
    for name in ("photo", "gray", "tiny"):
        path = images[name]
        depth = np.load(outputs(out, name)["npy"])
        height, width = depth.shape
        header, vertices = read_ply(outputs(out, name)["ply"])
        valid = np.isfinite(depth) & (depth > 0)
        assert len(vertices) == valid.sum() == height * width
        fx, fy = NYU["fx"] * width / NYU["width"], NYU["fy"] * height / NYU["height"]
        cx, cy = NYU["cx"] * width / NYU["width"], NYU["cy"] * height / NYU["height"]
        rgb = read_pixels(path)
        rgb = np.repeat(rgb[:, :, None], 3, axis=2) if rgb.ndim == 2 else rgb[:, :, :3]
        for v, u in ((0, 0), (height - 1, width - 1), (height // 2, width // 3), (1, width - 2)):
            point = vertices[v * width + u]
            z = float(depth[v, u])
            assert point["z"] == pytest.approx(z, rel=1e-6)
            assert point["x"] == pytest.approx((u - cx) * z / fx, rel=1e-5, abs=1e-6)
            assert point["y"] == pytest.approx((v - cy) * z / fy, rel=1e-5, abs=1e-6)
            assert [point["red"], point["green"], point["blue"]] == rgb[v, u].tolist()


def test_ascii_ply_and_given_intrinsics(small_net, tmp_path, capsys):
    images = write_images(tmp_path / "in")
    status, _, _ = run_cli(capsys, "predict", images["photo"], "--model", small_net[0], "--weights", small_net[1],
                           "--out", tmp_path / "out", "--pointcloud", "--ply-format", "ascii",
                           "--intrinsics", "100,90,40.5,30.25", "--no-progress")
    assert status == 0
    depth = np.load(tmp_path / "out" / "photo_depth.npy")
    header, vertices = read_ply(tmp_path / "out" / "photo_points.ply")
    assert len(vertices) == depth.size
    v, u = 17, 61
    point, z = vertices[v * depth.shape[1] + u], float(depth[v, u])
    assert point["x"] == pytest.approx((u - 40.5) * z / 100, rel=1e-6)
    assert point["y"] == pytest.approx((v - 30.25) * z / 90, rel=1e-6)
    assert point["z"] == pytest.approx(z, rel=1e-6)


def test_log_maps_log_depth_back(small_net, tmp_path, capsys):
    images = write_images(tmp_path / "in")
    status, _, _ = run_cli(capsys, "predict", images["deep"], "--model", small_net[0], "--weights", small_net[1],
                           "--out", tmp_path / "out", "--log", "--no-progress")
    assert status == 0
    expected = expected_depth_m(small_net, images["deep"], log=True)
    depth = np.load(tmp_path / "out" / "deep_depth.npy")
    assert np.abs(depth - expected).max() <= 1e-4 * np.abs(expected).max()


def test_a_folder_is_processed_whole_with_a_progress_bar(small_net, tmp_path, capsys):
    images = write_images(tmp_path / "in")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    status, stdout, stderr = run_cli(capsys, "predict", tmp_path / "in", "--model", small_net[0], "--weights",
                                     small_net[1], "--out", tmp_path / "out", "--batch-size", "2")
    assert status == 0
    written = sorted(n for n in os.listdir(tmp_path / "out") if n.endswith("_depth.npy"))
    assert written == sorted(f"{name}_depth.npy" for name in images)
    assert f"{len(images)}/{len(images)}" in stderr                          # tqdm's count at the end
    assert "notes.txt" in stderr                                             # named as ignored
    assert f"{len(images)} image(s)" in stdout


def test_missing_input_is_a_one_line_error(small_net, tmp_path, capsys):
    status, stdout, stderr = run_cli(capsys, "predict", tmp_path / "nowhere.png", "--model", small_net[0],
                                     "--weights", small_net[1], "--out", tmp_path / "out", "--no-progress")
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eigen-depth predict: error: ") and "nowhere.png" in lines[0]
    assert not (tmp_path / "out").exists()


def test_unreadable_image_is_a_one_line_error_and_the_others_are_written(small_net, tmp_path, capsys):
    images = write_images(tmp_path / "in")
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    status, _, stderr = run_cli(capsys, "predict", broken, images["gray"], "--model", small_net[0],
                                "--weights", small_net[1], "--out", tmp_path / "out", "--no-progress")
    assert status == 1  # a partial success
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eigen-depth predict: error: ") and "broken.png" in lines[0]
    assert (tmp_path / "out" / "gray_depth.npy").is_file()
    assert not (tmp_path / "out" / "broken_depth.npy").exists()


def test_missing_weights_and_a_non_depth_net_are_one_line_errors(small_net, tmp_path, capsys):
    images = write_images(tmp_path / "in")
    status, _, stderr = run_cli(capsys, "predict", images["gray"], "--model", small_net[0], "--weights",
                                tmp_path / "none.caffemodel", "--out", tmp_path / "out", "--no-progress")
    assert status == 2 and len(stderr.strip().splitlines()) == 1 and "none.caffemodel" in stderr
    two_channels = tmp_path / "two.prototxt"
    two_channels.write_text(SMALL_NET.replace("dim: 0 dim: 1 dim: 27 dim: 37", "dim: 0 dim: 3 dim: 9 dim: 37"))
    status, _, stderr = run_cli(capsys, "predict", images["gray"], "--model", two_channels, "--weights",
                                small_net[1], "--out", tmp_path / "out", "--no-progress")
    assert status == 2 and len(stderr.strip().splitlines()) == 1 and "depth" in stderr
