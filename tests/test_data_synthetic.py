"""Synthetic scenes: the ray caster's depth against analytic ray-plane distances for known camera poses, doors,
windows and chairs at hand-computed depths, the random rooms' ranges and camera poses, textures, holes,
determinism, depth statistics, and make_synthetic -> convert_nyu end to end."""
import math
import os

import cv2
import h5py
import numpy as np
import pytest

from eigen_depth.data.commands import make_synthetic_main
from eigen_depth.data.nyu import convert_nyu
from eigen_depth.data.rooms import chair, choose_camera, door, place, window
from eigen_depth.data.synthetic import (CHECKERS, NOISE, NOISE_TILE_CELLS, STRIPES, WOOD, Box, Camera, Light,
                                        Material, Scene, SceneSet, _mix_factor, cast, depth_statistics, look_rotation,
                                        noise_tile, render, split_indices)

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


def camera_angles_deg(rotation):
    """(pitch, roll) of a world-from-camera rotation, from its axes: the forward axis (column 2) rises by
    sin(pitch); look_rotation's right axis (column 0) has z = -sin(roll) cos(pitch)."""
    pitch = math.asin(rotation[2, 2])
    return math.degrees(pitch), math.degrees(math.asin(-rotation[2, 0] / math.cos(pitch)))


def distance_to_box(point, box):
    """Euclidean distance from a point to an upright box (0 inside it)."""
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    d = np.asarray(point, float) - box.center
    local = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2]])
    return float(np.linalg.norm(np.maximum(np.abs(local) - box.half, 0.0)))


ROOMS = SceneSet(30, seed=21)


def test_random_rooms_stay_in_their_ranges_and_keep_the_camera_clear():
    kinds = set()
    for index in range(len(ROOMS)):
        made = ROOMS.scene(index)
        assert 2.5 <= made.size[0] <= 8 and 2.5 <= made.size[1] <= 8 and 2.4 <= made.size[2] <= 3.2
        assert 1 <= len(made.lights) <= 3 and len(made.boxes) >= 10
        position = made.camera.position
        assert 1.0 <= position[2] <= 1.7
        assert np.all(position[:2] >= 0.3) and np.all(position[:2] <= made.size[:2] - 0.3)
        pitch, roll = camera_angles_deg(np.asarray(made.camera.rotation))
        assert -25 - 1e-9 <= pitch <= 10 + 1e-9 and abs(roll) <= 5 + 1e-9
        assert min(distance_to_box(position, box) for box in made.boxes) >= 0.3
        for box in made.boxes:
            corners = box.corners()
            assert np.all(corners >= -1e-6) and np.all(corners <= made.size + 1e-6)
        kinds |= {box.kind for box in made.boxes}
    assert {"door", "door frame", "window pane", "window frame", "chair seat", "chair back", "chair leg",
            "table top", "table leg", "bookcase board", "books", "mattress", "sofa base", "cabinet"} <= kinds


def test_random_rooms_look_into_the_room():
    center_medians, usable = [], []
    for index in range(len(ROOMS)):
        depth, _ = cast(ROOMS.scene(index))
        center_medians.append(np.median(depth[120:360, 160:480]))  # the middle half of 480 rows, 640 columns
        usable.append(np.mean((depth >= 0.5) & (depth <= 10.0)))
    assert np.mean(np.array(center_medians) >= 1.5) >= 0.9
    assert np.mean(usable) >= 0.99 and min(usable) >= 0.9


def test_a_cramped_room_still_gets_a_camera_in_range():
    # 1.3 m across: no pose can see 1.5 m deep in the middle, so the fallback pose is taken
    made = choose_camera(np.random.default_rng(0), np.array([1.3, 1.3, 2.5]), [])
    assert made is not None and np.all(made.position[:2] > 0.3) and np.all(made.position[:2] < 1.0)
    pitch, roll = camera_angles_deg(np.asarray(made.rotation))
    assert 1.0 <= made.position[2] <= 1.7 and -25 - 1e-9 <= pitch <= 10 + 1e-9 and abs(roll) <= 5 + 1e-9


