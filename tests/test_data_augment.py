"""The thesis's augmentation recipes (docs/specification.md section 5): geometry on checkerboards (the same transform
on colour and depth, depth divided by the scale, flips), the colour jitter by hand, the recipes' ranges,
determinism under a seed, the folder tool."""
import csv
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from eigen_depth.data.augment import (Variant, apply_variant, augment_folder, draw_variants, frame_outputs,
                                      jitter_color, scale_depth)
from eigen_depth.data.commands import augment_main
from eigen_depth.errors import DatasetError

CELL = 8


def checkerboard(width=64, height=48, cell=CELL):
    """Colour cells red/blue, depth cells 40/120 (png8), on the same 8-pixel grid."""
    rows, cols = np.mgrid[0:height, 0:width]
    parity = ((rows // cell) + (cols // cell)) % 2
    rgb = np.where(parity[..., None] == 1, np.array([200, 0, 0], np.uint8), np.array([0, 0, 200], np.uint8))
    depth = np.where(parity == 1, 120, 40).astype(np.uint8)
    return rgb.astype(np.uint8), depth, parity


def source_parity(coordinate_x, coordinate_y):
    return ((np.floor(coordinate_y / CELL) + np.floor(coordinate_x / CELL)) % 2).astype(int)


def test_rescale_maps_both_images_through_the_same_geometry_and_divides_depth():
    rgb, depth, _ = checkerboard()
    variant = Variant("rescale", scale=1.25, x0=3, y0=2)
    out_rgb, out_depth = apply_variant(rgb, depth, variant, crop=(32, 24))
    assert out_rgb.shape == (24, 32, 3) and out_depth.shape == (24, 32)
    # output pixel (r, c) is the scaled frame's (r + 2, c + 3), i.e. source ((c + 3 + 0.5) / 1.25 - 0.5, ...)
    rows, cols = np.mgrid[0:24, 0:32]
    sx, sy = (cols + 3 + 0.5) / 1.25 - 0.5, (rows + 2 + 0.5) / 1.25 - 0.5
    expected = source_parity(sx, sy)
    mx, my = (sx + 0.5) % CELL, (sy + 0.5) % CELL    # cell edges lie half-way between pixels 8k - 1 and 8k
    interior = np.minimum(np.minimum(mx, CELL - mx), np.minimum(my, CELL - my)) > 1.0  # blending stays near edges
    assert np.all(np.unique(out_depth) == [32, 96])                 # 40 / 1.25 and 120 / 1.25, never mixed
    assert np.array_equal((out_depth == 96)[interior], expected[interior] == 1)
    assert np.array_equal((out_rgb[:, :, 0] == 200)[interior], expected[interior] == 1)
    assert np.array_equal(out_depth == 96, source_parity(np.floor(sx + 0.5 + 1e-9), np.floor(sy + 0.5 + 1e-9)) == 1)


def test_shrinking_with_area_mixes_depth_only_on_cell_edges():
    rgb, depth, _ = checkerboard()
    # 0.8125 = 13/16: 64x48 -> 52x39, a cell of 8 becomes 6.5 pixels, so some output pixels straddle edges
    _, out_depth = apply_variant(rgb, depth, Variant("rescale", scale=0.8125), crop=(52, 39), depth_resampling="area")
    mixed = (out_depth != 49) & (out_depth != 148)  # round(40 / 0.8125), round(120 / 0.8125)
    # output pixel c covers source pixels [c * 16/13, (c + 1) * 16/13): it mixes two cells only where that
    # span crosses a cell edge (a multiple of 8)

    def crossing(n):
        index = np.arange(n)
        return np.floor(index * 16 / 13 / CELL) != np.floor(((index + 1) * 16 / 13 - 1e-9) / CELL)
    edge = crossing(39)[:, None] | crossing(52)[None, :]
    assert mixed.any() and not np.any(mixed & ~edge)


def test_rotation_by_90_degrees_moves_a_marker_where_the_rotation_says():
    size = 49  # odd: the centre (24, 24) is a pixel
    rgb = np.zeros((size, size, 3), np.uint8)
    depth = np.full((size, size), 50, np.uint8)
    rgb[24, 30] = 255       # six pixels right of the centre
    depth[24, 30] = 200
    out_rgb, out_depth = apply_variant(rgb, depth, Variant("rotate", angle_deg=90.0), crop=(size, size))
    # OpenCV's positive angle turns the picture counter-clockwise as displayed: right of centre -> above it
    assert out_depth[18, 24] == 200 and np.all(out_rgb[18, 24] == 255)
    assert np.count_nonzero(out_depth == 200) == 1 and out_depth[24, 24] == 50


def test_rotation_keeps_depth_values_and_fills_corners_with_missing_depth():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth = rng.integers(1, 256, (48, 64), dtype=np.uint8)
    _, out_depth = apply_variant(rgb, depth, Variant("rotate", angle_deg=7.0), crop=(64, 48))
    assert set(np.unique(out_depth)) - {0} <= set(np.unique(depth))   # nearest: no new depths
    assert out_depth[0, 0] == 0 and out_depth[-1, -1] == 0           # corners come from outside
    # a pixel far from the corners: where the inverse rotation says it comes from
    angle = math.radians(7.0)
    cx, cy = 31.5, 23.5
    x, y = 40, 30
    sx = cx + math.cos(angle) * (x - cx) - math.sin(angle) * (y - cy)
    sy = cy + math.sin(angle) * (x - cx) + math.cos(angle) * (y - cy)
    assert out_depth[y, x] == depth[int(round(sy)), int(round(sx))]


def test_depth_division_in_both_encodings():
    png8 = np.array([[100, 0, 6, 255]], np.uint8)
    assert scale_depth(png8, 1.25).tolist() == [[80, 0, 6, 204]]      # 6 / 1.25 = 4.8 -> the floor 6
    assert scale_depth(png8, 0.8).tolist() == [[125, 0, 8, 255]]      # 255 / 0.8 stays clipped at 255
    millimetres = np.array([[2000, 0, 65535]], np.uint16)
    assert scale_depth(millimetres, 1.25).tolist() == [[1600, 0, 52428]]


def test_flip_mirrors_colour_and_depth_alike():
    rgb, depth, _ = checkerboard()
    variant = Variant("rescale", scale=1.1, x0=2, y0=1, hue=0.02)
    plain = apply_variant(rgb, depth, variant, crop=(40, 30))
    flipped = apply_variant(rgb, depth, Variant(**{**variant.__dict__, "flip": True}), crop=(40, 30))
    assert np.array_equal(flipped[0], plain[0][:, ::-1]) and np.array_equal(flipped[1], plain[1][:, ::-1])


def test_colour_jitter_by_hand_and_depth_untouched():
    rgb = np.array([[[255, 0, 0], [200, 200, 200]]], np.uint8)
    assert jitter_color(rgb[:, :1], Variant(hue=0.5)).tolist() == [[[0, 255, 255]]]       # red + 180 deg = cyan
    assert jitter_color(rgb[:, 1:], Variant(value=-0.2)).tolist() == [[[149, 149, 149]]]  # 200/255 - 0.2 = 0.584
    assert jitter_color(rgb[:, 1:], Variant(contrast=0.5)).tolist() == [[[164, 164, 164]]]  # (0.784-.5)*.5+.5
    assert jitter_color(rgb[:, 1:], Variant(saturation=0.3)).tolist() == [[[200, 140, 140]]]  # V(1 - S) = .549
    _, depth, _ = checkerboard()
    a = apply_variant(np.zeros((48, 64, 3), np.uint8), depth, Variant(hue=0.1, contrast=1.2), crop=(64, 48))
    assert np.array_equal(a[1], depth)


@pytest.mark.parametrize("recipe, std, scale, shift, contrast", [
    ("data1", 2.5, (0.875, 1.125), 0.05, (205, 305)),
    ("data2", 5.0, (0.75, 1.25), 0.1, (175, 335)),
])
def test_recipe_draws_follow_the_thesis(recipe, std, scale, shift, contrast):
    rng = np.random.default_rng(0)
    variants = [v for _ in range(800) for v in draw_variants(recipe, rng, (561, 427))]
    rotations = [v for v in variants if v.kind == "rotate"]
    rescales = [v for v in variants if v.kind == "rescale"]
    assert len(variants) == 4000 and abs(len(rotations) / 4000 - 1 / 3) < 0.03
    angles = np.array([v.angle_deg for v in rotations])
    assert abs(angles.mean()) < 0.4 and abs(angles.std() - std) < 0.1 * std
    assert all(v.x0 == (561 - 420) // 2 and v.y0 == (427 - 320) // 2 for v in rotations)   # plain centre crop
    scales = np.array([v.scale for v in rescales])
    assert scale[0] <= scales.min() < scale[0] + 0.01 and scale[1] - 0.01 < scales.max() <= scale[1]
    for v in rescales:  # offsets inside the border: 0 .. border - 1
        border_x, border_y = round(561 * v.scale) - 420, round(427 * v.scale) - 320
        assert 0 <= v.x0 <= max(border_x - 1, 0) and 0 <= v.y0 <= max(border_y - 1, 0)
    shifts = np.array([(v.hue, v.saturation, v.value) for v in variants])
    assert shifts.min() >= -shift and shifts.max() <= shift and shifts.max() > 0.95 * shift
    factors = np.array([v.contrast for v in variants]) * 255
    assert contrast[0] <= factors.min() < contrast[0] + 1 and contrast[1] - 1 < factors.max() <= contrast[1]


def test_data0_is_the_plain_centre_crop_and_variants_come_with_flips():
    assert frame_outputs("data0", 0, "f", (561, 427)) == [("f", Variant("crop", x0=70, y0=53))]
    names = [name for name, _ in frame_outputs("data2", 0, "f", (561, 427))]
    assert names == [f"f_v{k}{flip}" for k in range(5) for flip in ("", "f")]


def test_frames_smaller_than_the_crop_are_refused():
    with pytest.raises(DatasetError, match="smaller than the 420x320 crop"):
        for seed in range(20):  # some variant is a shrinking rescale
            frame_outputs("data2", seed, "f", (420, 320))


def write_frames(folder, count=2, size=(80, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}_colors.png")
        cv2.imwrite(str(folder / f"{i}_depth.png"), rng.integers(1000, 9000, (size[1], size[0])).astype(np.uint16))


def test_folder_augmentation_is_deterministic_and_rerunnable(tmp_path):
    write_frames(tmp_path / "in")
    args = dict(recipe="data2", crop=(56, 42), workers=1, progress=False, log=lambda *a: None)
    assert augment_folder(tmp_path / "in", tmp_path / "a", seed=4, **args) == (20, 20)
    augment_folder(tmp_path / "in", tmp_path / "b", seed=4, **{**args, "workers": 2})
    augment_folder(tmp_path / "in", tmp_path / "c", seed=5, **args)
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if not p.name.startswith("."))
    assert len(names) == 41 and "augment_data2.csv" in names
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    assert (tmp_path / "a" / "augment_data2.csv").read_text() != (tmp_path / "c" / "augment_data2.csv").read_text()
    depth = cv2.imread(str(tmp_path / "a" / "0_v0_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (42, 56)    # millimetres stay millimetres
    rows = list(csv.DictReader(open(tmp_path / "a" / "augment_data2.csv")))
    assert [r["output"] for r in rows[:2]] == ["0_v0", "0_v0f"] and rows[1]["flip"] == "1"
    marker = tmp_path / "a" / "1_v3f_colors.png"
    marker.write_bytes(b"kept")
    assert augment_folder(tmp_path / "in", tmp_path / "a", seed=4, **args) == (20, 0)
    assert marker.read_bytes() == b"kept"


def test_command_line_reports_small_frames(tmp_path, capsys):
    write_frames(tmp_path / "in", count=1, size=(420, 320))
    code = augment_main([str(tmp_path / "in"), str(tmp_path / "out"), "--recipe", "data2", "--workers", "1",
                         "--quiet", "--seed", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "smaller than the 420x320 crop" in err and len(err.strip().splitlines()) == 1
