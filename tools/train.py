#!/usr/bin/env python
"""The thesis's staged training: global context net, gradient net, then the refining net with both
frozen (REFERENCE.md section 3). `--stage all` runs the three in order, each feeding the next.

    python tools/train.py --stage all --data synthetic --iters 200 --batch 8 --out train_out
    python tools/train.py --stage refine --global G.caffemodel --gradient D.caffemodel --alexnet A.caffemodel
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eigen_depth.train import staged_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(staged_main())
