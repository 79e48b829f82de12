"""Finding the images a command runs on: every image file of a folder in natural order, one input per stem
(inputs whose outputs would collide are skipped with a warning), and the "names ... and N more" listing of
warnings."""
import os
import re
from dataclasses import dataclass


from . import images
from .errors import DatasetError
from .errors import warn


_MAX_LISTED = 20


def listing(names, separator=", ", most=_MAX_LISTED):
    """The first `most` names joined, then "and N more" for the rest: the one form of long lists in messages."""
    names = list(names)
    shown = separator.join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def natural_key(text):
    """'snap_iter_2000' before 'snap_iter_10000'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@dataclass
class Pair:
    """One input image and (for test_depth / test_grad) its GT file."""
    stem: str                 # the input's file name without its extension: names the outputs
    input_path: str
    gt_path: str = None


def require_dir(path, what):
    if not os.path.isdir(path):
        raise DatasetError(f"{path}: the {what} is not a folder")


def unique_stems(paths):
    """Keeps the first of several inputs with the same stem (they would write the same outputs)."""
    chosen, seen, clashes = [], {}, []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in seen:
            clashes.append(f"{os.path.basename(path)} (same name as {os.path.basename(seen[stem])})")
            continue
        seen[stem] = path
        chosen.append((stem, path))
    if clashes:
        warn(f"skipping inputs whose outputs would overwrite another's: {listing(clashes)}")
    return chosen


def find_images(input_dir, exclude=()):
    """get_depth's inputs: every image file in input_dir (other files are listed and ignored, the names in
    `exclude` left out silently)."""
    require_dir(input_dir, "input folder")
    names = sorted((n for n in os.listdir(input_dir)
                    if n not in exclude and os.path.isfile(os.path.join(input_dir, n))), key=natural_key)
    ignored = [n for n in names if not images.is_image_name(n)]
    if ignored:
        warn(f"ignoring files in {input_dir} that are not images: {listing(ignored)}")
    chosen = unique_stems([os.path.join(input_dir, n) for n in names if images.is_image_name(n)])
    if not chosen:
        raise DatasetError(f"{input_dir}: no image files (PNG, JPEG, TIFF, ...) to run the networks on")
    return [Pair(stem, path) for stem, path in chosen]


def text_lines(path):
    """The lines of a list file: UTF-8 (with or without a byte-order mark) or UTF-16 with its mark; bytes that
    are not UTF-8 stay as the file-name bytes they are (surrogates, as Python holds such names)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        text = data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8", "surrogateescape")
    return text.splitlines()
