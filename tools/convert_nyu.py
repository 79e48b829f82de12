#!/usr/bin/env python
"""NYU Depth v2 labeled .mat + splits.mat -> folders of 420x320 *_colors.png / *_depth.png pairs
(REFERENCE.md section 5).

    python tools/convert_nyu.py nyu_depth_v2_labeled.mat splits.mat OUT [--split test|train|both] [--full]
                                [--depth-format png8|png16mm]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eigen_depth.data.commands import convert_nyu_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(convert_nyu_main())
