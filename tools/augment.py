#!/usr/bin/env python
"""The thesis's training-set augmentation recipes data0, data1, data2 (docs/specification.md section 5).

    python tools/augment.py IN OUT --recipe data0|data1|data2 [--seed S]
"""
import sys

from eigen_depth.data.commands import augment_main

if __name__ == "__main__":
    sys.exit(augment_main())
