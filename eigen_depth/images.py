"""Image reading, resizing and writing exactly as the thesis's evaluator did (docs/specification.md section 4).

The original read images with pycaffe's `caffe.io.load_image` (scikit-image, float in [0, 1], stored as
float32; gray repeated to 3 channels, alpha dropped), resized them with
`skimage.transform.resize(img, shape, order=1, mode='constant')` (no anti-aliasing), zoomed the network's
output with `scipy.ndimage.zoom(order=3)` and wrote PNGs with `cv2.imwrite` as `uint8(x * 255)`
(truncation), compression 8.

The fast paths here give the same numbers as those calls, not approximations of them: both resizes are
separable linear maps, so each is built once per size *from the library call itself* (the call applied to
unit vectors) and then applied to whole batches; the result is computed in float64 and rounded to float32
as the libraries do. tests/test_evaluate_images.py checks them against the library calls bit for bit.
"""
import functools
import os
import warnings

import numpy as np

from .atomic import atomic_write
from .constants import (GT_HEIGHT, GT_WIDTH, PNG_COMPRESSION, PNG_STRATEGIES, RESIZE_ORDER, VIS_DEPTH_MAX,
                        VIS_DEPTH_MIN, VIS_LOG_SCALE, ZOOM_ORDER)
from .errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm", ".webp", ".gif")


