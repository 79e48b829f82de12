"""The training log: Caffe-style display lines, a CSV row per iteration, a loss-curve PNG, and a resumed run
that keeps the rows before its starting iteration."""
import csv

from PIL import Image

from eigen_depth.training_log import TrainingLog


def feed(log, iterations):
    for iteration in iterations:
        log("iteration", iteration, {"loss": 10.0 / iteration, "smoothed_loss": 8.0 / iteration, "lr": 0.01})


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def rows(folder):
    return rows_of(folder / "train_log.csv")


def test_display_lines_every_n_iterations_and_test_results(tmp_path, capsys):
    log = TrainingLog(str(tmp_path), 4, progress=False, tensorboard=False, display=2)
    feed(log, range(1, 5))
    log("test", 4, {"test0/loss": 0.5})
    log.close()
    assert capsys.readouterr().out.splitlines() == [
        "Iteration 2 (lr = 0.01), loss = 4", "Iteration 4 (lr = 0.01), loss = 2",
        "Iteration 4, testing: test0/loss = 0.5"]


def test_csv_has_a_row_per_iteration_and_the_curve_is_a_png(tmp_path):
    log = TrainingLog(str(tmp_path), 3, progress=False, tensorboard=False)
    feed(log, range(1, 4))
    curve = log.close()
    assert [(r["iteration"], float(r["loss"]), float(r["smoothed_loss"])) for r in rows(tmp_path)] == \
        [("1", 10.0, 8.0), ("2", 5.0, 4.0), ("3", 10.0 / 3, 8.0 / 3)]
    assert Image.open(curve).format == "PNG"


def test_resumed_log_keeps_the_rows_before_the_resumed_iteration(tmp_path):
    first = TrainingLog(str(tmp_path), 6, progress=False, tensorboard=False)
    feed(first, range(1, 6))  # iterations 4 and 5 happened after the snapshot at 3
    first.close()
    resumed = TrainingLog(str(tmp_path), 6, start_iteration=3, progress=False, tensorboard=False)
    feed(resumed, range(4, 7))
    resumed.close()
    assert [r["iteration"] for r in rows(tmp_path)] == ["1", "2", "3", "4", "5", "6"]


def test_the_loss_plot_leaves_matplotlibs_global_state_alone(tmp_path, monkeypatch):
    import cv2
    import matplotlib

    from eigen_depth.training_log import plot_loss_curve

    def refuse(*args, **kwargs):
        raise AssertionError("library code switched matplotlib's process-wide backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    backend = matplotlib.get_backend()
    rows = [{"iteration": str(i), "loss": str(10.0 / i), "smoothed_loss": str(10.0 / i)} for i in range(1, 30)]
    path = plot_loss_curve(rows, [(10, {"test loss": 1.5})], str(tmp_path / "loss.png"))
    image = cv2.imread(path)
    assert image.shape == (400, 700, 3) and image.std() > 0
    assert matplotlib.get_backend() == backend


def test_a_hand_edited_row_does_not_stop_a_resume(tmp_path, capsys):
    (tmp_path / "train_log.csv").write_text(
        "iteration,loss,smoothed_loss,lr,seconds\n1,5.0,5.0,0.01,0.1\n2,oops,4.0,0.01,0.2\n3,3.0,3.5,0.01,0.3\n"
        "4,2.0\n")
    log = TrainingLog(tmp_path, total_iterations=6, start_iteration=4, progress=False, tensorboard=False)
    feed(log, [5])
    log.close()
    assert [row["iteration"] for row in rows(tmp_path)] == ["1", "3", "5"]
    err = capsys.readouterr().err
    assert "skipped rows that are not numbers (lines 3, 5)" in err and err.count("\n") == 1


def test_a_fresh_run_in_a_folder_with_another_runs_log_keeps_that_log_under_a_numbered_name(tmp_path, capsys):
    # two snapshot prefixes in one folder share it for their logs: each new run keeps the one before
    for count in (2, 3, 4):
        log = TrainingLog(str(tmp_path), count, progress=False, tensorboard=False)
        feed(log, range(1, count + 1))
        log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "loss_curve.1.png", "loss_curve.2.png", "loss_curve.png", "train_log.1.csv", "train_log.2.csv",
        "train_log.csv"]
    assert [len(rows_of(tmp_path / name)) for name in ("train_log.1.csv", "train_log.2.csv", "train_log.csv")] == \
        [2, 3, 4]
    assert "kept as train_log.2.csv, loss_curve.2.png" in capsys.readouterr().out
    # a resumed run continues the log it finds
    resumed = TrainingLog(str(tmp_path), 6, start_iteration=4, progress=False, tensorboard=False)
    feed(resumed, range(5, 7))
    resumed.close()
    assert [r["iteration"] for r in rows(tmp_path)] == ["1", "2", "3", "4", "5", "6"]
    assert not (tmp_path / "train_log.3.csv").exists()
