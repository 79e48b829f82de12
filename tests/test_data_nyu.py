"""NYU Depth v2 converter (docs/specification.md section 5) on small files written here in the labeled file's exact
layout: HDF5 (MATLAB v7.3) with images (N, 3, 640, 480) uint8 and depths (N, 640, 480) float32, i.e.
MATLAB's 480x640 arrays seen transposed; splits.mat (v5) with one-based testNdxs / trainNdxs."""
import os

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from eigen_depth.data.commands import convert_nyu_main
from eigen_depth.data.nyu import LabeledFile, convert_nyu, read_splits, write_labeled_mat, write_splits_mat
from eigen_depth.errors import DatasetError

COUNT = 5
# (depth in meters, expected png8 pixel): trunc(clip(d / 10, 0.025559, 1) * 255), worked out by hand
DEPTH_BANDS = [(2.0, 51), (0.1, 6), (12.0, 255), (10.0, 255), (5.0, 127), (1.0, 25), (0.0, 0)]


def frame(index):
    """Item `index` as MATLAB holds it: rgb (480, 640, 3) with R = column % 256, G = row % 256,
    B = 40 * index; depth (480, 640) in vertical bands of 60 columns from x = 110 (the crop's left edge)."""
    rows, cols = np.mgrid[0:480, 0:640]
    rgb = np.stack([cols % 256, rows % 256, np.full_like(rows, 40 * index)], axis=2).astype(np.uint8)
    depth = np.full((480, 640), 3.0, np.float32)
    for band, (meters, _) in enumerate(DEPTH_BANDS):
        depth[:, 110 + 60 * band:110 + 60 * (band + 1)] = meters
    return rgb, depth


def write_h5(path, count=COUNT, keys=("images", "depths")):
    with h5py.File(path, "w") as handle:
        if "images" in keys:
            images = handle.create_dataset("images", (count, 3, 640, 480), np.uint8)
            for i in range(count):
                images[i] = frame(i)[0].T  # MATLAB's 480x640x3 seen through h5py: (3, 640, 480)
        if "depths" in keys:
            depths = handle.create_dataset("depths", (count, 640, 480), np.float32)
            for i in range(count):
                depths[i] = frame(i)[1].T


@pytest.fixture(scope="module")
def nyu_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nyu")
    labeled, splits = folder / "labeled.mat", folder / "splits.mat"
    write_h5(labeled)
    scipy.io.savemat(splits, {"testNdxs": np.array([[2.0], [4.0]]), "trainNdxs": np.array([[1.0], [3.0], [5.0]])})
    return labeled, splits


def read_rgb(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, ::-1]


def test_test_split_is_written_with_zero_based_names(nyu_files, tmp_path):
    convert_nyu(*nyu_files, tmp_path, workers=1, progress=False, log=lambda *a: None)
    assert sorted(os.listdir(tmp_path / "test")) == ["00001_colors.png", "00001_depth.png",
                                                     "00003_colors.png", "00003_depth.png"]
    assert not (tmp_path / "train").exists()


def test_colour_is_the_420x320_centre_crop(nyu_files, tmp_path):
    convert_nyu(*nyu_files, tmp_path, workers=1, progress=False, log=lambda *a: None)
    rgb = read_rgb(tmp_path / "test" / "00003_colors.png")
    assert rgb.shape == (320, 420, 3)
    rows, cols = np.mgrid[0:320, 0:420]
    assert np.array_equal(rgb[:, :, 0], (cols + 110) % 256)   # borders 110 left and right
    assert np.array_equal(rgb[:, :, 1], (rows + 80) % 256)    # borders 80 top and bottom
    assert np.all(rgb[:, :, 2] == 40 * 3)


