"""How a depth net's input is made from an image and how its output reads as depth.

The thesis's nets take RGB in [0, 1] x 255 - 127 and give depth in meters / 10 (docs/specification.md section
1). Other nets differ: FCRN takes BGR minus ImageNet's channel means and gives meters; DenseDepth takes BGR
/ 255 and gives the normalised depth 10 m / d (docs/successors.md). A `Convention` holds these facts; the
evaluator and `predict` take the one of each snapshot's net from the deploy prototxt's `name` (the thesis's
when the name is not a known family's) and let options replace any part of it.
"""
from dataclasses import dataclass, fields, replace

import numpy as np

from . import images
from .constants import DEPTH_UNIT_M, INPUT_MEAN, INPUT_SCALE, VIS_DEPTH_MAX

FARTHEST_M = VIS_DEPTH_MAX  # the farthest depth an inverse output is read as (1000 m)


@dataclass(frozen=True)
class Convention:
    """input = (pixel - mean) * scale, pixel in 0..255 in `channel_order`, mean one value or one per channel
    (in the net's order), as Caffe's transform_param; depth in meters = output * output_unit_m, or
    output_unit_m / output when output_inverse."""
    channel_order: str = "rgb"
    mean: tuple = (INPUT_MEAN,)
    scale: float = 1.0
    output_unit_m: float = DEPTH_UNIT_M
    output_inverse: bool = False

    def __post_init__(self):
        if self.channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel order must be rgb or bgr, not {self.channel_order!r}")
        if len(self.mean) not in (1, 3):
            raise ValueError(f"mean needs one value or three (one per channel), not {len(self.mean)}")

    def overridden(self, **values):
        """This convention with the given fields replaced; None keeps a field as it is."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def with_options(self, options):
        """This convention with what a command's options replace: their channel_order, input_mean, input_scale,
        output_unit_m and output_inverse attributes (None, or absent, keeps a field)."""
        return self.overridden(**{field: getattr(options, option, None) for field, option in OPTION_NAMES.items()})

    def describe(self):
        """One line, e.g. 'input bgr, mean 104,117,123, scale 1; output meters'."""
        mean = ",".join(f"{m:g}" for m in self.mean)
        if self.output_inverse:
            output = f"{self.output_unit_m:g} m / depth"
        else:
            output = "meters" if self.output_unit_m == 1 else f"depth in units of {self.output_unit_m:g} m"
        return f"input {self.channel_order}, mean {mean}, scale {self.scale:g}; output {output}"

    def _mean_array(self):
        return np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)

    def prepare(self, rgb, height, width):
        """float32 RGB in [0, 1] (H x W x 3) -> the net input (3, height, width) in float32: bilinear resize,
        x 255, the net's channel order, minus the mean, times the scale (for the thesis's nets the original's
        x255 - 127 exactly)."""
        chw = images.resize_bilinear_planes(rgb, height, width)
        chw *= np.float32(INPUT_SCALE)
        if self.channel_order == "bgr":
            chw = np.ascontiguousarray(chw[::-1])
        chw -= self._mean_array()
        if self.scale != 1:
            chw *= np.float32(self.scale)
        return chw

    def to_rgb_uint8(self, chw):
        """A prepared input (3, h, w) back to the RGB uint8 image it shows, as the original wrote its inputs:
        (x + mean) / 255, then uint8(x * 255), in float32."""
        image = np.asarray(chw, dtype=np.float32)
        if self.scale != 1:
            image = image / np.float32(self.scale)
        image = image + self._mean_array()
        if self.channel_order == "bgr":
            image = image[::-1]
        return images.to_uint8(np.transpose(image / 255.0, (1, 2, 0)))

    def to_tenth_m(self, output):
        """The net's depth output -> depth in meters / 10, the unit the evaluator works in (identity for the
        thesis's nets)."""
        output = np.asarray(output, dtype=np.float32)
        if self.output_inverse:  # outputs at or below unit / 1000 m (0 and negatives too) read as 1000 m
            floor = np.float32(self.output_unit_m / FARTHEST_M)
            return (np.float32(self.output_unit_m / DEPTH_UNIT_M) / np.maximum(output, floor)).astype(np.float32)
        if self.output_unit_m == DEPTH_UNIT_M:
            return output
        return output * np.float32(self.output_unit_m / DEPTH_UNIT_M)


THESIS = Convention()

# The successors' nets (docs/successors.md), by the prefix of their deploy prototxt's `name`: both train on
# this project's LMDBs, which hold BGR as Caffe's tools write them.
FAMILIES = {
    "fcrn": Convention("bgr", (104.0, 117.0, 123.0), 1.0, 1.0),            # ImageNet means (BGR), meters
    "densedepth": Convention("bgr", (0.0,), 1 / 255, 10.0, True),          # [0, 1] input, 10 m / depth
}

# the command-line option (attribute) that replaces each field
OPTION_NAMES = {"channel_order": "channel_order", "mean": "input_mean", "scale": "input_scale",
                "output_unit_m": "output_unit_m", "output_inverse": "output_inverse"}
assert set(OPTION_NAMES) == {f.name for f in fields(Convention)}


def of_net(name):
    """The convention of a net by its prototxt `name`: a family's when the name is the family's or starts with
    it and an underscore ('fcrn_deploy'), else the thesis's."""
    name = (name or "").lower()
    for family, convention in FAMILIES.items():
        if name == family or name.startswith(family + "_"):
            return convention
    return THESIS
