"""Running one function over many items in worker processes, in order, with a progress bar."""
import multiprocessing
import os


def default_workers():
    """Worker processes to use by default: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_jobs(function, items, workers=None, progress=True, desc=None, unit="item", initializer=None,
             initargs=(), chunksize=1):
    """Yields function(item) for each item, in order. workers > 1 runs them in that many processes (each
    first calls initializer(*initargs)); workers <= 1 runs them here. A tqdm bar shows progress."""
    from tqdm import tqdm
    items = list(items)
    workers = default_workers() if workers is None else int(workers)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(items) <= 1:
            if initializer is not None:
                initializer(*initargs)
            for item in items:
                yield function(item)
                bar.update(1)
            return
        with _context().Pool(min(workers, len(items)), initializer, initargs) as pool:
            for result in pool.imap(function, items, chunksize=chunksize):
                yield result
                bar.update(1)
    finally:
        bar.close()
