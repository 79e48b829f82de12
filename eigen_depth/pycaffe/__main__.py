"""python -m eigen_depth.pycaffe SCRIPT.py [ARGS] | -m MODULE [ARGS]: runs an unmodified pycaffe program with
`import caffe` (and its submodules) resolving to eigen_depth.pycaffe, in this process only."""
import os
import runpy
import sys

from . import alias


PROG = "python -m eigen_depth.pycaffe"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m eigen_depth.pycaffe SCRIPT.py [ARGS] | -m MODULE [ARGS]\n"
              "Runs a pycaffe program with `import caffe` resolving to eigen_depth.")
        return 0 if argv else 2
    alias.install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(f"{PROG}: error: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = [argv[1]] + argv[2:]
        sys.path.insert(0, "")
        if _find_module(argv[1]) is None:
            print(f"{PROG}: error: no module named {argv[1]!r} (from the working folder or the installed "
                  f"packages)", file=sys.stderr)
            return 2
        return _run(lambda: runpy.run_module(argv[1], run_name="__main__", alter_sys=True), None)
    script = argv[0]
    if not os.path.isfile(script):
        print(f"{PROG}: error: {script}: no such script", file=sys.stderr)
        return 2
    sys.argv = argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    return _run(lambda: runpy.run_path(script, run_name="__main__"), script)


def _find_module(name):
    import importlib.util
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _in_program(filename, script):
    """True for a traceback frame of the program run: its script, or (for -m) any file outside this package and
    runpy."""
    path = os.path.abspath(filename)
    if script:
        return path == os.path.abspath(script)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return not path.startswith(package + os.sep) and "runpy" not in filename


def _run(program, script):
    """Runs the program; an eigen_depth error it did not catch (a file Caffe could not have read either) is one
    line naming the program's line that met it, status 2. Its own errors keep Python's traceback."""
    from ..errors import EigenDepthError, one_line
    try:
        program()
    except EigenDepthError as error:
        import traceback
        frames = [frame for frame in traceback.extract_tb(error.__traceback__) if _in_program(frame.filename, script)]
        where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
        print(f"{PROG}: error: {where}{one_line(error)}", file=sys.stderr)
        return getattr(error, "status", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
