"""The snapshot evaluator behind tools/test_depth.py, get_depth.py and test_grad.py (docs/specification.md section 4).

    test_depth INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log]    metrics, images, results per snapshot
    get_depth  INPUT_DIR OUT_DIR SNAPSHOTS_DIR [--log]           raw depth maps only, any image files
    test_grad  INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR            gradient networks: RMSE and MVN error

By default the numbers, files and printout are the original's: every `X.caffemodel` in SNAPSHOTS_DIR with
its deploy `X.prototxt` is run on every `*colors*` image of INPUT_DIR (RGB, resized to the net's input,
x255 - 127), its output zoomed (cubic) to the GT's 320x420 and compared with the GT `*depth*` image; the
ten metrics are averaged over the images and the top 10 snapshots per metric printed. OUT_DIR/<snapshot>/
gets the MVN-fitted ("oracle") predictions, OUT_DIR_abs/<snapshot>/ the raw ones.

Added, all without changing those numbers: batched forward on any device, decoding and PNG encoding in
worker threads, the prepared images cached across snapshots, the standard NYU metrics and the oracle's
metrics beside the thesis's, results.csv / results.json (merged across runs), per-image metrics, a contact
sheet per snapshot, metric-vs-iteration plots, progress bars, and clear errors: a snapshot that cannot be
evaluated is skipped with a one-line reason and the exit status says so at the end.

Nothing a run did not write is overwritten. Before writing anything it refuses (one line, exit status 2)
when a per-snapshot folder it would replace holds an input or anything but PNG, NPY and CSV files, or when
OUT_DIR holds a results.json that is not this tool's (another tool's, not JSON, another structure) or a
results.csv / plot without one. Output names never collide: where the usual name is taken (get_depth on a
folder holding both a_colors.png and a_depth.png, whose copy is a_depth.png), an output is named after the
whole input name (a_colors_depth.png), with a warning.

Where the original misbehaved, the port differs (documented in the README's evaluation section): it
averages over the evaluated pairs (the original divided by the number of all files in INPUT_DIR), writes
OUT_DIR_abs beside OUT_DIR even when OUT_DIR ends with a slash, renames only the file name (the original
replaced `_colors` anywhere in the path), and fills a per-snapshot folder under a temporary name before it
replaces the old one.

The parts, one concern each: `discovery` (pairs, snapshots, output names), `source` (reading and preparing
the images), `pipeline` (the run: forward, zoom, metrics, MVN fit), `results` (folders, results files,
printout, plots) and `command` (the command lines). The network side (loading a snapshot, choosing its
output, preparing images) is `eigen_depth.inference`, shared with `predict` and the export.
"""
from ..errors import DatasetError
from ..inference import Snapshot, load_model
from .command import add_arguments, options_from_args, run_args, tool_main
from .discovery import GT_FORMATS, TOOLS, find_pairs, find_snapshots
from .pipeline import Options, Outcome, run
from .results import RESULTS_CSV, RESULTS_JSON, metric_names, read_results
from .source import read_gt_tenth

__all__ = ["DatasetError", "GT_FORMATS", "Options", "Outcome", "RESULTS_CSV", "RESULTS_JSON", "Snapshot", "TOOLS",
           "add_arguments", "find_pairs", "find_snapshots", "load_model", "metric_names", "options_from_args",
           "read_gt_tenth", "read_results", "run", "run_args", "tool_main"]
