"""Command lines of the data tools (tools/convert_nyu.py, augment.py, convert_imageset.py, make_lmdb.py,
make_synthetic.py): argument parsing over the package. Errors a user can cause print as one line on stderr
with exit status 2."""
import argparse

from ..errors import exit_status
from ..options import fraction, non_negative_int, positive_int, resize_dimension, size_wh
from .constants import COLOR_SIZE, CROP_HEIGHT, CROP_WIDTH, DEPTH_SIZES, RECIPES


def _common(parser, workers=True):
    if workers:
        parser.add_argument("--workers", type=positive_int, default=None,
                            help="worker processes (default: the CPUs available, at most 8; 1 = no pool)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite outputs that exist already")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(tool, parser, runner, argv):
    args = parser.parse_args(argv)
    return exit_status(tool, lambda: runner(args), "interrupted (rerun to continue: finished files are kept)")


def convert_nyu_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="convert_nyu.py", description="NYU Depth v2 labeled .mat -> OUT/<split>/NNNNN_colors.png + "
        "NNNNN_depth.png (420x320 centre crops, 8-bit depth = meters/10*255), as the thesis's test set")
    parser.add_argument("labeled_mat", help="nyu_depth_v2_labeled.mat (MATLAB v7.3 / HDF5)")
    parser.add_argument("splits_mat", help="splits.mat (testNdxs, trainNdxs)")
    parser.add_argument("out", help="output folder (gets test/ and/or train/)")
    parser.add_argument("--split", choices=("test", "train", "both"), default="test")
    parser.add_argument("--full", action="store_true", help="keep the whole 640x480 frame (no centre crop)")
    parser.add_argument("--depth-format", choices=("png8", "png16mm"), default="png8",
                        help="png8: the thesis's 8-bit meters/10 (default); png16mm: 16-bit millimetres")
    parser.add_argument("--depth-key", default="depths",
                        help="depth variable: depths (filled, the thesis's) or rawDepths (Kinect, with holes)")
    _common(parser)

    def run(args):
        from .nyu import convert_nyu
        convert_nyu(args.labeled_mat, args.splits_mat, args.out, args.split, args.full, args.depth_format,
                    args.depth_key, args.workers, args.overwrite, progress=not args.quiet)
    return _run("convert_nyu", parser, run, argv)


def augment_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="augment.py", description="The thesis's training-set recipes: data0 (centre crop), data1 and data2 "
        "(5 random rotations or rescales with colour jitter, plus flips, per frame)")
    parser.add_argument("input", help="folder of <stem>_colors.png / <stem>_depth.png frames (larger than the crop)")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--crop", type=size_wh, default=(CROP_WIDTH, CROP_HEIGHT), help="output size WxH (420x320)")
    parser.add_argument("--depth-resampling", choices=("nearest", "area"), default="nearest",
                        help="nearest copies source depths (default); area averages them when shrinking")
    _common(parser)

    def run(args):
        from .augment import augment_folder
        augment_folder(args.input, args.out, args.recipe, args.seed, args.crop, args.depth_resampling,
                       args.workers, args.overwrite, progress=not args.quiet)
    return _run("augment", parser, run, argv)


def convert_imageset_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="convert_imageset.py", description="Caffe's convert_imageset: images named in LISTFILE (under ROOT) "
        "-> an LMDB of Datum records keyed %%08d_<file>, BGR channel order")
    parser.add_argument("root", help="folder the list's file names are relative to ('' for none)")
    parser.add_argument("listfile", help="one '<file> <label>' per line")
    parser.add_argument("db", help="the LMDB to create")
    parser.add_argument("--resize_height", type=resize_dimension, default=0)
    parser.add_argument("--resize_width", type=resize_dimension, default=0)
    parser.add_argument("--gray", action="store_true", help="read the images as one gray channel")
    parser.add_argument("--shuffle", action="store_true", help="shuffle the list (seeded by --seed)")
    parser.add_argument("--encoded", action="store_true", help="store the image files, not raw pixels")
    parser.add_argument("--check_size", action="store_true", help="require every record to have the same size")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    _common(parser, workers=False)

    def run(args):
        from .lmdb_io import convert_imageset
        count = convert_imageset(args.root, args.listfile, args.db, max(args.resize_height, 0),
                                 max(args.resize_width, 0), args.gray, args.shuffle, args.encoded, args.seed,
                                 args.check_size, args.overwrite, progress=not args.quiet)
        print(f"Processed {count} files into {args.db}")
    return _run("convert_imageset", parser, run, argv)


