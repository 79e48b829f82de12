"""The thesis's three training-set recipes (docs/specification.md section 5): Data0, Data1 and Data2.

Every input frame (a `<stem>_colors.png` / `<stem>_depth.png` pair, normally the raw 561x427 projections
or convert_nyu.py --full output, anything at least as large as the crop) gives:
- data0: the plain centre crop (420x320 by default), written as `<stem>_colors.png` / `<stem>_depth.png`;
- data1, data2: 5 random variants `<stem>_v<k>` (k = 0..4) plus their horizontal flips `<stem>_v<k>f`.

A variant is, with probability 1/3, a rotation about the image centre (angle normal with std 2.5 / 5
degrees, same size, corners filled black and depth 0 = missing) followed by the plain centre crop; else a
rescale by s ~ uniform(0.875, 1.125) / (0.75, 1.25), antialiased, depth values divided by s (a zoom by s
is the view from s times closer), followed by a crop at a random offset inside the border (uniform integer
0 .. border - 1 on each axis, border = scaled size - crop size; 0 when there is no border). Then the colour
alone gets an HSV jitter (hue, saturation and value each shifted by uniform(-a, a), a = 0.05 / 0.1, hue
wrapping, saturation and value clipped to [0, 1]) and a contrast change x -> (x - 0.5) * c + 0.5 around
mid-grey with c ~ uniform(205, 305) / 255 or uniform(175, 335) / 255, then rounds to 8 bits.

Draws, per variant and in this order, from a generator seeded by (seed, CRC-32 of the stem), so a frame's
variants do not depend on the other frames, the worker count or reruns: u ~ U[0, 1) (rotation if u < 1/3);
the angle, or the scale then the x and y offsets; the hue, saturation and value shifts; the contrast.
augment_<recipe>.csv lists every output with its parameters.

Depth resampling never invents depths across an edge: "nearest" (the default) copies source depths
(OpenCV's centre-aligned nearest neighbour, so depth stays aligned with the colour); "area" averages the
source pixels under each output pixel when shrinking, which mixes across an edge exactly as much as the
colour's antialiasing (and the original's antialiased resize of the depth) does, and nothing more; it also
averages missing (0) pixels in. Rotations always use nearest. Depth keeps its file's encoding: png8 pixels
p become round(p / s) clipped to [floor, 255] (the thesis's 0.2556 m floor, pixel 6), png16mm millimetres
round(mm / s); missing (0) stays 0.
"""
import csv
import dataclasses
import math
import os
import zlib

import numpy as np

from ..atomic import atomic_write, make_folder
from ..errors import DatasetError, OutputError
from ..outputs import earlier_settings, file_id, record_settings
from . import pairs as pairs_io
from .constants import (AUGMENT_ROTATION_PROBABILITY, AUGMENT_VARIANTS, CROP_HEIGHT, CROP_WIDTH, DEPTH_PNG8_MAX,
                        NYU_DEPTH_FLOOR_TENTH_M, RECIPES)
from .jobs import run_jobs

DEPTH_RESAMPLING = ("nearest", "area")
PNG8_FLOOR = int(NYU_DEPTH_FLOOR_TENTH_M * DEPTH_PNG8_MAX)  # 6: the png8 encoding of the 0.2556 m floor


@dataclasses.dataclass
class Variant:
    """One augmented version of a frame. kind: "crop", "rotate" or "rescale"; x0, y0: crop offset in the
    rotated or rescaled frame; hue, saturation, value: HSV shifts; contrast: factor around mid-grey."""
    kind: str = "crop"
    angle_deg: float = 0.0
    scale: float = 1.0
    x0: int = 0
    y0: int = 0
    hue: float = 0.0
    saturation: float = 0.0
    value: float = 0.0
    contrast: float = 1.0
    flip: bool = False


def scaled_size(width, height, scale):
    """The frame size after a rescale by `scale` (rounded to whole pixels)."""
    return int(round(width * scale)), int(round(height * scale))


