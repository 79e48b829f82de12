#!/usr/bin/env python
"""Evaluates every snapshot in SNAPSHOTS_DIR on the `*colors*` images of INPUT_DIR against their `*depth*`
GT in GT_DIR, as the thesis's test_depth did (docs/specification.md section 4); see eigen_depth/evaluate/.

    python tools/test_depth.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log] [options]
"""
import sys

from eigen_depth.evaluate import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("test_depth", description=" ".join(__doc__.split("\n\n")[0].split())))
