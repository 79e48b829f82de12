"""The project's exception types: each names the file, line or layer at fault and says what to do."""


class EigenDepthError(Exception):
    """Base of every error a user can cause; the CLI prints it as one line and exits with status 2."""


class PrototxtError(EigenDepthError):
    """A text-format file (prototxt, solver) that cannot be parsed or names unknown fields."""


class CaffemodelError(EigenDepthError):
    """A binary protobuf file (caffemodel, solverstate, binaryproto) that is truncated or corrupt."""


class ShapeError(EigenDepthError):
    """Shapes that do not fit: a layer's input, a weight blob, a network input."""


class LayerError(EigenDepthError):
    """A layer definition the runtime cannot build (unknown type, bad parameter, missing bottom)."""


class DatasetError(EigenDepthError):
    """Input data that is missing, unreadable or unpaired."""


class PartialError(EigenDepthError):
    """Some of the work was done and written, some could not be (each named): exit status 1."""
    status = 1


class OutputError(EigenDepthError):
    """An output path that is one of the command's inputs or a file it did not write: nothing is written."""


def one_line(error):
    """An error's text on one line, whatever line breaks a file name or a quoted token holds; bytes that
    are not UTF-8 (kept in names as surrogate escapes) shown as \\xNN, so the line can always be printed."""
    text = " ".join(str(error).splitlines())
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def quiet_libraries():
    """Keeps the libraries' own log and warning lines off a command's stderr, where they would precede or
    bury the command's one-line error: OpenCV's native log (a WARN line for every undecodable image) and
    Python warnings (run `python -W default -m eigen_depth ...` to see them). The command's own warnings
    are printed by warn(), not through the warnings module."""
    import os
    import sys
    import warnings
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # read when cv2 loads, here and in worker processes
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    if not sys.warnoptions:
        warnings.simplefilter("ignore")


def exit_status(prog, action, interrupted="interrupted"):
    """Runs action() for a command-line tool: its return value (or 0) as the exit status; an error a
    user can cause (the project's errors, a file the OS refuses) is one line on stderr and status 2.
    The libraries stay quiet (quiet_libraries)."""
    import sys
    quiet_libraries()
    try:
        return action() or 0
    except EigenDepthError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return getattr(error, "status", 2)
    except BrokenPipeError:  # `eigen-depth info ... | head`: the reader left; stop quietly as other tools do
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"{prog}: error: {one_line(where + str(error.strerror or error))}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
    return 2


def warn(message):
    """A warning line on stderr (the command goes on)."""
    import sys
    print(f"warning: {message}", file=sys.stderr, flush=True)
