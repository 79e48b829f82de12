"""python -m eigen_depth.pycaffe SCRIPT.py [ARGS] | -m MODULE [ARGS]: runs an unmodified pycaffe program with
`import caffe` (and its submodules) resolving to eigen_depth.pycaffe, in this process only."""
import runpy
import sys

from . import alias


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m eigen_depth.pycaffe SCRIPT.py [ARGS] | -m MODULE [ARGS]\n"
              "Runs a pycaffe program with `import caffe` resolving to eigen_depth.")
        return 0 if argv else 2
    alias.install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print("python -m eigen_depth.pycaffe: error: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = [argv[1]] + argv[2:]
        sys.path.insert(0, "")
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    import os
    script = argv[0]
    if not os.path.isfile(script):
        print(f"python -m eigen_depth.pycaffe: error: {script}: no such script", file=sys.stderr)
        return 2
    sys.argv = argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