def test_depth_is_meters_over_ten_times_255_truncated_with_floor_and_clip(nyu_files, tmp_path):
    convert_nyu(*nyu_files, tmp_path, workers=1, progress=False, log=lambda *a: None)
    depth = cv2.imread(str(tmp_path / "test" / "00001_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint8 and depth.shape == (320, 420)
    for band, (_, pixel) in enumerate(DEPTH_BANDS):
        assert np.all(depth[:, 60 * band:60 * (band + 1)] == pixel), band


def test_both_splits_and_parallel_workers_give_the_same_files(nyu_files, tmp_path):
    convert_nyu(*nyu_files, tmp_path / "a", split="both", workers=1, progress=False, log=lambda *a: None)
    convert_nyu(*nyu_files, tmp_path / "b", split="both", workers=2, progress=False, log=lambda *a: None)
    assert sorted(os.listdir(tmp_path / "a" / "train")) == [f"0000{i}_{kind}.png" for i in (0, 2, 4)
                                                           for kind in ("colors", "depth")]
    for split in ("train", "test"):
        for name in os.listdir(tmp_path / "a" / split):
            assert (tmp_path / "a" / split / name).read_bytes() == (tmp_path / "b" / split / name).read_bytes()


def test_full_keeps_640x480(nyu_files, tmp_path):
    convert_nyu(*nyu_files, tmp_path, full=True, workers=1, progress=False, log=lambda *a: None)
    rgb = read_rgb(tmp_path / "test" / "00001_colors.png")
    assert rgb.shape == (480, 640, 3) and np.array_equal(rgb, frame(1)[0])


def test_png16mm_writes_millimetres(nyu_files, tmp_path):
    convert_nyu(*nyu_files, tmp_path, depth_format="png16mm", workers=1, progress=False, log=lambda *a: None)
    depth = cv2.imread(str(tmp_path / "test" / "00001_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16
    expected = [2000, 100, 12000, 10000, 5000, 1000, 0]
    for band, millimetres in enumerate(expected):
        assert np.all(depth[:, 60 * band:60 * (band + 1)] == millimetres)


def test_rerun_skips_finished_pairs_and_overwrite_rewrites_them(nyu_files, tmp_path):
    logs = []
    convert_nyu(*nyu_files, tmp_path, workers=1, progress=False, log=logs.append)
    marker = tmp_path / "test" / "00001_colors.png"
    original = marker.read_bytes()
    marker.write_bytes(b"kept")
    convert_nyu(*nyu_files, tmp_path, workers=1, progress=False, log=logs.append)
    assert marker.read_bytes() == b"kept" and "skipped 2" in logs[-2]
    convert_nyu(*nyu_files, tmp_path, workers=1, overwrite=True, progress=False, log=logs.append)
    assert marker.read_bytes() == original


def test_missing_variable_is_named(tmp_path, nyu_files):
    labeled = tmp_path / "no_depths.mat"
    write_h5(labeled, keys=("images",))
    with pytest.raises(DatasetError, match=r"no 'depths' variable \(it has images\)"):
        convert_nyu(labeled, nyu_files[1], tmp_path / "out", progress=False)


@pytest.mark.parametrize("bad", [6, 0])
def test_out_of_range_split_index_is_an_error(tmp_path, nyu_files, bad):
    splits = tmp_path / "splits.mat"
    scipy.io.savemat(splits, {"testNdxs": np.array([[1.0], [bad]]), "trainNdxs": np.array([[2.0]])})
    with pytest.raises(DatasetError, match=rf"'testNdxs' index {bad} is out of range.*1\.\.5"):
        convert_nyu(nyu_files[0], splits, tmp_path / "out", progress=False)


def test_missing_split_variable_is_named(tmp_path):
    splits = tmp_path / "splits.mat"
    scipy.io.savemat(splits, {"testNdxs": np.array([[1.0]])})
    with pytest.raises(DatasetError, match="no 'trainNdxs' variable"):
        read_splits(splits, 5)


def test_command_line_reports_errors_on_one_line(tmp_path, nyu_files, capsys):
    labeled = tmp_path / "no_images.mat"
    write_h5(labeled, keys=("depths",))
    assert convert_nyu_main([str(labeled), str(nyu_files[1]), str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convert_nyu: error:") and "'images'" in err[0]


def test_command_line_converts(tmp_path, nyu_files):
    assert convert_nyu_main([str(nyu_files[0]), str(nyu_files[1]), str(tmp_path), "--split", "train",
                             "--workers", "1", "--quiet"]) == 0
    assert len(os.listdir(tmp_path / "train")) == 6


def test_matlab_v5_files_are_read_too(tmp_path, nyu_files):
    rgb = np.stack([frame(i)[0] for i in range(COUNT)], axis=3)    # MATLAB: 480 x 640 x 3 x N
    depth = np.stack([frame(i)[1] for i in range(COUNT)], axis=2)  # 480 x 640 x N
    scipy.io.savemat(tmp_path / "v5.mat", {"images": rgb, "depths": depth})
    labeled = LabeledFile(tmp_path / "v5.mat")
    assert (labeled.count, labeled.width, labeled.height) == (5, 640, 480)
    assert np.array_equal(labeled.image(3), frame(3)[0]) and np.array_equal(labeled.depth(3), frame(3)[1])


def test_written_labeled_file_has_nyus_layout(tmp_path):
    items = [frame(i) + (frame(i)[1] * 0,) for i in range(2)]
    write_labeled_mat(tmp_path / "l.mat", iter(items), 2, raw=True)
    with open(tmp_path / "l.mat", "rb") as handle:
        header = handle.read(128)
    assert header.startswith(b"MATLAB 7.3 MAT-file") and header[124:128] == b"\x00\x02IM"
    with h5py.File(tmp_path / "l.mat", "r") as handle:
        assert handle["images"].shape == (2, 3, 640, 480) and handle["images"].dtype == np.uint8
        assert handle["depths"].shape == (2, 640, 480) and handle["depths"].dtype == np.float32
        assert handle["rawDepths"].shape == (2, 640, 480)
        assert np.array_equal(handle["images"][1].T, frame(1)[0])
        assert handle["depths"].attrs["MATLAB_class"] == b"single"
    write_splits_mat(tmp_path / "s.mat", [1, 0], [4])
    loaded = scipy.io.loadmat(tmp_path / "s.mat")
    assert loaded["testNdxs"].tolist() == [[2.0], [1.0]] and loaded["trainNdxs"].tolist() == [[5.0]]
