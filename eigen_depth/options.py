"""The command-line options that several commands share, defined once: argparse types that refuse bad
values where they are parsed (one line, exit status 2), and the --device, --batch-size, --channel-order,
--output-blob, --log and convention options with the same meaning and help everywhere."""
import argparse
import math

from .constants import LOG_DEPTH_SCALE


def _whole(text, minimum, wording):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {wording}, not {value}")
    return value


def positive_int(text):
    """An integer >= 1."""
    return _whole(text, 1, "at least 1")


def non_negative_int(text):
    """An integer >= 0 (0 usually switches something off)."""
    return _whole(text, 0, "0 or more")


def _number(text, accept, wording):
    """A float that `accept` takes, else an argparse error: 'must be WORDING, not TEXT'."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not accept(value):  # NaN fails every test below
        raise argparse.ArgumentTypeError(f"must be {wording}, not {text}")
    return value


def fraction(text):
    """A number from 0 to 1."""
    return _number(text, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def positive_float(text):
    """A finite number > 0."""
    return _number(text, lambda v: math.isfinite(v) and v > 0, "a positive number")


def finite_nonzero_float(text):
    """A finite number other than 0."""
    return _number(text, lambda v: math.isfinite(v) and v != 0, "a finite number other than 0")


def add_device(parser, default="auto"):
    parser.add_argument("--device", default=default,
                        help=f"auto (CUDA when available), cpu, cuda or cuda:N (default {default})")


def add_batch_size(parser):
    parser.add_argument("--batch-size", type=positive_int, help="images per forward (default 8 on CPU, 32 on CUDA)")


def mean_values(text):
    """One number, or three separated by commas (one per input channel, in the net's channel order)."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or three numbers separated by commas, not {text!r}") \
            from None
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected one finite number or three separated by commas, not {text!r}")
    return values


def add_channel_order(parser):
    parser.add_argument("--channel-order", choices=("rgb", "bgr"),
                        help="channel order fed to the net (default: the net's; rgb for the thesis's nets, as the "
                             "original evaluator fed them although their training LMDBs were BGR; bgr for FCRN and "
                             "DenseDepth)")


def add_convention(parser, output=True):
    """--input-mean, --input-scale and (output: for depth nets) --output-unit-m and --output-inverse: the parts
    of a net's convention (eigen_depth.conventions) that options may replace; each defaults to the net's."""
    parser.add_argument("--input-mean", type=mean_values, metavar="V[,V,V]",
                        help="subtracted from the 0-255 pixel values, one value or one per channel in the net's "
                             "order (default: the net's; 127 for the thesis's nets, 104,117,123 for FCRN)")
    parser.add_argument("--input-scale", type=finite_nonzero_float, metavar="S",
                        help="multiplies the input after the mean, as Caffe's transform_param scale (default: the "
                             "net's; 1, or 1/255 for DenseDepth)")
    if not output:
        return
    parser.add_argument("--output-unit-m", type=positive_float, metavar="M",
                        help="meters per unit of the depth output (default: the net's; 10 for the thesis's nets, "
                             "1 for FCRN)")
    parser.add_argument("--output-inverse", action="store_true", default=None,
                        help="the output is M / depth (with M from --output-unit-m), as DenseDepth's 10 m / d")


def add_output_blob(parser, default_text="depth-refine, else depth"):
    parser.add_argument("--output-blob", help=f"the blob to read (default: {default_text}, else the only output)")


def add_log(parser):
    parser.add_argument("--log", action="store_true",
                        help=f"the net predicts log depth L(d) = {LOG_DEPTH_SCALE:g} ln d + 1: map it back first")


def add_inference(parser, output_default="depth-refine, else depth", log=True):
    """The options of every command that runs a net on images: a depth net's, or with log=False
    test_grad's (no --log, no output unit)."""
    if log:
        add_log(parser)
    add_device(parser)
    add_batch_size(parser)
    add_output_blob(parser, output_default)
    add_channel_order(parser)
    add_convention(parser, output=log)
    add_fuse(parser)
    add_layout(parser)
    add_winograd(parser)
    add_bf16(parser)


def add_fuse(parser):
    parser.add_argument("--no-fuse", dest="fuse", action="store_false",
                        help="run BatchNorm, Scale and ReLU layers one at a time, in Caffe's order (default: a "
                             "chain of them runs as one operation, equal up to float32 rounding)")


def add_layout(parser):
    from .layout import LAYOUTS
    parser.add_argument("--layout", choices=LAYOUTS, default="auto",
                        help="memory layout of the convolutions on the CPU: auto (default) times each one in both "
                             "layouts over the first batches and keeps the fastest net; nhwc (channels-last) or "
                             "nchw for all, the same numbers in every run (the layouts differ by float rounding); "
                             "winograd: Winograd's algorithm for every 3x3 and 5x5 convolution of stride 1, nchw "
                             "for the others")


def add_training_winograd(parser):
    parser.add_argument("--no-winograd", dest="winograd", action="store_false",
                        help="compute every convolution directly; by default the frozen ones with at least 64 "
                             "channels in and out (a stage trained on top of others) run by Winograd's algorithm "
                             "on the CPU, with fewer multiplications but more rounding")


def add_winograd(parser):
    parser.add_argument("--no-winograd", dest="winograd", action="store_false",
                        help="--layout auto leaves Winograd's algorithm out: it computes 3x3 and 5x5 convolutions "
                             "with fewer multiplications but rounds more (within about 1e-5 of a layer's largest "
                             "output, against 3e-7 directly)")


def add_bf16(parser):
    parser.add_argument("--bf16", action="store_true",
                        help="compute in bfloat16 instead of float32: faster on CPUs with AVX-512 BF16 or AMX and on "
                             "recent GPUs, with outputs about 1e-2 of their magnitude from float32's (not Caffe's "
                             "numbers)")


def _image_size(text, order):
    """'AxB' (x, X or a comma between) as two positive whole numbers, refused when one float32 RGB image
    of that size would not fit in the machine's memory."""
    import re

    from .layers.base import check_fits
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not match or not all(int(v) > 0 for v in match.groups()):
        example = "320x420" if order == "HxW" else "298x218"
        raise argparse.ArgumentTypeError(f"expected {'HEIGHTxWIDTH' if order == 'HxW' else 'WIDTHxHEIGHT'} "
                                         f"such as {example}, not {text!r}")
    first, second = int(match.group(1)), int(match.group(2))
    height, width = (first, second) if order == "HxW" else (second, first)
    too_big = check_fits((3, height, width), f"an image of {width}x{height} (WxH)", advice="choose a smaller size")
    if too_big:
        raise argparse.ArgumentTypeError(too_big)
    return first, second


def size_hw(text):
    """HEIGHTxWIDTH -> (height, width)."""
    return _image_size(text, "HxW")


def size_wh(text):
    """WIDTHxHEIGHT -> (width, height)."""
    return _image_size(text, "WxH")


def resize_dimension(text):
    """A resize height or width: 0 (keep the image's) or a positive number of pixels that can fit."""
    from .layers.base import check_fits
    value = _whole(text, 0, "0 (keep) or more")
    too_big = value and check_fits((3, value, value), f"a resize to {value} pixels", advice="choose a smaller size")
    if too_big:
        raise argparse.ArgumentTypeError(too_big)
    return value
