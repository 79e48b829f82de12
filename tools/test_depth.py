#!/usr/bin/env python
"""Evaluates every snapshot in SNAPSHOTS_DIR on the `*colors*` images of INPUT_DIR against their `*depth*`
GT in GT_DIR, as the thesis's test_depth did (REFERENCE.md section 4); see eigen_depth/evaluate.py.

    python tools/test_depth.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log] [options]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eigen_depth.evaluate import tool_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(tool_main("test_depth", description=" ".join(__doc__.split("\n\n")[0].split())))
