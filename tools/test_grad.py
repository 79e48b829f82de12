#!/usr/bin/env python
"""Evaluates gradient-network snapshots: their 2 channels, zoomed to 318x418, against the thesis's
gradientFilter applied to the 320x420 GT; RMSE and MVN error (docs/specification.md sections 3.2 and 4).

    python tools/test_grad.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [options]
"""
import sys

from eigen_depth.evaluate import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("test_grad", description=" ".join(__doc__.split("\n\n")[0].split())))
