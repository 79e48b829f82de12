"""Installs eigen_depth: Caffe's depth networks on PyTorch."""
from setuptools import find_packages, setup

setup(
    name="eigen_depth",
    version="0.1.0",
    description="Run, evaluate, train and export Caffe monocular depth networks on PyTorch",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["eigen_depth", "eigen_depth.*"]),
    # The thesis's networks and solvers travel with the package (eigen_depth.prototxt.ROOT).
    package_data={"eigen_depth.prototxt": ["README.md", "*/*.prototxt", "*/*/*.prototxt"]},
    install_requires=[
        "torch>=2.1,<3",
        "numpy>=1.22,<3",
        "scipy>=1.8,<2",
        "scikit-image>=0.19,<1",
        "pypng>=0.20220715",
        "opencv-python-headless>=4.5,<5",
        "pillow>=9,<13",
        "matplotlib>=3.5,<4",
        "onnx>=1.14,<2",
        "h5py>=3.6,<4",
        "lmdb>=1.3,<3",
        "tqdm>=4.60,<5",
        "protobuf>=3.20",  # caffe.proto.caffe_pb2 under `python -m eigen_depth.pycaffe`
    ],
    extras_require={
        "test": ["pytest>=7.3", "pytest-xdist>=3", "hypothesis>=6.50", "onnxruntime>=1.16", "protobuf>=3.20",
                 "setuptools>=70.1", "pydot>=1.4"],
    },
    entry_points={"console_scripts": ["eigen-depth=eigen_depth.cli:main"]},
)
