"""Where an evaluation's results go: per-snapshot folders filled under a temporary name, the checks that
nothing a run did not write is replaced, results.csv / results.json merged across runs, the top-10 printout and
the metric-vs-iteration plot."""
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import tempfile

import numpy as np

from .. import images, metrics
from ..atomic import aside_name, atomic_write, sync_folder, write_durable
from ..constants import (GRADIENT_METRICS, STANDARD_HIGHER_IS_BETTER, STANDARD_METRICS, THESIS_HIGHER_IS_BETTER,
                         THESIS_METRICS, TOP_COUNT)
from ..errors import OutputError
from ..errors import one_line as _one_line
from ..inputs import natural_key
from ..outputs import is_within, record_names, recorded_names


ORACLE = "oracle "


RESULTS_CSV, RESULTS_JSON, ITERATION_PLOT = "results.csv", "results.json", "metrics_vs_iteration.png"


PER_IMAGE_CSV, CONTACT_SHEET = "metrics.csv", "contact_sheet.png"
FOLDER_RECORD = ".eigen_depth_outputs.json"  # in a snapshot folder (hidden, beside the original's files): what it holds


def metric_names(tool):
    if tool == "test_grad":
        return list(GRADIENT_METRICS)
    if tool == "get_depth":
        return []
    return (list(THESIS_METRICS) + [ORACLE + m for m in THESIS_METRICS] + list(STANDARD_METRICS)
            + [ORACLE + m for m in STANDARD_METRICS])


def higher_is_better(name):
    base = name[len(ORACLE):] if name.startswith(ORACLE) else name
    if base in THESIS_METRICS:
        return THESIS_HIGHER_IS_BETTER[THESIS_METRICS.index(base)]
    if base in STANDARD_METRICS:
        return STANDARD_HIGHER_IS_BETTER[STANDARD_METRICS.index(base)]
    return False


class SnapshotFolder:
    """A per-snapshot output folder filled under a temporary name of its own (`.<name>.<random>.partial`) and
    renamed over the old one when complete, so an interrupted run leaves the previous results intact. The folder is
    the unit that appears whole, so its files need no temporary names of their own: `write_many` writes them in
    place and makes each durable (fsync) in the pool, and commit() records their names (FOLDER_RECORD: what
    a later run may replace), syncs the folder and renames it. Only paths this object made are ever removed."""

    def __init__(self, parent, name):
        self.parent = parent
        self.final = os.path.join(parent, name)
        self.path = tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent)

    def file(self, name):
        return os.path.join(self.path, name)

    def commit(self):
        record_names(self.path, os.listdir(self.path), FOLDER_RECORD)
        sync_folder(self.path)
        old = None
        if os.path.lexists(self.final):
            old = aside_name(self.final)
            os.replace(self.final, old)
        try:
            os.replace(self.path, self.final)
        except BaseException:
            if old and not os.path.lexists(self.final):
                os.replace(old, self.final)   # the earlier results back where they were
            raise
        sync_folder(self.parent)
        if old:
            _remove(old)

    def discard(self):
        shutil.rmtree(self.path, ignore_errors=True)


_MOVE_AWAY = "move it away or choose another output folder"


def _input_paths(options, pairs, snapshots):
    """Every folder and file the run reads."""
    folders = [options.input_dir, options.snaps_dir] + ([options.gt_dir] if options.gt_dir else [])
    files = [path for pair in pairs for path in (pair.input_path, pair.gt_path) if path]
    return folders + files + [path for s in snapshots for path in (s.caffemodel, s.prototxt)]


def check_replaceable(folder, inputs, names=()):
    """A per-snapshot folder is replaced whole by the new results: OutputError when it exists and holds anything
    but files this tool wrote there (named in its record, FOLDER_RECORD) or will write there (`names`), or
    when it is or holds one of `inputs`."""
    if not os.path.lexists(folder):
        return
    if os.path.islink(folder) or not os.path.isdir(folder):
        raise OutputError(f"{folder}: exists and is not a folder this tool wrote, and the snapshot's results "
                          f"would replace it; {_MOVE_AWAY}")
    for path in inputs:
        if is_within(path, folder):
            raise OutputError(f"{folder}: holds the input {path} and the snapshot's results would replace it; "
                              f"{_MOVE_AWAY}")
    ours = recorded_names(folder, FOLDER_RECORD) | set(names) | {FOLDER_RECORD}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.islink(path) or not os.path.isfile(path) or name not in ours:
            raise OutputError(f"{path}: not a file this tool wrote, and its folder would be replaced by the "
                              f"snapshot's results; {_MOVE_AWAY}")