def draw_variants(recipe, rng, frame_size, crop=(CROP_WIDTH, CROP_HEIGHT)):
    """The recipe's variants (without flips) for a frame of frame_size = (width, height), drawn from rng
    in the order the module docstring gives."""
    width, height = frame_size
    if width < crop[0] or height < crop[1]:
        raise DatasetError(f"the {width}x{height} frame is smaller than the {crop[0]}x{crop[1]} crop: augment larger "
                           f"frames (the raw 561x427 projections or convert_nyu.py --full output) or pass a "
                           f"smaller --crop")
    center = Variant("crop", x0=(width - crop[0]) // 2, y0=(height - crop[1]) // 2)
    settings = RECIPES[recipe]
    if settings is None:
        return [center]
    variants = []
    for _ in range(AUGMENT_VARIANTS):
        if rng.random() < AUGMENT_ROTATION_PROBABILITY:
            angle = float(rng.normal(0.0, settings["rotation_std_deg"]))
            variant = dataclasses.replace(center, kind="rotate", angle_deg=angle)
        else:
            scale = float(rng.uniform(*settings["scale"]))
            new_width, new_height = scaled_size(width, height, scale)
            border_x, border_y = new_width - crop[0], new_height - crop[1]
            if border_x < 0 or border_y < 0:
                raise DatasetError(f"a {width}x{height} frame rescaled by {scale:.3f} is {new_width}x{new_height}, "
                                   f"smaller than the {crop[0]}x{crop[1]} crop: augment larger frames (the raw "
                                   f"561x427 projections or convert_nyu.py --full output) or pass a smaller --crop")
            x0 = int(rng.integers(border_x)) if border_x > 0 else 0
            y0 = int(rng.integers(border_y)) if border_y > 0 else 0
            variant = Variant("rescale", scale=scale, x0=x0, y0=y0)
        shift = settings["hsv_shift"]
        variant.hue, variant.saturation, variant.value = (float(v) for v in rng.uniform(-shift, shift, 3))
        variant.contrast = float(rng.uniform(*settings["contrast"]) / 255.0)
        variants.append(variant)
    return variants


def scale_depth(depth, scale):
    """Depth pixels divided by `scale` in their own encoding (see the module docstring)."""
    if scale == 1.0:
        return depth.copy()
    divided = np.rint(depth.astype(np.float64) / scale)
    if depth.dtype == np.uint8:
        divided = np.clip(divided, PNG8_FLOOR, DEPTH_PNG8_MAX)
    else:
        divided = np.clip(divided, 1, 65535)
    return np.where(depth > 0, divided, 0).astype(depth.dtype)


def jitter_color(rgb, variant):
    """HSV shifts and the contrast change of a variant on uint8 RGB (returns uint8 RGB)."""
    import cv2
    if not (variant.hue or variant.saturation or variant.value) and variant.contrast == 1.0:
        return rgb.copy()
    image = rgb.astype(np.float32) / np.float32(255)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)  # H in [0, 360), S and V in [0, 1]
    hsv[:, :, 0] = np.mod(hsv[:, :, 0] + np.float32(variant.hue * 360.0), np.float32(360))
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] + np.float32(variant.saturation), 0, 1)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + np.float32(variant.value), 0, 1)
    image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    image = (image - np.float32(0.5)) * np.float32(variant.contrast) + np.float32(0.5)
    return np.clip(np.rint(image * np.float32(255)), 0, 255).astype(np.uint8)


def apply_variant(rgb, depth, variant, crop=(CROP_WIDTH, CROP_HEIGHT), depth_resampling="nearest"):
    """(rgb, depth) of one variant of a frame: the same geometric transform on both, then the colour
    jitter, then the flip. rgb: (H, W, 3) uint8; depth: (H, W) uint8 (png8) or uint16 (mm)."""
    import cv2
    if depth_resampling not in DEPTH_RESAMPLING:
        raise ValueError(f"depth resampling must be one of {', '.join(DEPTH_RESAMPLING)}")
    height, width = depth.shape
    if rgb.shape[:2] != depth.shape:
        raise DatasetError(f"colour {rgb.shape[1]}x{rgb.shape[0]} and depth {width}x{height} differ in size")
    if variant.kind == "rotate":
        center = ((width - 1) / 2.0, (height - 1) / 2.0)
        matrix = cv2.getRotationMatrix2D(center, variant.angle_deg, 1.0)
        rgb = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
        depth = cv2.warpAffine(depth, matrix, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)
    elif variant.kind == "rescale":
        size = scaled_size(width, height, variant.scale)
        shrink = variant.scale < 1.0
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        depth_flag = cv2.INTER_AREA if shrink and depth_resampling == "area" else cv2.INTER_NEAREST_EXACT
        depth = scale_depth(cv2.resize(depth, size, interpolation=depth_flag), variant.scale)
    elif variant.kind != "crop":
        raise ValueError(f"unknown variant kind {variant.kind!r}")
    x0, y0 = variant.x0, variant.y0
    if x0 < 0 or y0 < 0 or x0 + crop[0] > depth.shape[1] or y0 + crop[1] > depth.shape[0]:
        raise DatasetError(f"the {crop[0]}x{crop[1]} crop at ({x0}, {y0}) leaves the {depth.shape[1]}x{depth.shape[0]} "
                           f"frame: frames must be at least as large as the crop")
    rgb = rgb[y0:y0 + crop[1], x0:x0 + crop[0]]
    depth = depth[y0:y0 + crop[1], x0:x0 + crop[0]]
    rgb = jitter_color(rgb, variant)
    if variant.flip:
        rgb, depth = rgb[:, ::-1], depth[:, ::-1]
    return np.ascontiguousarray(rgb), np.ascontiguousarray(depth)


def frame_rng(seed, stem):
    """The generator of one frame's draws: seeded by (seed, CRC-32 of the stem)."""
    return np.random.default_rng([int(seed), zlib.crc32(stem.encode("utf-8"))])


