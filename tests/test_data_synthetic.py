"""Synthetic scenes: the ray caster's depth against analytic ray-plane distances for known camera poses, the
random scenes' ranges, textures, holes, determinism, and make_synthetic -> convert_nyu end to end."""
import math
import os

import cv2
import h5py
import numpy as np
import pytest

from eigen_depth.data.commands import make_synthetic_main
from eigen_depth.data.nyu import convert_nyu
from eigen_depth.data.synthetic import (CHECKERS, NOISE, NOISE_TILE_CELLS, STRIPES, WOOD, Box, Camera, Light,
                                        Material, Scene, SceneSet, _mix_factor, cast, look_rotation, noise_tile,
                                        random_scene, render, split_indices)

PLAIN = Material(NOISE, 1.0, 0.0, (0.5, 0.5, 0.5), (0.6, 0.6, 0.6))


def scene(size, camera, boxes=()):
    return Scene(np.asarray(size, float), [PLAIN] * 6, list(boxes),
                 [Light(np.array([size[0] / 2, size[1] / 2, size[2] - 0.1]), np.ones(3))], np.full(3, 0.2), camera)


def pixel_rays(camera):
    """(x, y) normalised coordinates of every pixel, float64 (the module's convention: 0-based pixels)."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    return (u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy


def test_the_default_camera_is_nyus_kinect():
    camera = Camera()
    assert (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height) == \
        (518.86, 519.47, 325.58, 253.74, 640, 480)


def test_level_camera_in_an_empty_room_sees_the_closed_form_distances():
    # looking along +x from (0.5, 2.0, 1.2) in a 4 x 4 x 2.6 room: the world ray of pixel (x, y) is (1, -x, -y)
    camera = Camera(rotation=look_rotation(0.0), position=np.array([0.5, 2.0, 1.2]))
    depth, ids = cast(scene((4.0, 4.0, 2.6), camera))
    x, y = pixel_rays(camera)
    with np.errstate(divide="ignore"):
        candidates = np.stack([np.full_like(x, 3.5),                 # front wall x = 4: (4 - 0.5) / 1
                               np.where(x > 0, 2.0 / x, np.inf),     # wall y = 0, to the right
                               np.where(x < 0, 2.0 / -x, np.inf),    # wall y = 4, to the left
                               np.where(y > 0, 1.2 / y, np.inf),     # floor, below the horizon
                               np.where(y < 0, 1.4 / -y, np.inf)])   # ceiling
    assert np.allclose(depth, candidates.min(axis=0), rtol=2e-6, atol=0)
    assert ids[240, 325] == 1 and ids[470, 325] == 4 and ids[5, 325] == 5 and ids[240, 635] == 2 and ids[240, 2] == 3


def ray_plane_truth(scene, camera, shrink=0.0):
    """Depth by brute force: every room plane and every face plane of every box (faces as rectangles,
    shrunk by `shrink` meters), nearest positive hit."""
    x, y = pixel_rays(camera)
    rotation = np.asarray(camera.rotation, float)
    d = np.stack([x, y, np.ones_like(x)], axis=-1) @ rotation.T
    o = np.asarray(camera.position, float)
    best = np.full(x.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(3):
            for bound in (0.0, scene.size[axis]):
                t = (bound - o[axis]) / d[..., axis]
                best = np.where((t > 0) & (t < best), t, best)
        for box in scene.boxes:
            axes = box.axes()
            for axis in range(3):
                for sign in (-1, 1):
                    normal = sign * axes[:, axis]
                    point = box.center + normal * box.half[axis]
                    t = ((point - o) @ normal) / (d @ normal)
                    local = (o + t[..., None] * d - box.center) @ axes
                    others = [k for k in range(3) if k != axis]
                    inside = np.all(np.abs(local[..., others]) <= box.half[others] - shrink, axis=-1)
                    best = np.where(inside & (t > 0) & (t < best), t, best)
    return best


def test_tilted_camera_with_a_turned_box_matches_ray_plane_intersections():
    camera = Camera(rotation=look_rotation(0.4, -0.2, 0.05), position=np.array([1.0, 1.5, 1.4]))
    box = Box(np.array([4.0, 3.0, 0.5]), np.array([0.6, 0.4, 0.5]), 0.3, PLAIN)
    shelf = Box(np.array([3.5, 0.8, 1.2]), np.array([0.5, 0.15, 0.02]), 0.0, PLAIN)
    room = scene((6.0, 5.0, 3.0), camera, [box, shelf])
    depth, ids = cast(room)
    inner, outer = ray_plane_truth(room, camera, 1e-4), ray_plane_truth(room, camera, -1e-4)
    clear = np.isclose(inner, outer, rtol=1e-9)         # pixels not grazing a box outline
    assert clear.mean() > 0.995 and (ids >= 6).sum() > 20000
    assert np.allclose(depth[clear], inner[clear], rtol=2e-6, atol=0)
    # on the outlines the caster's answer lies between those for the boxes shrunk and grown by 0.1 mm
    assert np.all((outer[~clear] * (1 - 1e-5) <= depth[~clear]) & (depth[~clear] <= inner[~clear] * (1 + 1e-5)))


def test_a_cropped_camera_sees_the_crop():
    camera = Camera(rotation=look_rotation(1.0, -0.1), position=np.array([2.0, 2.0, 1.5]))
    room = scene((5.0, 6.0, 2.8), camera, [Box(np.array([2.5, 4.5, 0.4]), np.array([0.5, 0.5, 0.4]), 0.2, PLAIN)])
    full, _ = cast(room)
    crop, _ = cast(room, camera.crop(110, 80, 420, 320))
    assert np.allclose(crop, full[80:400, 110:530], rtol=1e-6)


def test_random_scenes_stay_in_their_ranges():
    for seed in range(25):
        made = random_scene(np.random.default_rng(seed))
        assert 2.5 <= made.size[0] <= 8 and 2.5 <= made.size[1] <= 8 and 2.4 <= made.size[2] <= 3.2
        assert 3 <= len(made.boxes) <= 12 and 1 <= len(made.lights) <= 2
        position = made.camera.position
        assert np.all(position > 0) and np.all(position < made.size) and 1.0 <= position[2] <= 1.8
        assert not any(box.contains(position, 0.3) for box in made.boxes)
        for box in made.boxes:
            corners = box.corners()
            assert np.all(corners >= -1e-6) and np.all(corners <= made.size + 1e-6)


def test_rendered_depth_is_positive_and_bounded_by_the_room():
    made = SceneSet(3, seed=11).scene(1)
    rgb, depth = render(made)
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8 and depth.dtype == np.float32
    assert depth.min() > 0.25 and depth.max() < np.linalg.norm(made.size)
    assert rgb.std() > 10  # textured and shaded, not flat


def test_textures_by_their_definitions():
    u, v = np.meshgrid(np.linspace(-3, 3, 61, dtype=np.float32), np.linspace(-2, 2, 41, dtype=np.float32))
    tile = noise_tile(np.random.default_rng(0))
    checkers = _mix_factor(CHECKERS, u, v, tile, 1.0)
    assert np.array_equal(checkers, (np.floor(u) + np.floor(v)) % 2)
    stripes = _mix_factor(STRIPES, u, v, tile, 1.0)
    assert np.allclose(stripes, np.clip(0.5 + np.sin(2 * np.pi * u), 0, 1), atol=1e-6)
    assert np.allclose(stripes[0], stripes[-1])  # constant along v
    noise = _mix_factor(NOISE, u, v, tile, 1.0)
    assert 0 <= noise.min() and noise.max() <= 1 and noise.std() > 0.05
    assert np.allclose(noise, _mix_factor(NOISE, u + NOISE_TILE_CELLS, v, tile, 1.0), atol=1e-5)  # periodic
    wood = _mix_factor(WOOD, u, v, tile, 1.0)
    assert 0 <= wood.min() and wood.max() <= 1 and wood.std() > 0.1


def test_scene_sets_are_deterministic_and_split_like_nyu():
    tests, trains = split_indices(1449, seed=0)
    assert len(tests) == 654 and len(trains) == 795 and not set(tests) & set(trains)
    a, b = SceneSet(4, seed=3).render_full(2), SceneSet(4, seed=3).render_full(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], SceneSet(4, seed=4).render_full(2)[1])
    assert len(SceneSet(10, 0, split="test")) == 5
    assert SceneSet(10, 0, split="train").global_index(0) == split_indices(10)[1][0]


def test_holes_only_remove_depth_and_do_not_touch_colour():
    scenes = SceneSet(3, seed=2)
    rgb, depth, holed = scenes.render_full(0, holes=True)
    plain_rgb, plain_depth = scenes.render_full(0, holes=False)
    assert np.array_equal(rgb, plain_rgb) and np.array_equal(depth, plain_depth)
    missing = holed == 0
    assert 0.001 < missing.mean() < 0.5 and np.array_equal(holed[~missing], depth[~missing])


def test_sensor_noise_is_mild():
    made = SceneSet(2, seed=5).scene(0)
    clean, _ = render(made, noise_std=0)
    noisy, _ = render(made, rng=np.random.default_rng(1))
    difference = noisy.astype(float) - clean
    assert 0.5 < difference.std() < 4


def test_nyu_mat_converted_by_convert_nyu_equals_the_pairs_format(tmp_path):
    quiet = dict(workers=1, progress=False, log=lambda *a: None)
    from eigen_depth.data.synthetic import make_synthetic
    make_synthetic(3, tmp_path / "mat", seed=7, file_format="nyu-mat", **quiet)
    with h5py.File(tmp_path / "mat" / "nyu_depth_v2_labeled.mat", "r") as handle:
        assert handle["images"].shape == (3, 3, 640, 480) and handle["depths"].shape == (3, 640, 480)
        assert handle["rawDepths"].shape == (3, 640, 480)
    convert_nyu(tmp_path / "mat" / "nyu_depth_v2_labeled.mat", tmp_path / "mat" / "splits.mat", tmp_path / "nyu",
                split="both", **quiet)
    make_synthetic(3, tmp_path / "pairs", seed=7, **quiet)
    for split in ("train", "test"):
        names = sorted(os.listdir(tmp_path / "pairs" / split))
        assert names == sorted(os.listdir(tmp_path / "nyu" / split))
        for name in names:
            assert (tmp_path / "pairs" / split / name).read_bytes() == (tmp_path / "nyu" / split / name).read_bytes()
    convert_nyu(tmp_path / "mat" / "nyu_depth_v2_labeled.mat", tmp_path / "mat" / "splits.mat", tmp_path / "raw",
                split="test", depth_key="rawDepths", **quiet)
    make_synthetic(3, tmp_path / "holes", seed=7, holes=True, **quiet)
    name = sorted(os.listdir(tmp_path / "holes" / "test"))[1]
    holed = cv2.imread(str(tmp_path / "holes" / "test" / name), cv2.IMREAD_UNCHANGED)
    assert name.endswith("_depth.png") and (holed == 0).any()
    assert np.array_equal(holed, cv2.imread(str(tmp_path / "raw" / "test" / name), cv2.IMREAD_UNCHANGED))


def test_command_line_full_frames_in_millimetres(tmp_path):
    assert make_synthetic_main(["2", str(tmp_path), "--full", "--depth-format", "png16mm", "--workers", "1",
                                "--quiet", "--seed", "1"]) == 0
    depth = cv2.imread(str(tmp_path / "train" / "00000_depth.png"), cv2.IMREAD_UNCHANGED)
    exact = SceneSet(2, seed=1).render_full(0)[1]
    assert depth.shape == (480, 640) and depth.dtype == np.uint16
    assert np.array_equal(depth, np.rint(exact.astype(np.float64) * 1000).astype(np.uint16))


def test_look_rotation_axes():
    rotation = look_rotation(math.pi / 2)  # heading +y
    assert np.allclose(rotation[:, 2], [0, 1, 0]) and np.allclose(rotation[:, 0], [1, 0, 0])
    assert np.allclose(rotation[:, 1], [0, 0, -1]) and np.isclose(np.linalg.det(rotation), 1)
    with pytest.raises(ValueError, match="not inside the room"):
        cast(scene((2.0, 2.0, 2.0), Camera(position=np.array([3.0, 1.0, 1.0]))))
