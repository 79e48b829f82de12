#!/usr/bin/env python
"""NYU Depth v2 labeled .mat + splits.mat -> folders of 420x320 *_colors.png / *_depth.png pairs
(docs/specification.md section 5).

    python tools/convert_nyu.py nyu_depth_v2_labeled.mat splits.mat OUT [--split test|train|both] [--full]
                                [--depth-format png8|png16mm]
"""
import sys

from eigen_depth.data.commands import convert_nyu_main

if __name__ == "__main__":
    sys.exit(convert_nyu_main())