def is_image_name(name):
    """True for file names with an image extension the readers understand."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


# -- Reading ------------------------------------------------------------------------------------------------
def read_raw(path):
    """The file's pixels (uint8/uint16/bool/float, HxW or HxWxC, RGB order); DatasetError naming the file
    when it cannot be decoded. PNGs are decoded by OpenCV (lossless, so the same pixels as scikit-image's
    reader, but 16-bit colour stays 16-bit where Pillow would drop it to 8 bits); other formats by
    scikit-image, as the original."""
    path = os.fspath(path)
    try:
        if path.lower().endswith(".png"):
            import cv2
            image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError("not a decodable PNG")
            if image.ndim == 3 and image.shape[2] in (3, 4):
                image = image[:, :, [2, 1, 0, 3][:image.shape[2]]]
        else:
            import skimage.io
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = skimage.io.imread(path)
    except Exception as error:  # the readers raise many types (OSError, ValueError, SyntaxError, ...)
        raise DatasetError(f"{path}: cannot read the image ({_read_problem(path, error)}); replace or remove the "
                           f"file") from None
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0 or (image.ndim == 3 and image.shape[2] > 4):
        raise DatasetError(f"{path}: not a 2-D image (array of shape {image.shape}); replace or remove the file")
    return image


def _read_problem(path, error):
    """Why an image reader failed, in words that fit this file (the libraries' own advice, such as installing
    another imageio plugin, does not)."""
    text = " ".join(str(error).split())
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return "the file is empty"
    if "CV_IO_MAX_IMAGE_PIXELS" in text:
        return "its header declares more pixels than OpenCV reads (2^30)"
    if "backend" in text or not text:
        return "not an image in a format OpenCV or scikit-image reads"
    return f"{type(error).__name__}: {text}"


def as_float(image):
    """scikit-image's img_as_float followed by pycaffe's cast to float32: uint8 / 255, uint16 / 65535."""
    import skimage.util
    return skimage.util.img_as_float(image).astype(np.float32)


def to_rgb(image_float):
    """pycaffe's load_image(color=True) channel rule: gray repeated to 3 channels, RGBA's alpha dropped.
    Gray+alpha (2 channels, which pycaffe could not handle) is treated as gray."""
    if image_float.ndim == 2:
        image_float = image_float[:, :, None]
    channels = image_float.shape[2]
    if channels == 1 or channels == 2:
        return np.repeat(image_float[:, :, :1], 3, axis=2)
    return image_float[:, :, :3]


def load_rgb(path):
    """The image at `path` as float32 RGB in [0, 1], HxWx3 (pycaffe's caffe.io.load_image)."""
    return to_rgb(as_float(read_raw(path)))


# -- Resizing (skimage.transform.resize, order 1, mode 'constant', no anti-aliasing) -----------------------
@functools.lru_cache(maxsize=64)
def _resize_taps(n_in, n_out):
    """The 1-D resize of skimage as (indices, weights), each (n_out, K): out[i] = sum_k w[i,k] in[idx[i,k]].
    Built by resizing the identity matrix along one axis (with the other axis unchanged, skimage's
    coordinates are exact integers there, so that axis is copied as is)."""
    import skimage.transform
    matrix = skimage.transform.resize(np.eye(n_in), (n_out, n_in), order=RESIZE_ORDER, mode="constant",
                                      anti_aliasing=False, clip=False)
    taps = max(1, int((matrix != 0).sum(axis=1).max()))
    order = np.argsort(matrix == 0, axis=1, kind="stable")[:, :taps]  # nonzero columns first, ascending
    weights = np.take_along_axis(matrix, order, axis=1)
    return order, weights


def resize_bilinear(image, height, width):
    """skimage.transform.resize(image, (height, width[, c]), order=1, mode='constant', anti_aliasing=False)
    for float32 images HxW or HxWxC: float32 out, clipped to the input's range as skimage does. Images with
    NaN go through skimage itself (a linear map would spread the NaN)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return resize_bilinear_planes(image, height, width)[0]
    return np.ascontiguousarray(np.moveaxis(resize_bilinear_planes(image, height, width), 0, 2))


def _planes(image):
    """HxW or HxWxC -> contiguous (C, H, W), C = 1 for HxW (a view where the layout already is)."""
    return np.ascontiguousarray(np.moveaxis(image, 2, 0) if image.ndim == 3 else image[None])


def resize_bilinear_planes(image, height, width):
    """resize_bilinear of an HxW or HxWxC image, returned as planes (C, height, width) (C = 1 for HxW): the
    layout a net's input takes, without a copy to get there."""
    image = np.asarray(image)
    if image.shape[:2] == (height, width):
        return _planes(image).astype(np.float32)
    if not np.isfinite(image).all():
        import skimage.transform
        return _planes(skimage.transform.resize(image.astype(np.float32), (height, width) + image.shape[2:],
                                                order=RESIZE_ORDER, mode="constant", anti_aliasing=False))
    planes = _planes(image)
    source = planes.reshape(-1)
    terms = _resize_plan(planes.shape[0], image.shape[0], image.shape[1], height, width)
    out = np.empty((planes.shape[0], height, width), np.float64)
    term = np.empty_like(out)
    # scipy.ndimage's order of operations, in float64: the sum over taps (row-major) of (pixel * w_row) * w_col
    for k, (index, row_weight, col_weight) in enumerate(terms):
        target = term if k else out
        np.multiply(np.take(source, index), row_weight, out=target)
        target *= col_weight
        if k:
            out += term
    low, high = float(image.min()), float(image.max())
    if not low <= 0.0 <= high and out.min() <= 0.0 <= out.max():  # skimage keeps cval=0 in the range
        low, high = min(low, 0.0), max(high, 0.0)
    np.clip(out, low, high, out=out)
    return out.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _resize_plan(channels, h, w, height, width):
    """The taps of a (channels, h, w) -> (channels, height, width) resize as [(flat source index, row weight,
    column weight)], one entry per (row tap, column tap) in row-major order, shaped to broadcast over the
    output planes."""
    rows, row_weights = _resize_taps(h, height)
    cols, col_weights = _resize_taps(w, width)
    plane = (np.arange(channels) * (h * w))[:, None, None]
    return [(plane + (rows[:, a] * w)[None, :, None] + cols[:, b][None, None, :],
             row_weights[:, a][None, :, None], col_weights[:, b][None, None, :])
            for a in range(rows.shape[1]) for b in range(cols.shape[1])]


# -- Cubic zoom (scipy.ndimage.zoom, order 3, default mode) ------------------------------------------------
@functools.lru_cache(maxsize=64)
def _zoom_matrix(n_in, n_out):
    """The 1-D scipy.ndimage.zoom(order=3) from n_in to n_out samples as an (n_out, n_in) float64 matrix,
    column k = the zoom of the k-th unit vector (the zoom is linear and, per axis, separable)."""
    import scipy.ndimage
    factor = float(n_out) / float(n_in)
    columns = [scipy.ndimage.zoom(unit, factor, order=ZOOM_ORDER) for unit in np.eye(n_in)]
    matrix = np.stack(columns, axis=1)
    if matrix.shape[0] != n_out:
        raise ValueError(f"zoom {n_in} -> {n_out} gave {matrix.shape[0]} samples")
    return matrix


def zoom_cubic(batch, height=GT_HEIGHT, width=GT_WIDTH):
    """scipy.ndimage.zoom(x, (..., height / h, width / w), order=3) over the last two axes of a float32
    batch (..., h, w), as the original applied it per image: float32 out."""
    batch = np.asarray(batch)
    h, w = batch.shape[-2:]
    rows, cols = _zoom_matrix(h, height), _zoom_matrix(w, width)
    flat = batch.reshape((-1, h, w)).astype(np.float64)
    out = np.matmul(rows, np.matmul(flat, cols.T))
    return out.astype(np.float32).reshape(batch.shape[:-2] + (height, width))


# -- Writing --------------------------------------------------------------------------------------------
def depth_to_unit(depth_tenth_m):
    """V(d) of docs/specification.md section 4 on depth in meters / 10, in float32 exactly as the original:
    clip(2 * 0.179581 * ln(clip(d, 0.001, 1000)) + 1, 0, 1)."""
    depth = np.clip(np.asarray(depth_tenth_m, dtype=np.float32), VIS_DEPTH_MIN, VIS_DEPTH_MAX)
    return np.clip(VIS_LOG_SCALE * np.log(depth) + 1, 0, 1)


def to_uint8(unit):
    """uint8(x * 255): the original's truncating conversion of values in [0, 1]."""
    return np.array(np.asarray(unit) * 255, dtype=np.uint8)


def encode_png(pixels, compression=PNG_COMPRESSION, strategy="default"):
    """PNG bytes of uint8/uint16 pixels, HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA), written by OpenCV: zlib
    level `compression` with zlib strategy `strategy` (one of PNG_STRATEGIES; "default" is the original's
    cv2.imwrite; the evaluator writes with PNG_STRATEGY). Every level and strategy stores the same pixels.
    The other strategies also filter every row with Paeth's predictor (where OpenCV lets one choose, 4.11 on),
    instead of libpng's trial of all five filters on each row: files within a few per cent of the size, their
    encoding 15-30 % faster."""
    import cv2
    if strategy not in PNG_STRATEGIES:
        raise ValueError(f"PNG strategy must be one of {', '.join(PNG_STRATEGIES)}, not {strategy!r}")
    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim == 3:
        order = [2, 1, 0, 3][:pixels.shape[2]] if pixels.shape[2] in (3, 4) else list(range(pixels.shape[2]))
        pixels = np.ascontiguousarray(pixels[:, :, order])  # OpenCV stores BGR(A)
    # OpenCV's flag by name (IMWRITE_PNG_STRATEGY_RLE, ...), after the level: reading the level resets it
    flag = getattr(cv2, "IMWRITE_PNG_STRATEGY_" + ("HUFFMAN_ONLY" if strategy == "huffman" else strategy.upper()))
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression), cv2.IMWRITE_PNG_STRATEGY, flag]
    if strategy != "default" and hasattr(cv2, "IMWRITE_PNG_FILTER"):
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]
    ok, data = cv2.imencode(".png", pixels, params)
    if not ok:
        raise DatasetError(f"OpenCV could not encode a {pixels.shape} {pixels.dtype} image as PNG")
    return data.tobytes()


