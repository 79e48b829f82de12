#!/usr/bin/env python
"""Synthetic indoor scenes with exact metric depth, as pairs or as an NYU-layout labeled .mat + splits.mat.

    python tools/make_synthetic.py N OUT [--seed S] [--format pairs|nyu-mat]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eigen_depth.data.commands import make_synthetic_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(make_synthetic_main())
