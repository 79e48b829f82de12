"""The command lines of test_depth, get_depth and test_grad (tools/*.py and `eigen-depth test-depth`, ...)."""
import argparse

from ..constants import GT_HEIGHT, GT_WIDTH, PNG_COMPRESSION, PNG_STRATEGIES, PNG_STRATEGY
from ..errors import DatasetError, exit_status
from ..inputs import listing
from ..options import add_inference, non_negative_int, positive_int, size_hw
from .discovery import GT_FORMATS
from .pipeline import Options, run


EXIT_STATUS = ("exit status: 0 when every snapshot was evaluated; 1 when some were skipped (each with its "
               "reason; the others' results are written); 2 for a user error, including when no snapshot could "
               "be evaluated")


def add_arguments(parser, tool):
    """The options of one tool (test_depth, get_depth, test_grad), shared by tools/ and the CLI."""
    parser.epilog = EXIT_STATUS
    parser.add_argument("input_dir", help="folder with the input images" +
                        (" (files named *colors*)" if tool != "get_depth" else " (any image files)"))
    if tool != "get_depth":
        parser.add_argument("gt_dir", help="folder with the GT depth images (a_colors.png -> a_depth.png)")
    parser.add_argument("out_dir", help="output folder" + (": OUT_DIR_abs/<snapshot>/ gets the raw depth maps"
                                                           if tool == "get_depth" else ""))
    parser.add_argument("snaps_dir", help="folder with snapshots: X.caffemodel with its deploy X.prototxt")
    add_inference(parser, "gradient" if tool == "test_grad" else "depth-refine, else depth", log=tool != "test_grad")
    if tool != "get_depth":
        parser.add_argument("--gt-format", choices=GT_FORMATS, default="png8",
                            help="png8: pixel/255 = depth/10 m (the thesis's); png16mm: uint16 millimetres; "
                                 "npy: float meters (a_depth.npy)")
    parser.add_argument("--snapshots", metavar="GLOB", help="only snapshots whose file or name matches, "
                                                            "e.g. '*_iter_*0000'")
    parser.add_argument("--workers", type=positive_int, help="threads for image decoding and PNG encoding")
    parser.add_argument("--cache-mb", type=non_negative_int, default=2048,
                        help="memory for keeping prepared images between snapshots (default 2048; 0: none)")
    parser.add_argument("--png-compression", type=int, choices=range(10), default=PNG_COMPRESSION, metavar="0-9",
                        help="zlib level of the written PNGs (default 8, the original's; the pixels are the same at "
                             "any level)")
    parser.add_argument("--png-strategy", choices=PNG_STRATEGIES, default=PNG_STRATEGY,
                        help="zlib strategy of the written PNGs (default rle: the same pixels as the original's "
                             "'default' strategy, 8-23x faster to write, in files of the same size)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    if tool == "test_depth":
        parser.add_argument("--no-images", dest="write_images", action="store_false",
                            help="metrics only: no per-image PNGs (results, per-image CSV and contact sheet stay)")
        parser.add_argument("--sheet-images", type=non_negative_int, default=6,
                            help="images in each snapshot's contact sheet (0: none; default 6)")
    if tool == "test_grad":
        parser.add_argument("--no-images", dest="write_images", action="store_false", help="metrics only")
    if tool == "get_depth":
        parser.add_argument("--png16", action="store_true", help="also write <name>_depth_mm.png, uint16 millimetres")
        parser.add_argument("--npy", action="store_true", help="also write <name>_depth.npy, float32 meters")
        parser.add_argument("--size", type=size_hw, default=(GT_HEIGHT, GT_WIDTH),
                            help="HEIGHTxWIDTH of the written maps (default 320x420, the original's)")
    return parser


def options_from_args(args, tool):
    values = {k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__}
    return Options(tool=tool, **values)


def run_args(args, tool):
    """Runs a tool from parsed arguments; returns the exit status."""
    outcome = run(options_from_args(args, tool))
    if outcome.status == 2:
        skipped = len(outcome.skipped)
        raise DatasetError(f"no snapshot could be evaluated: {skipped} of {skipped} snapshot(s) skipped, each "
                           f"for the reason above: {listing(outcome.skipped)}")
    return outcome.status


def tool_main(tool, argv=None, description=None):
    """Entry point of tools/<tool>.py: errors a user can cause as one line on stderr, exit status 2."""
    parser = argparse.ArgumentParser(prog=f"{tool}.py", description=description)
    add_arguments(parser, tool)
    args = parser.parse_args(argv)
    return exit_status(tool, lambda: run_args(args, tool))
