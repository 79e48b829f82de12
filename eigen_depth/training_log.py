"""What a training run shows and leaves behind: a progress bar (iteration, loss, lr, it/s), a CSV log,
TensorBoard event files when tensorboard is installed, and a loss-curve PNG at the end.

Each piece is a solver callback `callback(event, iteration, values)` with events "iteration", "test" and
"snapshot"; `TrainingLog` bundles them and writes only on rank 0 under torch.distributed.
"""
import csv
import os
import time

from .atomic import atomic_write, make_folder

COLUMNS = ("iteration", "loss", "smoothed_loss", "lr", "seconds")


def read_earlier_rows(path, start_iteration):
    """The rows of a resumed run's train_log.csv up to its starting iteration. Rows that do not read as
    numbers (a hand edit, a cut-off last line) are skipped with a warning naming their lines, never a stop."""
    rows, skipped = [], []
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        for line, row in enumerate(csv.DictReader(handle), 2):
            try:
                iteration = int(row["iteration"])
                for key in COLUMNS[1:]:
                    float(row[key])
            except (KeyError, TypeError, ValueError):
                skipped.append(str(line))
                continue
            if iteration <= start_iteration:
                rows.append({key: row[key] for key in COLUMNS})
    if skipped:
        from .errors import warn
        from .inputs import listing
        warn(f"{path}: skipped rows that are not numbers (lines {listing(skipped)}); the others are kept")
    return rows


LOG_FILES = ("train_log.csv", "loss_curve.png", "tensorboard")   # what a run's log leaves in its folder


def keep_earlier_log(folder):
    """Moves the log files of an earlier run in `folder` (a fresh run sharing it, as two snapshot prefixes in one
    folder do) to numbered names, `train_log.1.csv` and so on with the first number none of them has; returns
    the new names."""
    present = [name for name in LOG_FILES if os.path.lexists(os.path.join(folder, name))]
    if not present:
        return []

    def numbered(name, number):
        stem, ext = os.path.splitext(name)
        return f"{stem}.{number}{ext}"
    number = 1
    while any(os.path.lexists(os.path.join(folder, numbered(name, number))) for name in LOG_FILES):
        number += 1
    for name in present:
        os.replace(os.path.join(folder, name), os.path.join(folder, numbered(name, number)))
    return [numbered(name, number) for name in present]


class TrainingLog:
    """Progress bar + CSV (`train_log.csv`) + TensorBoard (`tensorboard/`) + `loss_curve.png` in `folder`."""

    def __init__(self, folder, total_iterations, start_iteration=0, rank=0, progress=True, tensorboard=True,
                 display=0):
        self.folder, self.rank, self.display = folder, rank, display
        self.rows = []
        self.tests = []
        self.started = time.perf_counter()
        self.start_iteration = start_iteration
        self.bar = None
        self.writer = None
        self._csv = None
        self._options = (total_iterations, progress, tensorboard)
        if rank != 0:
            return
        self.csv_path = os.path.join(folder, "train_log.csv")
        resuming = start_iteration > 0 and os.path.exists(self.csv_path)
        if resuming:
            self.rows = read_earlier_rows(self.csv_path, start_iteration)

    def _open(self):
        """The CSV (with a resumed run's earlier rows), the bar and TensorBoard, at the run's first event: a
        run stopped before it starts (such as one refusing to overwrite an earlier run) leaves the folder as
        it was."""
        total_iterations, progress, tensorboard = self._options
        make_folder(self.folder)
        if self.start_iteration == 0:
            kept = keep_earlier_log(self.folder)
            if kept:
                print(f"{self.folder}: the log of an earlier run there kept as {', '.join(kept)}", flush=True)
        # the earlier rows are rewritten under a temporary name first: a crash now cannot lose them
        with atomic_write(self.csv_path, "w") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(COLUMNS)
            for row in self.rows:
                writer.writerow([row[key] for key in COLUMNS])
        self._csv = open(self.csv_path, "a", newline="")
        self._csv_writer = csv.writer(self._csv)
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total_iterations, initial=self.start_iteration, unit="it", dynamic_ncols=True,
                            desc="train")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(os.path.join(self.folder, "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def __call__(self, event, iteration, values):
        if self.rank != 0:
            return
        if self._csv is None:
            self._open()
        if event == "iteration":
            seconds = time.perf_counter() - self.started
            row = {"iteration": iteration, "loss": values["loss"], "smoothed_loss": values["smoothed_loss"],
                   "lr": values["lr"], "seconds": round(seconds, 3)}
            self.rows.append(row)
            self._csv_writer.writerow([row[k] for k in COLUMNS])
            self._csv.flush()
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{values['smoothed_loss']:.4g}", lr=f"{values['lr']:.3g}", refresh=False)
                self.bar.update(1)
            if self.display and iteration % self.display == 0:  # Caffe's `display` lines
                self._say(f"Iteration {iteration} (lr = {values['lr']:.4g}), loss = {values['smoothed_loss']:.6g}")
            if self.writer is not None:
                self.writer.add_scalar("train/loss", values["loss"], iteration)
                self.writer.add_scalar("train/lr", values["lr"], iteration)
        elif event == "test":
            self.tests.append((iteration, values))
            if self.writer is not None:
                for name, value in values.items():
                    self.writer.add_scalar(name, value, iteration)
            if values:
                self._say(f"Iteration {iteration}, testing: " + ", ".join(f"{k} = {v:.5g}" for k, v in values.items()))
        elif event == "snapshot":
            self._say(f"Iteration {iteration}: snapshot {values['caffemodel']}")

    def _say(self, line):
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self):
        """Finishes the bar, closes the files and draws loss_curve.png; returns its path (rank 0)."""
        if self.rank != 0 or self._csv is None:   # nothing happened: nothing to write
            return None
        if self.bar is not None:
            self.bar.close()
        self._csv.close()
        if self.writer is not None:
            self.writer.close()
        return plot_loss_curve(self.rows, self.tests, os.path.join(self.folder, "loss_curve.png"))


def plot_loss_curve(rows, tests, path, title="training loss"):
    """Loss (raw and smoothed) against iteration, test values as markers; written atomically."""
    from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend and state stay untouched
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    if rows:
        import numpy as np
        iterations = [int(r["iteration"]) for r in rows]
        losses = np.array([float(r["loss"]) for r in rows])
        axes.plot(iterations, losses, color="0.75", linewidth=0.8, label="loss")
        window = max(1, min(len(losses) // 10, 100))
        if window > 1:  # a running mean shows the trend even when the solver's average_loss is 1
            running = np.convolve(losses, np.ones(window) / window, mode="valid")
            axes.plot(iterations[window - 1:], running, color="C0", label=f"running mean ({window} iterations)")
        else:
            axes.plot(iterations, [float(r["smoothed_loss"]) for r in rows], color="C0", label="smoothed loss")
    for name in sorted({k for _, values in tests for k in values}):
        points = [(it, values[name]) for it, values in tests if name in values]
        axes.plot([p[0] for p in points], [p[1] for p in points], "o-", markersize=3, label=name)
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if rows or tests:
        axes.legend()
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path
