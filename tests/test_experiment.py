"""The learning experiment's pieces: the constant-depth baseline as a Caffe snapshot (read back by OpenCV's
Caffe reader) and the mean training depth of a pair folder (hand-computed)."""
import os

import cv2
import numpy as np

from eigen_depth.data.pairs import write_pair
from eigen_depth.experiment import RoomSets, constant_snapshot


def test_constant_snapshot_predicts_the_given_depth_everywhere_in_opencvs_caffe_reader(tmp_path):
    weights = constant_snapshot(str(tmp_path), depth_m=3.25)
    net = cv2.dnn.readNetFromCaffe(str(tmp_path / "constant.prototxt"), weights)
    image = np.random.default_rng(0).uniform(-127, 128, (1, 3, 218, 298)).astype(np.float32)
    net.setInput(image)
    out = net.forward("depth")
    assert out.shape[:2] == (1, 1)
    np.testing.assert_allclose(out, 0.325, rtol=1e-6)  # the thesis's unit: meters / 10


def test_mean_training_depth_averages_every_pixel_with_depth_of_every_training_pair(tmp_path):
    sets = RoomSets(str(tmp_path))
    folder = os.path.join(sets.train_pairs, "train")
    os.makedirs(folder)
    color = np.zeros((4, 5, 3), np.uint8)
    # png8 depth: pixel / 255 * 10 m, 0 = missing; two pairs of 20 pixels: 51 everywhere (2 m), and half 102
    # (4 m), half missing
    write_pair(folder, "00000", color, depth_pixels=np.full((4, 5), 51, np.uint8))
    second = np.zeros((4, 5), np.uint8)
    second[:2] = 102
    write_pair(folder, "00001", color, depth_pixels=second)
    assert abs(sets.mean_training_depth_m() - (20 * 2.0 + 10 * 4.0) / 30) < 1e-6
