#!/usr/bin/env python
"""The thesis's paired LMDBs (color 298x218, depth 37x27 and 74x54) from folders of pairs, one shuffle.

    python tools/make_lmdb.py PAIRS_DIR OUT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eigen_depth.data.commands import make_lmdb_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(make_lmdb_main())