def write_bytes(path, data):
    """Writes `data` to `path` under a temporary name, then renames it."""
    with atomic_write(path) as handle:
        handle.write(data)


def write_png(path, pixels, compression=PNG_COMPRESSION, strategy="default"):
    write_bytes(path, encode_png(pixels, compression, strategy))


def depth_png16_mm(depth_m):
    """Depth in meters as uint16 millimetres (0 = no depth; clipped to 65.535 m)."""
    depth = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(depth * 1000.0), 0, 65535).astype(np.uint16)


def write_npy(path, array):
    with atomic_write(path) as handle:
        np.save(handle, np.asarray(array))


# -- Contact sheets ----------------------------------------------------------------------------------------
_SHEET_PANEL = (160, 210)      # each panel at half the GT's 320x420
_SHEET_GAP, _SHEET_LABEL, SHEET_BAR = 6, 18, 16


@functools.lru_cache(maxsize=8)
def _colour_table(name):
    from matplotlib import colormaps
    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def colormap(values, vmax, name):
    """float map -> RGB uint8 through a matplotlib colormap on [0, vmax]; NaN shown black."""
    table = _colour_table(name)
    values = np.asarray(values, dtype=np.float64)
    index = np.clip(np.nan_to_num(values / vmax, nan=0.0) * 255, 0, 255).astype(np.uint8)
    rgb = table[index]
    rgb[~np.isfinite(values)] = 0
    return rgb