def _check_results_files(out_dir, tool):
    """results.json must be this tool's (read_results says why not); results.csv and the plot are written
    with it, so without it they are someone else's."""
    json_path = os.path.join(out_dir, RESULTS_JSON)
    if os.path.lexists(json_path):
        read_results(json_path, tool)
        return
    for name in (RESULTS_CSV, ITERATION_PLOT):
        path = os.path.join(out_dir, name)
        if os.path.lexists(path):
            raise OutputError(f"{path}: exists without the {RESULTS_JSON} this tool writes beside it, so this tool "
                              f"did not write it and would overwrite it; {_MOVE_AWAY}")


def check_outputs(options, tool, pairs, snapshots, parents, file_names):
    """Refuses (OutputError) before anything is written when a snapshot folder to be replaced is not this
    tool's or holds an input, or when the results files in OUT_DIR are not this tool's. file_names: {stem:
    {kind: name}} of the files each snapshot folder will get (discovery.plan_image_names)."""
    inputs = _input_paths(options, pairs, snapshots)
    names = {name for planned in file_names.values() for name in planned.values()} | {PER_IMAGE_CSV, CONTACT_SHEET}
    for parent in parents:
        for snapshot in snapshots:
            check_replaceable(os.path.join(parent, snapshot.name), inputs, names)
    if metric_names(tool):
        _check_results_files(options.out_dir, tool)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def abs_dir_of(out_dir):
    """OUT_DIR_abs beside OUT_DIR (a trailing slash does not move it inside, unlike the original)."""
    return os.path.normpath(out_dir) + "_abs"


def write_many(pool, files):
    """Writes {path: bytes or callable -> bytes} inside a SnapshotFolder being filled, in the pool (PNG
    encoding releases the GIL): in place, since no reader sees the folder before its commit(), and durable
    (fsync) before that commit, while the pool overlaps the waits with the net."""
    def write(item):
        path, data = item
        write_durable(path, data() if callable(data) else data)
    for _ in pool.map(write, files.items()):
        pass


def write_csv(path, header, rows):
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


def _json_number(value):
    value = float(value)
    return value if math.isfinite(value) else None


def print_top(results, tool):
    """The original's printout: for each of its metrics, the top 10 snapshots, best first."""
    titles = list(GRADIENT_METRICS) if tool == "test_grad" else list(THESIS_METRICS)
    for title in titles:
        values = {name: figures[title] for name, figures in results.items()}
        ranked = metrics.rank(values, higher_is_better(title) if tool != "test_grad" else False)
        print(metrics.format_top(title, ranked, TOP_COUNT), flush=True)


def read_results(path, tool):
    """The snapshot records of the results.json this tool wrote at `path` ({} when there is none).
    OutputError for any other file there (another tool's, not JSON, another structure): it is never
    overwritten."""
    if not os.path.lexists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise OutputError(f"{path}: not a results file of {tool} ({_one_line(error)}); {_MOVE_AWAY}") from None
    if not isinstance(data, dict) or "tool" not in data or not isinstance(data.get("snapshots"), dict):
        raise OutputError(f"{path}: not a results file of {tool} (it needs 'tool' and 'snapshots' entries); "
                          f"{_MOVE_AWAY}")
    if data["tool"] != tool:
        raise OutputError(f"{path}: holds the results of {data['tool']!r}, not of {tool}; {_MOVE_AWAY}")
    bad = next((name for name, record in data["snapshots"].items() if not _is_record(record)), None)
    if bad is not None:
        raise OutputError(f"{path}: its snapshot {bad!r} is not a record this tool writes; {_MOVE_AWAY}")
    return data["snapshots"]


