#!/usr/bin/env python
"""Runs every snapshot in SNAPSHOTS_DIR on the images of INPUT_DIR (any PNG/JPEG/TIFF, gray, RGBA, 16-bit)
and writes the raw depth maps to OUT_DIR_abs/<snapshot>/, as the thesis's get_depth did (docs/specification.md
section 4); see eigen_depth/evaluate/.

    python tools/get_depth.py INPUT_DIR OUT_DIR SNAPSHOTS_DIR [--log] [--png16] [--npy] [options]
"""
import sys

from eigen_depth.evaluate import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("get_depth", description=" ".join(__doc__.split("\n\n")[0].split())))
