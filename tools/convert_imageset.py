#!/usr/bin/env python
"""Caffe's convert_imageset: a list of images -> an LMDB of Datum records (keys %08d_<file>, BGR).

    python tools/convert_imageset.py ROOT LISTFILE DB [--resize_height H] [--resize_width W] [--gray]
                                     [--shuffle] [--encoded]
"""
import sys

from eigen_depth.data.commands import convert_imageset_main

if __name__ == "__main__":
    sys.exit(convert_imageset_main())