def _panel(image):
    """An image or a float map at the panel's size (area averages: a NaN blackens its panel pixel)."""
    import cv2
    height, width = _SHEET_PANEL
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = image.astype(np.float32)
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)


def printable(text):
    """ASCII for OpenCV's Hershey fonts: other characters, and the bytes of a file name that is not valid
    UTF-8 (held as surrogates), as backslash escapes. (OpenCV crashes on surrogates and cannot draw the rest.)"""
    return text.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")


def _text(canvas, text, x, y, scale=0.42):
    import cv2
    cv2.putText(canvas, printable(text), (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)


def colour_bar(canvas, x, y, height, vmax, name, label):
    """A vertical bar from 0 (bottom) to vmax (top) with five tick labels."""
    ramp = colormap(np.linspace(vmax, 0, height)[:, None].repeat(SHEET_BAR, 1), vmax, name)
    canvas[y:y + height, x:x + SHEET_BAR] = ramp
    for k in range(5):
        value = vmax * k / 4
        _text(canvas, f"{value:.2f}", x + SHEET_BAR + 4, y + height - k * (height - 1) / 4 + 4, 0.38)
    _text(canvas, label, x - 4, y - 6, 0.4)


def contact_sheet(rows, title, vmax_m=None):
    """PNG bytes of a grid: one row per image with its input, GT, raw output, MVN-fit output (depth in
    meters, one shared colour scale and bar) and |raw - GT| (its own bar); panels at 210x160.

    rows: list of (name, rgb_uint8 HxWx3, gt_m, raw_m, fit_m), depth maps HxW in meters.
    """
    height, width = _SHEET_PANEL
    gap, label = _SHEET_GAP, _SHEET_LABEL
    depths = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for row in rows for a in row[2:5]])
    depths = depths[np.isfinite(depths)]
    vmax = vmax_m or (float(np.percentile(depths, 99.5)) if depths.size else 1.0) or 1.0
    errors = [np.abs(np.asarray(r[3], dtype=np.float64) - np.asarray(r[2], dtype=np.float64)) for r in rows]
    finite_errors = np.concatenate([e[np.isfinite(e)].ravel() for e in errors]) if errors else np.zeros(0)
    emax = float(np.percentile(finite_errors, 99.5)) if finite_errors.size else 1.0
    emax = emax if emax > 0 else 1.0
    headers = ["input", "GT", "raw output", "MVN-fit output", "|raw - GT|"]
    top = 2 * label + gap
    bars_width = 2 * (SHEET_BAR + 60)
    canvas_height = top + len(rows) * (height + label + gap) + gap
    canvas_width = gap + 5 * (width + gap) + bars_width
    canvas = np.full((canvas_height, canvas_width, 3), 255, dtype=np.uint8)
    _text(canvas, title, gap, label - 4, 0.5)
    for c, header in enumerate(headers):
        _text(canvas, header, gap + c * (width + gap), 2 * label - 2)
    for r, (name, rgb, gt, raw, fit) in enumerate(rows):
        y = top + r * (height + label + gap)
        _text(canvas, name, gap, y + label - 5, 0.4)
        # the maps are shrunk to the panel's size before they are coloured: a quarter of the pixels to colour
        panels = [_panel(np.asarray(rgb, dtype=np.uint8))] + \
                 [colormap(_panel(d), vmax, "viridis") for d in (gt, raw, fit)] + \
                 [colormap(_panel(errors[r]), emax, "magma")]
        for c, panel in enumerate(panels):
            x = gap + c * (width + gap)
            canvas[y + label:y + label + height, x:x + width] = panel
    bar_height = max(60, canvas_height - top - 3 * gap - label)
    bar_x = gap + 5 * (width + gap) + 8
    colour_bar(canvas, bar_x, top + label + gap, bar_height, vmax, "viridis", "depth m")
    colour_bar(canvas, bar_x + SHEET_BAR + 60, top + label + gap, bar_height, emax, "magma", "error m")
    return encode_png(canvas, compression=3, strategy="rle")
