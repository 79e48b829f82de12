"""Folders of image pairs (`<stem>_colors.png` + `<stem>_depth.png`) and the depth encodings on disk.

Depth files come in two encodings:
- png8 (the thesis's, docs/specification.md section 5): 8-bit gray, pixel = trunc(clip(depth_m / 10, 0.025559, 1) * 255),
  so pixel / 255 is depth in meters / 10 (255 = 10 m and beyond). The conversion truncates, as numpy's
  astype(uint8) does (the thesis's tools were Python). Missing depth (0 or NaN, e.g. Kinect holes in
  rawDepths or synthetic holes) stays 0 instead of being raised to the floor (the thesis's filled depth
  had none).
- png16mm: 16-bit gray, pixel = round(depth_m * 1000), millimetres; 0 = missing.

Readers here see pixels as OpenCV (and Caffe's convert_imageset) sees them: colour in BGR order. A 16-bit
depth file is converted to the png8 unit before it is resized, so LMDBs and the folder source always hold
the thesis's 8-bit depth.
"""
import os
import re

import numpy as np

from ..atomic import atomic_write
from ..errors import DatasetError
from .constants import DEPTH_MM_PER_M, DEPTH_PNG8_MAX, DEPTH_UNIT_M, NYU_DEPTH_FLOOR_TENTH_M

COLOR_SUFFIX, DEPTH_SUFFIX = "_colors", "_depth"
_PAIR_NAME = re.compile(r"^(?P<stem>.+)_(?P<kind>colors|depth)\.(?P<ext>png|jpg|jpeg|bmp|tif|tiff|ppm|pgm)$",
                        re.IGNORECASE)
DEPTH_FORMATS = ("png8", "png16mm")


# -- Depth encodings ------------------------------------------------------------------------------------
def encode_depth_png8(depth_m):
    """Depth in meters (any shape) -> uint8 in the thesis's unit (see the module docstring)."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    tenth = np.clip(np.where(valid, depth_m, 0.0) / DEPTH_UNIT_M, NYU_DEPTH_FLOOR_TENTH_M, 1.0)
    return np.where(valid, tenth * DEPTH_PNG8_MAX, 0.0).astype(np.uint8)


def encode_depth_png16mm(depth_m):
    """Depth in meters -> uint16 millimetres (rounded; missing and negative -> 0; over 65.535 m -> 65535)."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    return np.rint(np.clip(np.where(valid, depth_m, 0.0) * DEPTH_MM_PER_M, 0, 65535)).astype(np.uint16)


def encode_depth(depth_m, depth_format="png8"):
    """Depth in meters -> the pixels of a depth file of `depth_format` (png8 or png16mm)."""
    if depth_format == "png8":
        return encode_depth_png8(depth_m)
    if depth_format == "png16mm":
        return encode_depth_png16mm(depth_m)
    raise ValueError(f"depth format must be one of {', '.join(DEPTH_FORMATS)}, not {depth_format!r}")


def depth_pixels_to_m(pixels):
    """Depth file pixels -> meters: uint8 is the png8 unit (pixel / 255 * 10), uint16 millimetres."""
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(DEPTH_MM_PER_M)
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) * np.float32(DEPTH_UNIT_M / DEPTH_PNG8_MAX)
    raise DatasetError(f"depth pixels must be uint8 (png8) or uint16 (png16mm), not {pixels.dtype}")


def mm_to_png8(pixels_mm):
    """uint16 millimetre pixels -> png8 pixels (missing stays 0)."""
    return encode_depth_png8(np.asarray(pixels_mm, np.float64) / DEPTH_MM_PER_M)


# -- Pair folders ---------------------------------------------------------------------------------------
class Pair:
    """One colour/depth pair of a folder: its stem and the two file paths."""
    __slots__ = ("stem", "color", "depth")

    def __init__(self, stem, color, depth):
        self.stem, self.color, self.depth = stem, color, depth

    def __repr__(self):
        return f"Pair({self.stem!r})"


