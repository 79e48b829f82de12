"""Data pipeline speed: synthetic scenes rendered per second at 640x480, and paired training
samples per second read from Caffe LMDBs at the thesis's sizes (colour 298x218 + depth 74x54 and 37x27),
decoded and transformed as the prototxts' Data layers do; the folder source for comparison.

    python benchmarks/data.py [--cores 2] [--scenes 40] [--records 2000] [--json out.json]

Goals on 2 cores: >= 20 synthetic images/s; >= 1000 LMDB samples/s (so a training step is never data-bound).
"""
import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np



def _render(index):
    from eigen_depth.data.synthetic import SceneSet
    return SceneSet(index + 1, seed=index).render_full(index)[1].shape


def synthetic_rate(scenes, processes):
    """Scenes rendered per second (colour + exact depth at 640x480) with `processes` worker processes."""
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        list(pool.map(_render, range(processes)))  # warm-up: imports, first allocations
        start = time.perf_counter()
        list(pool.map(_render, range(100, 100 + scenes), chunksize=1))
        return scenes / (time.perf_counter() - start)


def write_databases(folder, records):
    """Random records at the thesis's sizes in three paired LMDBs (what make_lmdb.py writes)."""
    from eigen_depth.caffe import encode_datum
    from eigen_depth.data.lmdb_io import LmdbWriter
    rng = np.random.default_rng(0)
    shapes = {"train_color_298x218": (3, 218, 298), "train_depth_37x27": (1, 27, 37), "train_depth_74x54": (1, 54, 74)}
    for name, shape in shapes.items():
        with LmdbWriter(os.path.join(folder, name)) as writer:
            for index in range(records):
                writer.put(f"{index:08d}_{index:05d}.png", encode_datum(rng.integers(0, 256, shape, dtype=np.uint8)))


def write_pairs(folder, count):
    from PIL import Image
    rng = np.random.default_rng(1)
    os.makedirs(folder)
    for index in range(count):
        stem = os.path.join(folder, f"{index:05d}")
        Image.fromarray(rng.integers(0, 256, (320, 420, 3), dtype=np.uint8)).save(f"{stem}_colors.png")
        Image.fromarray(rng.integers(0, 256, (320, 420), dtype=np.uint8)).save(f"{stem}_depth.png")


def paired_rate(kind, root, depth_size, batches, workers, batch_size=32):
    """Paired (colour, depth) samples per second through PairedSource (the Data layers' code path)."""
    from eigen_depth.data.loader import PairedSource
    source = PairedSource(kind, root, "train", depth_size=depth_size, batch_size=batch_size, shuffle=True,
                          workers=workers)
    source.next_batch()
    start = time.perf_counter()
    for _ in range(batches):
        source.next_batch()
    rate = batches * batch_size / (time.perf_counter() - start)
    source.close()
    return rate


def net_rate(root, batches, workers):
    """Samples per second through the thesis's two Data layers inside CaffeNet (data layers only)."""
    import eigen_depth.data.layers  # noqa: F401
    from eigen_depth import data
    from eigen_depth.caffe import parse_text, schema
    from eigen_depth.net import CaffeNet
    text = """
    layer { name: "c" type: "Data" top: "X" transform_param { mean_value: 127 }
            data_param { source: "train_color_298x218" backend: LMDB batch_size: 16 } }
    layer { name: "d" type: "Data" top: "Y" transform_param { scale: 0.00390625 }
            data_param { source: "train_depth_74x54" backend: LMDB batch_size: 16 } }"""
    with data.using(root=root, kind="lmdb", shuffle=True, workers=workers):
        net = CaffeNet(parse_text(schema.NetParameter, text), "TRAIN")
    net.forward()
    start = time.perf_counter()
    for _ in range(batches):
        net.forward()
    return batches * 16 / (time.perf_counter() - start)


def decode_rate(folder, records):
    """Single-thread reference: Datum parse only (colour records), no transform."""
    from eigen_depth.data.lmdb_io import LmdbReader
    reader = LmdbReader(os.path.join(folder, "train_color_298x218"))
    start = time.perf_counter()
    for index in range(records):
        reader.datum(index)
    return records / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2, help="CPUs to run on (sched_setaffinity)")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, available[:args.cores])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch
    torch.set_num_threads(cores)
    folder = tempfile.mkdtemp(prefix="eigen_depth_data_bench_")
    results = {"cores": cores}
    try:
        results["synthetic_images_per_s"] = synthetic_rate(args.scenes, cores)
        write_databases(folder, args.records)
        batches = max(args.records // 32, 10)
        results["lmdb_decode_only_records_per_s_1_thread"] = decode_rate(folder, args.records)
        results["lmdb_samples_per_s_color_depth74x54"] = paired_rate("lmdb", folder, (74, 54), batches, cores)
        results["lmdb_samples_per_s_color_depth37x27"] = paired_rate("lmdb", folder, (37, 27), batches, cores)
        results["lmdb_samples_per_s_two_data_layers_in_caffenet"] = net_rate(folder, batches, cores)
        write_pairs(os.path.join(folder, "pairs", "train"), 200)
        results["pairs_samples_per_s_color_depth74x54"] = paired_rate("pairs", os.path.join(folder, "pairs"),
                                                                      (74, 54), 12, cores)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    goals = {"synthetic_images_per_s": 20, "lmdb_samples_per_s_color_depth74x54": 1000,
             "lmdb_samples_per_s_color_depth37x27": 1000, "lmdb_samples_per_s_two_data_layers_in_caffenet": 1000}
    print(f"data pipeline on {cores} core(s), numpy {np.__version__}")
    for name, value in results.items():
        if name == "cores":
            continue
        goal = goals.get(name)
        verdict = "" if goal is None else (f"  (goal >= {goal}: {'met' if value >= goal else 'NOT met'})")
        print(f"  {name:50s} {value:9.1f}{verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
