#!/usr/bin/env python
"""The thesis's training-set augmentation recipes data0, data1, data2 (REFERENCE.md section 5).

    python tools/augment.py IN OUT --recipe data0|data1|data2 [--seed S]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eigen_depth.data.commands import augment_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(augment_main())
