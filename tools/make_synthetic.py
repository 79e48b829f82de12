#!/usr/bin/env python
"""Synthetic indoor scenes with exact metric depth, as pairs or as an NYU-layout labeled .mat + splits.mat.

    python tools/make_synthetic.py N OUT [--seed S] [--format pairs|nyu-mat]
"""
import sys

from eigen_depth.data.commands import make_synthetic_main

if __name__ == "__main__":
    sys.exit(make_synthetic_main())