def find_pairs(folder, allow_unpaired=False):
    """The pairs of `folder`, sorted by stem. DatasetError when the folder holds no pairs, or (unless
    allow_unpaired) a colour file without its depth file or the reverse."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: no such folder of *_colors.png / *_depth.png pairs")
    found = {}
    for name in os.listdir(folder):
        match = _PAIR_NAME.match(name)
        if match:
            found.setdefault(match["stem"], {})[match["kind"].lower()] = os.path.join(folder, name)
    pairs, lonely = [], []
    for stem in sorted(found):
        files = found[stem]
        if "colors" in files and "depth" in files:
            pairs.append(Pair(stem, files["colors"], files["depth"]))
        else:
            lonely.append(next(iter(files.values())))
    if lonely and not allow_unpaired:
        shown = ", ".join(os.path.basename(p) for p in lonely[:3]) + (" ..." if len(lonely) > 3 else "")
        raise DatasetError(f"{folder}: {len(lonely)} file(s) without a partner ({shown}): each <stem>_colors.png "
                           f"needs <stem>_depth.png beside it; add or remove them")
    if not pairs:
        raise DatasetError(f"{folder}: holds no <stem>_colors.png / <stem>_depth.png pairs")
    return pairs


# -- Reading and writing --------------------------------------------------------------------------------
def _imread(path, flags):
    import cv2
    image = cv2.imread(os.fspath(path), flags)
    if image is None:
        if not os.path.exists(path):
            raise DatasetError(f"{path}: no such file")
        raise DatasetError(f"{path}: cannot decode the image; replace or remove the file")
    return image


def read_color_bgr(path):
    """A colour image as OpenCV reads it with IMREAD_COLOR (what convert_imageset stores): HxWx3 uint8 BGR."""
    import cv2
    return _imread(path, cv2.IMREAD_COLOR)


def read_gray(path):
    """An image as OpenCV reads it with IMREAD_GRAYSCALE (convert_imageset --gray): HxW uint8."""
    import cv2
    return _imread(path, cv2.IMREAD_GRAYSCALE)


def read_depth_raw(path):
    """A depth file's own pixels: HxW uint8 (png8) or uint16 (png16mm); colour files are read as gray."""
    import cv2
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    if image.ndim == 3 and image.dtype == np.uint8:
        image = read_gray(path)  # an 8-bit depth saved in colour: read as convert_imageset --gray reads it
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise DatasetError(f"{path}: a depth image must be 8-bit or 16-bit gray, not {image.dtype} "
                           f"with shape {image.shape}")
    return image


def read_depth_png8(path):
    """A depth file in the thesis's 8-bit unit (16-bit millimetre files are converted): HxW uint8."""
    raw = read_depth_raw(path)
    return mm_to_png8(raw) if raw.dtype == np.uint16 else raw


def resize(image, size, interpolation="linear"):
    """cv2.resize to size = (width, height); "linear" is Caffe's (convert_imageset's) choice."""
    import cv2
    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    flags = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST,
             "cubic": cv2.INTER_CUBIC}[interpolation]
    return cv2.resize(image, (int(width), int(height)), interpolation=flags)


def write_png(path, image, rgb=True, compression=3):
    """Writes HxW or HxWx3 (RGB when rgb=True, else BGR) uint8/uint16 pixels as a PNG, atomically."""
    import cv2
    image = np.asarray(image)
    if image.ndim == 3 and rgb:
        image = image[:, :, ::-1]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise DatasetError(f"{path}: OpenCV could not encode a {image.dtype} {image.shape} image as PNG")
    with atomic_write(path) as handle:
        handle.write(encoded.tobytes())


def pair_paths(folder, stem):
    """(`<stem>_colors.png`, `<stem>_depth.png`) in folder."""
    return tuple(os.path.join(folder, f"{stem}{suffix}.png") for suffix in (COLOR_SUFFIX, DEPTH_SUFFIX))


def write_pair(folder, stem, color_rgb, depth_m=None, depth_pixels=None, depth_format="png8"):
    """Writes `<stem>_colors.png` and `<stem>_depth.png` into folder (depth from meters or ready pixels)."""
    if depth_pixels is None:
        depth_pixels = encode_depth(depth_m, depth_format)
    color_path, depth_path = pair_paths(folder, stem)
    write_png(color_path, color_rgb, rgb=True)
    write_png(depth_path, depth_pixels)


def pair_done(folder, stem):
    """True when both files of the pair exist (files are written atomically, so they are complete)."""
    return all(os.path.exists(path) for path in pair_paths(folder, stem))


def remove_pair(folder, stem):
    """Removes the pair's files that exist."""
    for path in pair_paths(folder, stem):
        if os.path.isfile(path):
            os.unlink(path)
