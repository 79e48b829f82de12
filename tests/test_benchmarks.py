"""The benchmark scripts: what they leave behind."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_NET = """name: "tiny"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 16 } } }
layer { name: "conv" type: "Convolution" bottom: "X" top: "depth"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "depth" top: "depth" }
"""


def test_forward_benchmark_times_the_three_runtimes_and_removes_its_weights_and_export(tmp_path):
    model, scratch = tmp_path / "tiny.prototxt", tmp_path / "scratch"
    model.write_text(TINY_NET)
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "forward.py"), "--model", str(model),
                           "--batches", "1,2", "--iterations", "1", "--layout", "nchw"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:  # ours, OpenCV's, their ratio and onnxruntime's s/image (a tiny net's may print as 0)
        assert float(row[1]) > 0 and min(map(float, row[2:5])) >= 0
        assert float(row[row.index("difference") + 1]) <= 1e-5  # of the output's magnitude, against OpenCV
    assert not list(scratch.glob("eigen_depth_forward_*"))  # its random caffemodel and ONNX export are gone
