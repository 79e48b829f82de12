"""What an evaluation runs on: the input/GT pairs of a folder, the snapshots of a folder, and the names of
every file a snapshot folder gets."""
import fnmatch
import os


from .. import images
from ..errors import DatasetError
from ..outputs import plan_names
from ..errors import warn
from .results import CONTACT_SHEET, PER_IMAGE_CSV
from ..inference import Snapshot
from ..inputs import Pair, listing, natural_key, require_dir, unique_stems
from ..outputs import output_name


TOOLS = ("test_depth", "get_depth", "test_grad")


GT_FORMATS = ("png8", "png16mm", "npy")


def _image_names(tool, options, stem, attempt):
    """{kind: file name} of one input's outputs in a snapshot folder, besides its copy `<stem>.png`."""
    if tool == "test_grad":
        return {kind: output_name(stem, kind, attempt) + ".png" for kind in ("gt1", "gt2", "grad1", "grad2")}
    depth = output_name(stem, "depth", attempt)
    if tool == "test_depth":
        return {"gt": output_name(stem, "gt", attempt) + ".png", "depth": depth + ".png"}
    names = {"depth": depth + ".png"}
    if options.png16:
        names["png16"] = depth + "_mm.png"
    if options.npy:
        names["npy"] = depth + ".npy"
    return names


def plan_image_names(tool, options, pairs):
    """({stem: {kind: file name}} of every file a snapshot folder gets, none the same; the stems renamed): the
    copy of each input keeps the input's name (`input`); an output whose usual name is taken (by a copy, as
    `a_depth.png` is when get_depth reads both a_colors.png and a_depth.png, or by another input's output) gets
    the input's whole stem (`a_colors_depth.png`), which warn_renamed tells."""
    copies = {pair.stem: pair.stem + ".png" for pair in pairs}
    fixed = (PER_IMAGE_CSV, CONTACT_SHEET) if tool != "get_depth" else ()
    plan, renamed = plan_names([pair.stem for pair in pairs], lambda stem, attempt:
                               _image_names(tool, options, stem, attempt), set(copies.values()) | set(fixed))
    for stem, names in plan.items():
        names["input"] = copies[stem]
    return plan, renamed


def warn_renamed(plan, renamed):
    """The warning for outputs plan_image_names named after the whole input name."""
    if renamed:
        shown = (f"{stem} -> {plan[stem].get('depth') or next(iter(plan[stem].values()))}" for stem in renamed)
        warn(f"outputs named after the whole input name because the usual name is taken by another input's "
             f"file: {listing(shown)}")


def find_pairs(input_dir, gt_dir, gt_format="png8"):
    """The original's pairing: inputs are files named `*colors*` in input_dir (image files only); the GT of
    `a_colors.png` is `a_depth.png` in gt_dir (with --gt-format npy, `a_depth.npy`; if the exact name is
    missing, the same stem with .png is tried). Unpaired files are listed in a warning and skipped; no pair
    at all is a DatasetError."""
    require_dir(input_dir, "input folder")
    require_dir(gt_dir, "GT folder")
    names = sorted(os.listdir(input_dir), key=natural_key)
    candidates = [n for n in names if "colors" in n and os.path.isfile(os.path.join(input_dir, n))]
    ignored = [n for n in candidates if not images.is_image_name(n)]
    if ignored:
        warn(f"ignoring files in {input_dir} that are not images: {listing(ignored)}")
    inputs = [os.path.join(input_dir, n) for n in candidates if images.is_image_name(n)]
    gt_names = set(os.listdir(gt_dir))
    pairs, unpaired, used = [], [], set()
    for stem, path in unique_stems(inputs):
        name = os.path.basename(path).replace("colors", "depth")
        options = [os.path.splitext(name)[0] + ".npy"] if gt_format == "npy" else \
            [name, os.path.splitext(name)[0] + ".png"]
        found = next((o for o in options if o in gt_names and os.path.isfile(os.path.join(gt_dir, o))), None)
        if found is None:
            unpaired.append(f"{os.path.basename(path)} (no {options[0]})")
            continue
        used.add(found)
        pairs.append(Pair(stem, path, os.path.join(gt_dir, found)))
    if unpaired:
        warn(f"skipping inputs without GT in {gt_dir}: {listing(unpaired)}")
    extension = (".npy",) if gt_format == "npy" else images.IMAGE_EXTENSIONS
    orphans = sorted((n for n in gt_names if "depth" in n and n.lower().endswith(extension) and n not in used
                      and os.path.isfile(os.path.join(gt_dir, n))), key=natural_key)
    if orphans:
        warn(f"GT files without an input `*colors*` image in {input_dir}: {listing(orphans)}")
    if not pairs:
        raise DatasetError(f"{input_dir}: no input/GT pairs (inputs are image files named *colors*, the GT of "
                           f"a_colors.png is a_depth.png in {gt_dir}); check the folders and --gt-format")
    return pairs


def find_snapshots(snaps_dir, pattern=None):
    """Every `*.caffemodel` in snaps_dir (others ignored), in natural order, filtered by a glob on the file
    name or on the snapshot name. A snapshot folder without any is a DatasetError."""
    require_dir(snaps_dir, "snapshot folder")
    names = sorted((n for n in os.listdir(snaps_dir) if n.endswith(".caffemodel")
                    and os.path.isfile(os.path.join(snaps_dir, n))), key=natural_key)
    if not names:
        raise DatasetError(f"{snaps_dir}: no .caffemodel files (each needs its deploy .prototxt beside it)")
    snapshots = []
    for name in names:
        stem = name[:-len(".caffemodel")]
        if pattern and not (fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(stem, pattern)):
            continue
        snapshots.append(Snapshot(stem, os.path.join(snaps_dir, name), os.path.join(snaps_dir, stem + ".prototxt")))
    if not snapshots:
        raise DatasetError(f"{snaps_dir}: no snapshot matches --snapshots {pattern!r} (there are {len(names)}: "
                           f"{listing(names)})")
    return snapshots
