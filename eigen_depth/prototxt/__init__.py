"""The thesis's networks and solvers as Caffe prototxt files, shipped with the package.

ROOT is the folder holding one subfolder per family (global_context, gradient, joint, refining), each with
its solver(s) and one folder per loss variant with `net_train.prototxt` and `net_deploy.prototxt`;
`eigen-depth nets` lists them. README.md in this folder documents the blobs, losses and choices.
"""
import os

ROOT = os.path.dirname(os.path.abspath(__file__))

FAMILIES = ("global_context", "gradient", "joint", "refining")
# the thesis's successors (docs/successors.md): net_train, net_deploy and solver in one folder each
SUCCESSORS = ("fcrn", "densedepth")


def listing():
    """Every shipped solver and network, one path per line, grouped by family."""
    lines = [f"networks shipped with eigen_depth: {ROOT}"]
    for family in FAMILIES:
        folder = os.path.join(ROOT, family)
        lines.append(f"{family}:")
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.endswith(".prototxt"):
                lines.append(f"  solver   {path}")
            elif os.path.isdir(path):
                for net in ("net_train.prototxt", "net_deploy.prototxt"):
                    if os.path.isfile(os.path.join(path, net)):
                        lines.append(f"  {name:<8} {os.path.join(path, net)}")
    for family in SUCCESSORS:
        lines.append(f"{family}:")
        for name in sorted(os.listdir(os.path.join(ROOT, family))):
            if name.endswith(".prototxt"):
                lines.append(f"  {name[:-len('.prototxt')]:<12} {os.path.join(ROOT, family, name)}")
    return "\n".join(lines)
