#!/usr/bin/env python
"""Depth statistics of rendered rooms (exact depth at 640x480): mean, percentiles, shares of near and far
pixels and of rooms whose central region is shallower than 1.5 m; printed and written as JSON.

    python tools/synthetic_stats.py [--count 1000] [--seed 0] [--workers N] [--json synthetic_stats.json]
"""
import argparse
import json
import os
import sys

from eigen_depth.atomic import atomic_write
from eigen_depth.data.synthetic import depth_statistics
from eigen_depth.errors import exit_status
from eigen_depth.options import non_negative_int, positive_int


def summary(stats):
    """The statistics as a few lines of text."""
    percentiles = ", ".join(f"p{q} {value:.2f}" for q, value in stats["percentiles_m"].items())
    return (f"{stats['scenes']} rooms (seed {stats['seed']}), {stats['pixels']} pixels\n"
            f"  mean depth {stats['mean_m']:.2f} m; percentiles (m): {percentiles}\n"
            f"  pixels beyond 5 m {stats['fraction_beyond_5m']:.2%}, below 0.5 m {stats['fraction_below_0.5m']:.3%}, "
            f"beyond 10 m {stats['fraction_beyond_10m']:.3%}\n"
            f"  rooms whose central region's median depth is below 1.5 m: "
            f"{stats['fraction_scenes_center_median_below_1.5m']:.2%}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=positive_int, default=1000, help="rooms to render (scenes 0..COUNT-1)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="worker processes (default: the CPUs available, at most 8; 1 = no pool)")
    parser.add_argument("--json", default="synthetic_stats.json", help="where to write the numbers")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    if os.path.isdir(args.json):
        parser.error(f"argument --json: {args.json} is a folder: give the name of the file to write")

    def run():
        stats = depth_statistics(args.count, args.seed, args.workers, progress=not args.quiet)
        print(summary(stats))
        with atomic_write(args.json, "w") as handle:
            json.dump(stats, handle, indent=2)
        print(f"wrote {args.json}")
    return exit_status("synthetic_stats", run)


if __name__ == "__main__":
    sys.exit(main())
