#!/usr/bin/env python
"""The thesis's staged training: global context net, gradient net, then the refining net with both
frozen (docs/specification.md section 3). `--stage all` runs the three in order, each feeding the next.

    python tools/train.py --stage all --data synthetic --iters 200 --batch 8 --out train_out
    python tools/train.py --stage refine --global G.caffemodel --gradient D.caffemodel --alexnet A.caffemodel
"""
import sys

from eigen_depth.train import staged_main

if __name__ == "__main__":
    sys.exit(staged_main())