def frame_outputs(recipe, seed, stem, frame_size, crop=(CROP_WIDTH, CROP_HEIGHT)):
    """[(output stem, Variant)] of one frame, flips included."""
    variants = draw_variants(recipe, frame_rng(seed, stem), frame_size, crop)
    if RECIPES[recipe] is None:
        return [(stem, variants[0])]
    outputs = []
    for k, variant in enumerate(variants):
        outputs.append((f"{stem}_v{k}", variant))
        outputs.append((f"{stem}_v{k}f", dataclasses.replace(variant, flip=True)))
    return outputs


def _frame_size(path):
    from PIL import Image
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the image ({error})") from None


def plan_frame(pair, recipe, seed, crop):
    """frame_outputs of one pair, read from the image headers alone; a frame the recipe cannot use (smaller
    than the crop, colour and depth of different sizes) is a DatasetError naming its file."""
    size = _frame_size(pair.color)
    depth_size = _frame_size(pair.depth)
    if depth_size != size:
        raise DatasetError(f"{pair.depth}: the depth is {depth_size[0]}x{depth_size[1]}, its colour image "
                           f"{size[0]}x{size[1]}: a frame's two images must have the same size")
    try:
        return frame_outputs(recipe, seed, pair.stem, size, crop)
    except DatasetError as error:
        raise DatasetError(f"{pair.color}: {error}") from None


class _AugmentJob:
    def __init__(self, out, recipe, seed, crop, depth_resampling, overwrite):
        self.out, self.recipe, self.seed, self.crop = out, recipe, seed, crop
        self.depth_resampling, self.overwrite = depth_resampling, overwrite

    def __call__(self, job):
        pair, outputs = job
        todo = [(name, v) for name, v in outputs if self.overwrite or not pairs_io.pair_done(self.out, name)]
        if todo:
            rgb = pairs_io.read_color_bgr(pair.color)[:, :, ::-1]
            depth = pairs_io.read_depth_raw(pair.depth)
            for name, variant in todo:
                color_out, depth_out = apply_variant(rgb, depth, variant, self.crop, self.depth_resampling)
                pairs_io.write_pair(self.out, name, color_out, depth_pixels=depth_out)
        return [(name, pair.stem, variant) for name, variant in outputs], len(todo)


def augment_folder(in_dir, out_dir, recipe, seed=0, crop=(CROP_WIDTH, CROP_HEIGHT), depth_resampling="nearest",
                   workers=None, overwrite=False, progress=True, log=print):
    """Augments every pair of in_dir into out_dir (see the module docstring); returns (outputs, written)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, not {recipe!r}")
    pairs = pairs_io.find_pairs(in_dir)
    out_dir = os.fspath(out_dir)
    if file_id(out_dir) == file_id(in_dir):
        raise OutputError(f"{out_dir}: is the input folder, whose frames the outputs would replace (data0 keeps "
                          f"their names) or join as inputs of the next run; choose another output folder")
    # every frame is checked before anything is written
    jobs = [(pair, plan_frame(pair, recipe, seed, tuple(crop))) for pair in pairs]
    settings = {"input": os.path.abspath(os.fspath(in_dir)), "recipe": recipe, "seed": int(seed),
                "crop": [int(c) for c in crop], "depth_resampling": depth_resampling}
    earlier = earlier_settings(out_dir, "augment", settings, overwrite)
    make_folder(out_dir)
    _remove_outputs(out_dir, earlier)
    record_settings(out_dir, "augment", settings)
    job = _AugmentJob(out_dir, recipe, seed, tuple(crop), depth_resampling, overwrite)
    rows, written = [], 0
    for frame_rows, count in run_jobs(job, jobs, workers, progress, desc=f"augment {recipe}", unit="frame"):
        rows.extend(frame_rows)
        written += count
    fields = [f.name for f in dataclasses.fields(Variant)]
    with atomic_write(os.path.join(out_dir, f"augment_{recipe}.csv"), "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["output", "source", "recipe", "seed"] + fields)
        for name, source, variant in rows:
            values = dataclasses.asdict(variant)
            writer.writerow([name, source, recipe, seed] + [_cell(values[f]) for f in fields])
    log(f"{recipe}: {len(pairs)} frames -> {len(rows)} pairs in {out_dir} ({written} written, "
        f"{len(rows) - written} already there)")
    return len(rows), written


def _remove_outputs(out_dir, earlier):
    """Removes the pairs and the table an earlier run with other settings (`earlier`, its record) wrote in
    out_dir: the pairs its augment_<recipe>.csv lists."""
    if not earlier or earlier.get("tool") != "augment":
        return
    table = os.path.join(out_dir, f"augment_{earlier['recipe']}.csv")
    if not os.path.isfile(table):
        return
    with open(table, newline="", encoding="utf-8") as handle:
        names = [row["output"] for row in csv.DictReader(handle) if row.get("output")]
    for name in names:
        pairs_io.remove_pair(out_dir, os.path.basename(name))
    os.unlink(table)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(int(value)) if isinstance(value, bool) else str(value)
