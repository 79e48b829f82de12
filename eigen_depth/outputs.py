"""Where commands write: output names that never collide with each other, and the checks that keep a
command from overwriting one of its inputs or a file it did not write. Every check runs before the
command writes anything."""
import contextlib
import itertools
import json
import os

from .atomic import atomic_write, make_folder
from .errors import OutputError

RECORD = "eigen_depth_outputs.json"     # in an output folder: the names of the files eigen-depth wrote there
SETTINGS = ".eigen_depth_settings.json"  # in a data tool's output folder: the settings it was written with


def file_id(path):
    """(device, inode) of an existing path (links followed), else None: equal ids are the same file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def is_within(path, folder):
    """True when `path` is `folder` or lies inside it (links resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_inputs(outputs, inputs, advice):
    """OutputError naming the first input that one of `outputs` would overwrite (the same file, whatever
    the path, link or hard link that names it)."""
    ids = {}
    for path in inputs:
        ids.setdefault(file_id(path), path)
    ids.pop(None, None)
    for output in outputs:
        hit = ids.get(file_id(output))
        if hit is not None:
            named = "" if os.fspath(output) == os.fspath(hit) else f" (as {output})"
            raise OutputError(f"{hit}: is an input of this command and would be overwritten by an output{named}; "
                              f"{advice}")


def plan_names(stems, names_of, taken=()):
    """Output file names that never collide: ({stem: {kind: name}}, [renamed stems]). For each stem in
    order, names_of(stem, attempt) for the first attempt whose names differ from each other and from every
    name taken before (`taken`, then the earlier stems'); attempt 0 is the usual naming."""
    taken, plan, renamed = set(taken), {}, []
    for stem in stems:
        for attempt in itertools.count():
            names = names_of(stem, attempt)
            values = list(names.values())
            if len(set(values)) == len(values) and taken.isdisjoint(values):
                break
        if attempt:
            renamed.append(stem)
        taken.update(values)
        plan[stem] = names
    return plan, renamed


# -- the record of what eigen-depth wrote in a folder --------------------------------------------------------
def recorded_names(folder, record=RECORD):
    """The file names the folder's record lists (an empty set without a record); OutputError for a record
    that cannot be read, which is then never overwritten."""
    path = os.path.join(folder, record)
    if not os.path.lexists(path):
        return set()
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise OutputError(f"{path}: not a record of eigen-depth's outputs ({' '.join(str(error).split())}); "
                          f"move it away or choose another output folder") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise OutputError(f"{path}: not a record of eigen-depth's outputs (no list of 'files'); move it away or "
                          f"choose another output folder")
    return set(files)


def refuse_foreign(folder, names, advice):
    """OutputError naming the first of `names` that exists in `folder` without being in its record (a
    file this tool did not write there)."""
    ours = recorded_names(folder) if os.path.isdir(folder) else set()
    for name in names:
        path = os.path.join(folder, name)
        if os.path.lexists(path) and name not in ours:
            raise OutputError(f"{path}: exists and was not written by eigen-depth; {advice}")


class OutputRecord:
    """An output folder made (when missing) and its record extended with `names` before a run writes them;
    undo() puts both back as they were, for a run that ends having written nothing."""

    def __init__(self, folder, names):
        self.folder, self.existed = folder, os.path.isdir(folder)
        path = os.path.join(folder, RECORD)
        self.previous = None
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                self.previous = handle.read()
        make_folder(folder)
        record_names(folder, names)

    def undo(self):
        path = os.path.join(self.folder, RECORD)
        if self.previous is None:
            os.unlink(path)
        else:
            with atomic_write(path) as handle:
                handle.write(self.previous)
        if not self.existed:
            with contextlib.suppress(OSError):  # left where something else was written there meanwhile
                os.rmdir(self.folder)


def record_names(folder, names, record=RECORD):
    """Adds `names` to the folder's record. Called before the files are written, so that the files of an
    interrupted run are still recognised as this tool's."""
    known = recorded_names(folder, record)
    data = {"written_by": "eigen-depth", "files": sorted(known | set(names))}
    with atomic_write(os.path.join(folder, record), "w") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")


def output_name(stem, kind, attempt=0):
    """The original's output names: `a_colors` -> `a_depth` / `a_gt` / `a_grad1`; a stem without
    `_colors` gets `colors` replaced, or `_<kind>` appended (the original would have overwritten the
    input's own output there). When that name is taken (attempt 1, 2, ...): `a_colors_depth`,
    `a_colors_depth_2`, ..."""
    if attempt:
        return f"{stem}_{kind}" + (f"_{attempt}" if attempt > 1 else "")
    if "_colors" in stem:
        return stem.replace("_colors", "_" + kind)
    if "colors" in stem:
        return stem.replace("colors", kind)
    return f"{stem}_{kind}"


# -- the settings a data tool wrote a folder with ---------------------------------------------------------------
def earlier_settings(folder, tool, settings, overwrite):
    """For a data tool that skips the outputs already in `folder` (so that a rerun resumes where one stopped):
    the settings its hidden record (SETTINGS) says the folder was written with, when they differ from
    `settings`; None for a folder without a record or written with the same. Files of other settings are
    another data set's, which a rerun would mix with its own: OutputError unless `overwrite` (the caller then
    removes the earlier outputs it knows of, and record_settings comes before anything is written)."""
    path = os.path.join(folder, SETTINGS)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        earlier = {"tool": data["tool"], **data["settings"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OutputError(f"{path}: not a record of a data tool's settings ({' '.join(str(error).split())}); "
                          f"move it away or choose another output folder") from None
    now = json.loads(json.dumps({"tool": tool, **settings}))
    if earlier == now:
        return None
    if not overwrite:
        changed = ", ".join(f"{key} {earlier.get(key)!r} (now {now.get(key)!r})"
                            for key in sorted(set(earlier) | set(now)) if earlier.get(key) != now.get(key))
        raise OutputError(f"{folder}: holds outputs written with other settings ({changed}), which this run would "
                          f"mix with its own; choose another output folder, or pass --overwrite to replace them")
    return earlier


def record_settings(folder, tool, settings):
    """Writes the folder's record of the settings `tool` writes it with (see earlier_settings)."""
    with atomic_write(os.path.join(folder, SETTINGS), "w") as handle:
        json.dump({"written_by": "eigen-depth", "tool": tool, "settings": settings}, handle, indent=1)
        handle.write("\n")


def forget_settings(folder):
    """Removes the folder's record of settings (before files that must agree with each other are rewritten)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, SETTINGS))
