#!/usr/bin/env python
"""The thesis's paired LMDBs (color 298x218, depth 37x27 and 74x54) from folders of pairs, one shuffle.

    python tools/make_lmdb.py PAIRS_DIR OUT
"""
import sys

from eigen_depth.data.commands import make_lmdb_main

if __name__ == "__main__":
    sys.exit(make_lmdb_main())
