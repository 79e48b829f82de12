"""The package as a user installs it: a wheel built from the checkout, installed into a fresh virtual
environment outside it, trains the thesis's staged pipeline with the networks it ships and evaluates the
snapshot. Nothing from the checkout is importable there: the dependencies come from this environment's
site-packages, eigen_depth only from the wheel."""
import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIPPED = (".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "demo",
           "examples", "out", "train_out", "learning", "global_losses")


def run(command, cwd, **kwargs):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, command))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_a_wheel_installed_elsewhere_trains_the_stages_and_evaluates(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*SKIPPED))
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(tmp_path / "wheel")], cwd=tmp_path)
    (wheel,) = glob.glob(str(tmp_path / "wheel" / "eigen_depth-*.whl"))

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip()
    # the dependencies (torch, OpenCV, ...) from here; a path line adds the folder without running the
    # editable-install hooks inside it, so the checkout's eigen_depth stays invisible
    with open(os.path.join(site, "dependencies.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel], cwd=tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH="", PYTHONNOUSERSITE="1")
    where = run([python, "-c", "import eigen_depth.prototxt as p; print(p.ROOT)"], cwd=work, env=env).strip()
    assert where.startswith(site) and os.path.isfile(os.path.join(where, "refining", "norm_abs", "net_deploy.prototxt"))

    tool = str(venv / "bin" / "eigen-depth")
    run([tool, "train", "--stage", "all", "--data", "synthetic", "--iters", "1", "--batch", "1", "--out", "out",
         "--device", "cpu", "--no-progress"], cwd=work, env=env)
    snaps = work / "out" / "refine" / "snaps"
    assert (snaps / "_iter_1.caffemodel").is_file() and (snaps / "_iter_1.prototxt").is_file()

    run([python, "-c", "from eigen_depth.data.synthetic import make_synthetic; make_synthetic(3, 'pairs', seed=5)"],
        cwd=work, env=env)
    pairs = work / "pairs" / "test" if (work / "pairs" / "test").is_dir() else work / "pairs"
    run([tool, "test-depth", str(pairs), str(pairs), "evaluation", str(snaps), "--device", "cpu", "--no-progress",
         "--no-images"], cwd=work, env=env)
    with open(work / "evaluation" / "results.json") as handle:
        results = json.load(handle)
    assert "_iter_1" in json.dumps(results)