def _is_number(value, kind=(int, float)):
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _is_record(record):
    """A snapshot record as _record writes it, as far as the CSV and the plot read it."""
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        return False
    return (_is_number(record.get("iteration"), int) and _is_number(record.get("images"), int)
            and isinstance(record.get("series", ""), (str, type(None)))
            and all(_is_number(value) for value in record["metrics"].values()))


def update_results(options, tool, outcome, snapshot=None):
    """Rewrites results.json and results.csv: the previous runs' snapshots, this one's (if given) and this
    run's skipped snapshots."""
    path = os.path.join(options.out_dir, RESULTS_JSON)
    records = read_results(path, tool)
    names = metric_names(tool)
    if snapshot is not None:
        records[snapshot.name] = _record(options, outcome, snapshot, names)
    ordered = dict(sorted(records.items(), key=lambda item: natural_key(item[0])))
    data = {"tool": tool, "metrics": names, "higher_is_better": {m: higher_is_better(m) for m in names},
            "snapshots": ordered, "skipped": dict(outcome.skipped)}
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
    rows = []
    for name, record in ordered.items():
        figures = record.get("metrics", {})
        rows.append([name, record.get("iteration"), record.get("images")] +
                    [float("nan") if figures.get(m) is None else float(figures[m]) for m in names])
    write_csv(os.path.join(options.out_dir, RESULTS_CSV), ["snapshot", "iteration", "images"] + names, rows)


def _record(options, outcome, snapshot, names):
    images_count = len(outcome.per_image[snapshot.name][1])
    seconds = outcome.seconds[snapshot.name]
    return {
        "caffemodel": os.path.abspath(snapshot.caffemodel),
        "prototxt": os.path.abspath(snapshot.prototxt),
        "iteration": snapshot.iteration,
        "series": snapshot.series,
        "images": images_count,
        "seconds": round(seconds, 3),
        "images_per_second": round(images_count / seconds, 2) if seconds > 0 else None,
        "settings": {"log": options.log, "convention": dataclasses.asdict(outcome.conventions[snapshot.name]),
                     "gt_format": options.gt_format,
                     "output_blob": options.output_blob, "input_dir": os.path.abspath(options.input_dir),
                     "gt_dir": os.path.abspath(options.gt_dir) if options.gt_dir else None},
        "metrics": {m: _json_number(outcome.results[snapshot.name][m]) for m in names},
    }


def plot_iterations(options, tool):
    """OUT_DIR/metrics_vs_iteration.png: each metric against N for snapshots named `<series>_iter_N`, one
    line per series (oracle figures dashed)."""
    records = read_results(os.path.join(options.out_dir, RESULTS_JSON), tool)
    series = {}
    for name, record in records.items():
        if record.get("iteration") is not None:
            series.setdefault(record.get("series") or name, []).append(record)
    if not series:
        return
    from matplotlib.figure import Figure
    bases = list(GRADIENT_METRICS) if tool == "test_grad" else list(THESIS_METRICS) + list(STANDARD_METRICS)
    columns = min(5, len(bases))
    rows = -(-len(bases) // columns)
    figure = Figure(figsize=(3.6 * columns, 2.8 * rows + 0.6), dpi=72)
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=0.95, wspace=0.3, hspace=0.55)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, base in enumerate(bases):
        axis = axes[index // columns][index % columns]
        for number, (label, items) in enumerate(sorted(series.items())):
            items = sorted(items, key=lambda r: r["iteration"])
            x = [r["iteration"] for r in items]
            colour = f"C{number % 10}"
            for prefix, style in (("", "-"), (ORACLE, "--")):
                name = prefix + base
                y = [np.nan if r["metrics"].get(name) is None else r["metrics"][name] for r in items]
                if name in (items[0]["metrics"] if items else {}):
                    axis.plot(x, y, style, marker="o", markersize=3, color=colour,
                              label=f"{label}{' (oracle)' if prefix else ''}")
        axis.set_title(f"{base} ({'higher' if higher_is_better(base) else 'lower'} is better)", fontsize=9)
        axis.set_xlabel("iteration", fontsize=8)
        axis.tick_params(labelsize=7)
    for index in range(len(bases), rows * columns):
        axes[index // columns][index % columns].axis("off")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    images.write_bytes(os.path.join(options.out_dir, ITERATION_PLOT), buffer.getvalue())
