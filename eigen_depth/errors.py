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


class OutputError(EigenDepthError):
    """An output path that is one of the command's inputs or a file it did not write: nothing is written."""


def one_line(error):
    """An error's text on one line, whatever line breaks a file name or a quoted token holds."""
    return " ".join(str(error).splitlines())


def exit_status(prog, action, interrupted="interrupted"):
    """Runs action() for a command-line tool: its return value (or 0) as the exit status; an error a
    user can cause (the project's errors, a file the OS refuses) is one line on stderr and status 2."""
    import sys
    try:
        return action() or 0
    except EigenDepthError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
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