def test_pitched_camera_sees_the_floor_and_far_wall_at_the_hand_computed_depths():
    # look_rotation(0, p): forward (cos p, 0, sin p), down (sin p, 0, -cos p), right (0, -1, 0), so pixel
    # (x, y) looks along (y sin p + cos p, -x, sin p - y cos p) with depth as the ray parameter
    pitch = math.radians(-20)
    camera = Camera(rotation=look_rotation(0.0, pitch), position=np.array([1.0, 2.0, 1.5]))
    stool = Box(np.array([2.0, 3.5, 0.3]), np.array([0.2, 0.2, 0.3]), 0.4, PLAIN)  # off to the left, below
    depth, ids = cast(scene((5.0, 4.0, 2.8), camera, [stool]))
    y = (400 - camera.cy) / camera.fy
    assert ids[400, 325] == 4 and np.isclose(depth[400, 325], 1.5 / (y * math.cos(pitch) - math.sin(pitch)),
                                             rtol=1e-5)
    y = (0 - camera.cy) / camera.fy
    assert ids[0, 325] == 1 and np.isclose(depth[0, 325], (5.0 - 1.0) / (y * math.sin(pitch) + math.cos(pitch)),
                                           rtol=1e-5)


def pixel_of(camera, point):
    """(row, column) nearest to the image of a world point."""
    x, y, z = camera.to_camera(point)
    return int(round(camera.cy + camera.fy * y / z)), int(round(camera.cx + camera.fx * x / z))


def test_a_door_a_window_and_a_chair_appear_where_they_stand():
    # a level camera at x = 1 looking along +x: every point of a plane x = X has depth X - 1
    camera = Camera(rotation=look_rotation(0.0), position=np.array([1.0, 2.5, 1.3]))
    on_far_wall = math.pi / 2  # turns a piece's front (+y) to -x: its back against the wall x = 6
    boxes = (place(door(PLAIN, PLAIN, PLAIN, width_m=0.9, height_m=2.05), 6.0 - 0.025, 3.8, on_far_wall)
             + place(window(PLAIN, PLAIN, width_m=1.0, height_m=1.2, sill_m=0.9), 6.0 - 0.025, 1.2, on_far_wall)
             + place(chair(PLAIN, width_m=0.45, depth_m=0.45, seat_height_m=0.46, back_height_m=0.42),
                     3.0, 2.5, on_far_wall))
    depth, ids = cast(scene((6.0, 5.0, 2.8), camera, boxes))
    # the door leaf is 3 cm thick, the pane 1 cm thick 1 cm off the wall, the chair back's 3 cm thick front
    # face is at 3.0 + 0.225 - 0.03
    for point, kind in (((5.97, 3.8, 1.5), "door"), ((5.99, 1.2, 1.5), "window pane"),
                        ((3.195, 2.5, 0.7), "chair back")):
        row, col = pixel_of(camera, point)
        assert boxes[(ids[row, col] - 6) // 6].kind == kind
        assert np.isclose(depth[row, col], point[0] - 1.0, rtol=1e-5)


def test_a_chair_in_front_of_the_camera_has_the_hand_computed_seat_depth():
    pitch = math.radians(-35)
    camera = Camera(rotation=look_rotation(0.0, pitch), position=np.array([1.0, 2.5, 1.5]))
    boxes = place(chair(PLAIN, width_m=0.45, depth_m=0.45, seat_height_m=0.46), 2.2, 2.5, math.pi / 2)
    depth, ids = cast(scene((5.0, 5.0, 2.8), camera, boxes))
    # pixel (330, 326) looks along (y sin p + cos p, -x, sin p - y cos p) (see the pitched camera test) and
    # meets the seat's top z = 0.46 at t = (1.5 - 0.46) / (y cos p - sin p) = 1.4989, at x = 2.1016: on the
    # seat (x 1.975..2.425) in front of its back (x 2.395..2.425)
    y = (330 - camera.cy) / camera.fy
    t = (1.5 - 0.46) / (y * math.cos(pitch) - math.sin(pitch))
    assert 1.975 < 1.0 + t * (y * math.sin(pitch) + math.cos(pitch)) < 2.395
    seat = [box.kind for box in boxes].index("chair seat")
    assert ids[330, 326] == 6 + 6 * seat + 5  # the seat's +z face
    assert np.isclose(depth[330, 326], t, rtol=1e-5) and np.isclose(t, 1.4989, atol=1e-4)


def test_depth_statistics_match_the_rendered_depths():
    stats = depth_statistics(3, seed=4, workers=1)
    depths = np.concatenate([SceneSet(3, seed=4).render_full(index)[1].ravel() for index in range(3)])
    assert stats["pixels"] == depths.size and np.isclose(stats["mean_m"], depths.mean(dtype=np.float64))
    for q, value in stats["percentiles_m"].items():
        assert abs(value - np.percentile(depths, float(q))) <= 0.01  # 1 cm bins
    assert np.isclose(stats["fraction_beyond_5m"], np.mean(depths >= 5.0), atol=1e-4)
    assert np.isclose(stats["fraction_below_0.5m"], np.mean(depths < 0.5), atol=1e-4)


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