def make_lmdb_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="make_lmdb.py", description="The thesis's paired LMDBs from folders of pairs, one shuffle: "
        "<prefix>_color_298x218, <prefix>_depth_37x27, <prefix>_depth_74x54 (train/ and test/ subfolders "
        "become prefixes train and test)")
    parser.add_argument("pairs_dir", help="folder of *_colors.png / *_depth.png pairs, or one with train/ and test/")
    parser.add_argument("out", help="folder for the databases (the data root of the training prototxts)")
    parser.add_argument("--prefix", help="database name prefix for a single folder (default: its name if "
                        "train or test, else train)")
    parser.add_argument("--color-size", type=size_wh, default=COLOR_SIZE, help="WxH (298x218)")
    parser.add_argument("--depth-sizes", type=size_wh, nargs="+", default=list(DEPTH_SIZES), help="WxH ... (37x27 74x54)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the one shuffle")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the pairs' name order")
    parser.add_argument("--interpolation", choices=("linear", "area", "nearest", "cubic"), default="linear",
                        help="resize (default linear: cv::resize's default, as convert_imageset)")
    parser.add_argument("--mean-file", action="store_true",
                        help="also write <prefix>_color_WxH_mean.binaryproto (compute_image_mean)")
    _common(parser)

    def run(args):
        from .paired_lmdb import make_lmdb
        make_lmdb(args.pairs_dir, args.out, args.prefix, args.color_size, args.depth_sizes, args.seed,
                  not args.no_shuffle, args.interpolation, args.workers, args.overwrite, args.mean_file,
                  progress=not args.quiet)
    return _run("make_lmdb", parser, run, argv)


def _refuse_lone_nyu_file(out):
    """make_synthetic --format nyu-mat keeps the labeled .mat and splits.mat when both exist and writes both
    otherwise: one of them alone may be someone's real NYU file, which it would replace."""
    import os
    from ..errors import OutputError
    from .synthetic import LABELED_NAME, SPLITS_NAME
    paths = [os.path.join(out, name) for name in (LABELED_NAME, SPLITS_NAME)]
    present = [path for path in paths if os.path.lexists(path)]
    if len(present) == 1:
        raise OutputError(f"{present[0]}: exists without its companion and would be replaced; move it away, choose "
                          f"another output folder, or pass --overwrite to replace it")


def make_synthetic_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="make_synthetic.py", description="Rendered indoor rooms with exact metric depth (NYU Kinect camera, "
        "640x480): pairs like convert_nyu.py's, or a labeled .mat + splits.mat in NYU's layout")
    parser.add_argument("count", type=positive_int, help="number of scenes")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--format", choices=("pairs", "nyu-mat"), default="pairs",
                        help="pairs: OUT/{train,test}/NNNNN_colors.png + _depth.png; nyu-mat: "
                        "OUT/nyu_depth_v2_labeled.mat + OUT/splits.mat")
    parser.add_argument("--holes", action="store_true", help="pairs: Kinect-like holes (0) in the depth")
    parser.add_argument("--full", action="store_true", help="pairs: 640x480 instead of the 420x320 centre crop")
    parser.add_argument("--depth-format", choices=("png8", "png16mm"), default="png8")
    parser.add_argument("--test-fraction", type=fraction, default=654 / 1449, help="share of test scenes (NYU's)")
    _common(parser)

    def run(args):
        from .synthetic import make_synthetic
        if args.format == "nyu-mat" and not args.overwrite:
            _refuse_lone_nyu_file(args.out)
        make_synthetic(args.count, args.out, args.seed, args.format, args.holes, args.full, args.depth_format,
                       args.test_fraction, args.workers, args.overwrite, progress=not args.quiet)
    return _run("make_synthetic", parser, run, argv)
