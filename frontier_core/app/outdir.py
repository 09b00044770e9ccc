"""Results folders: where a command may write, and how it replaces what it wrote before.

Every command that writes a folder of results (``frontier run``, ``sweep``, ``report``,
``predictors train``, ``profile``) goes through this module, so that Frontier never
deletes a file it did not write:

- A folder Frontier creates holds ``MARKER`` (``.frontier-results.json``): the version,
  the kind of results (``"run"``, ``"sweep"``, ``"report"``, ...) and the top-level
  entries Frontier wrote there.
- ``check`` runs before any long work: a path that does not exist, an empty folder
  or a results folder of the same kind is fine; anything else is a ``ConfigError``.
  A results folder of another kind needs ``overwrite=True``; a folder Frontier did
  not write is never replaced.
- ``write`` builds the results in a hidden temporary folder and then renames it
  into place (a new path, atomically) or swaps it in entry by entry (an existing
  folder, which may be the current directory): only the entries the old marker
  lists are deleted, so files a user added survive; the marker is written last.
- ``claim`` is for a folder filled in place over time (a sweep): it checks, clears
  a results folder of another kind (when allowed) and writes the marker up front.
- ``check_file``/``write_file`` do the same for a single file (``frontier plan -o``):
  its first line says which command wrote it, and only such a file is replaced
  without ``overwrite``.

Temporary folders carry a ``PARTIAL`` file from the moment they are made, naming the
process that writes them (pid and host), so that ``clear_partial`` removes only what an
interrupted write of Frontier's left behind, and only once its writer has gone: the next
``write`` or ``claim`` near it clears what a hard kill left (never a folder another
Frontier process is writing right now).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from frontier_core.errors import ConfigError

MARKER = ".frontier-results.json"
PARTIAL = ".frontier-partial"  # inside every temporary folder until it is moved into place
_TMP = ".frontier-tmp."  # temporary folders inside an existing results folder
_OLD = ".frontier-old."  # the previous entries, moved aside during a swap
_SHOWN = 6  # entries named in an error message
GITIGNORE = ".gitignore"  # in a folder Frontier names itself (pytest's cache folder has one too)
_IGNORE_ALL = "# written by frontier: results, not sources\n*\n"


@dataclass(frozen=True)
class Marker:
    """What a results folder's marker says: the kind of results and the top-level
    entries (file and folder names) Frontier wrote there."""

    kind: str
    entries: tuple[str, ...]
    version: str = ""


def _plain(name: object) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..", MARKER)
            and "/" not in name and "\\" not in name)


def read_marker(path: str | Path) -> Marker | None:
    """The marker of the folder ``path``; None when it has none."""
    f = Path(path) / MARKER
    if not f.is_file():
        return None
    try:
        doc = json.loads(f.read_text())
        kind, entries = doc["kind"], doc["entries"]
        if not isinstance(kind, str) or not isinstance(entries, list):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{str(f)!r} is not a readable Frontier results marker, so Frontier cannot tell "
            "which files in that folder it wrote and will not replace any of them. Choose "
            "another output folder, or delete the marker and the results yourself."
        ) from None
    # Names only, never paths: a marker can only ever delete entries of its own folder.
    return Marker(kind, tuple(e for e in entries if _plain(e)), str(doc.get("frontier_version", "")))


def _write_marker(path: Path, kind: str, entries: Iterable[str]) -> None:
    from frontier_core._version import __version__

    doc = {"frontier_version": __version__, "kind": kind, "entries": sorted(set(entries))}
    tmp = path / (MARKER + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path / MARKER)  # a marker is whole or absent


def _is_partial(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink() and (p / PARTIAL).is_file()


def _writer_gone(p: Path) -> bool:
    """Whether the process that made the temporary folder ``p`` has ended (a folder
    whose ``PARTIAL`` names no writer predates the record: its writer is gone too)."""
    try:
        doc = json.loads((p / PARTIAL).read_text() or "{}")
        pid, host = int(doc["pid"]), doc["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    if host != socket.gethostname() or pid == os.getpid():
        return False  # another machine's (shared folder): cannot tell; or this process's
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. another user's process: alive
        return False
    return False


def _leftover(p: Path) -> bool:
    """A temporary folder an interrupted write left inside a results folder."""
    return p.name.startswith((_TMP, _OLD, MARKER + ".tmp")) and (
        _is_partial(p) or p.name == MARKER + ".tmp")


def _show(path: Path, names: Iterable[str]) -> str:
    names = sorted(names)
    shown = [n + ("/" if (path / n).is_dir() else "") for n in names[:_SHOWN]]
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(shown) + more


def _foreign(path: Path, marker: Marker | None) -> list[str]:
    """The entries of ``path`` that Frontier did not write (its marker does not list them)."""
    listed = set(marker.entries) if marker else set()
    return [e.name for e in path.iterdir()
            if e.name != MARKER and e.name not in listed and not _leftover(e)]


def check(path: str | Path, kind: str, overwrite: bool = False, *,
          option: str = "-o/--output") -> Path:
    """Check, before any long work, that results of ``kind`` may be written at ``path``;
    returns the resolved path. ``option`` names the flag (or config field) that gave the
    path, for the error message. Raises ``ConfigError`` when ``path`` is a file, a folder
    Frontier did not write (non-empty, no marker: never allowed) or a results folder of
    another kind (allowed with ``overwrite``)."""
    shown = str(path)
    p = Path(path).expanduser().resolve()
    if not p.exists():
        up = p.parent
        while not up.exists():
            up = up.parent
        if not up.is_dir():
            raise ConfigError(
                f"Output folder {shown!r} cannot be created: {str(up)!r} is a file, not a "
                f"folder. Choose another {option}."
            )
        _writable(up, shown, option)
        return p
    if not p.is_dir():
        raise ConfigError(
            f"Output path {shown!r} exists and is not a directory: Frontier writes a folder of "
            f"results there and will not replace a file. Choose another {option}: a new or "
            "empty folder."
        )
    _writable(p, shown, option)
    marker = read_marker(p)
    if marker is None:
        foreign = _foreign(p, None)
        if foreign:
            n = len(foreign)
            raise ConfigError(
                f"Output folder {shown!r} holds {n} entr{'y' if n == 1 else 'ies'} Frontier did "
                f"not write: {_show(p, foreign)}. Frontier will not replace or delete them "
                f"(--overwrite does not change that). Choose another {option}: a new folder, an "
                "empty one, or results Frontier wrote before."
            )
        return p
    if marker.kind != kind and not overwrite:
        raise ConfigError(
            f"Output folder {shown!r} holds the results of `frontier {_command(marker.kind)}`, "
            f"not of `frontier {_command(kind)}`; writing there would delete them "
            f"({_show(p, [e for e in marker.entries if (p / e).exists()]) or 'nothing left'}). "
            f"Choose another {option}, or pass --overwrite to replace those results."
        )
    return p


def _writable(folder: Path, shown: str, option: str) -> None:
    """A ``ConfigError`` unless a new entry can be made in ``folder`` (tried, not
    guessed from permissions: a read-only mount or /proc refuses even root)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".frontier-probe.", dir=folder))
    except OSError as e:
        raise ConfigError(
            f"Cannot write to {option} {shown!r}: the folder {str(folder)!r} does not accept "
            f"new files ({e.strerror or e}). Choose another {option}, a folder you can "
            "write to."
        ) from None


def _command(kind: str) -> str:
    return kind.replace("-", " ")


def _mkdtemp(parent: Path, prefix: str) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; results are ordinary files
    (tmp / PARTIAL).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    return tmp


def _entries(tmp: Path) -> list[str]:
    names = [e.name for e in tmp.iterdir() if e.name != PARTIAL]
    bad = [n for n in names if n == MARKER or n.startswith((_TMP, _OLD))]
    if bad:
        raise ValueError(f"a results writer wrote {bad[0]!r}, a name Frontier keeps for itself")
    return names


def write(path: str | Path, kind: str, writer: Callable[[Path], object],
          overwrite: bool = False, *, option: str = "-o/--output",
          gitignore: bool = False) -> Path:
    """Write results of ``kind`` at ``path``: ``writer(folder)`` writes every file into a
    temporary folder, which then becomes ``path``. Nothing is left behind when ``writer``
    fails. An existing folder (empty, or results: ``check`` decides) is updated in place:
    the entries its marker lists are replaced, every other entry is kept. ``gitignore``
    (for a folder the user did not name): a new folder gets a ``.gitignore`` of ``*``,
    listed with the rest and kept by later writes. Returns the resolved path."""
    p = check(path, kind, overwrite, option=option)
    old = read_marker(p) if p.is_dir() else None
    if (gitignore and not p.exists()) or (old is not None and GITIGNORE in old.entries):
        inner = writer

        def writer(tmp: Path) -> None:
            inner(tmp)
            (tmp / GITIGNORE).write_text(_IGNORE_ALL)

    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        clear_partial(p.parent)  # what an earlier write killed here left beside it
        # A sibling with a hidden name derived from the resolved one (never ``..old``).
        tmp = _mkdtemp(p.parent, f".{p.name}{_TMP}")
        try:
            writer(tmp)
            _write_marker(tmp, kind, _entries(tmp))
            (tmp / PARTIAL).unlink()
            os.replace(tmp, p)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed
        return p
    clear_partial(p)
    tmp = _mkdtemp(p, _TMP)
    try:
        writer(tmp)
        _swap(p, tmp, kind, _entries(tmp), option)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return p


def _swap(p: Path, tmp: Path, kind: str, new: list[str], option: str) -> None:
    """Replace the entries of ``p`` its marker lists by the entries of ``tmp``."""
    marker = read_marker(p)
    old = [e for e in (marker.entries if marker else ()) if os.path.lexists(p / e)]
    clash = sorted(set(new) & set(_foreign(p, marker)))
    if clash:
        raise ConfigError(
            f"Output folder {str(p)!r} holds {_show(p, clash)}, which Frontier did not write "
            f"and would have to replace with new results. Move {'it' if len(clash) == 1 else 'them'} "
            f"away, or choose another {option}."
        )
    # Claim the union first: if this process dies mid-swap, the next write still knows
    # every entry that came from Frontier.
    _write_marker(p, kind, [*old, *new])
    aside = _mkdtemp(p, _OLD)
    moved_old: list[str] = []
    moved_new: list[str] = []
    restored = True
    try:
        for name in old:
            os.replace(p / name, aside / name)
            moved_old.append(name)
        for name in new:
            os.replace(tmp / name, p / name)
            moved_new.append(name)
        _write_marker(p, kind, new)
    except BaseException:
        # Best effort, entry by entry: put the previous results back.
        for src, dst in [*((p / n, tmp / n) for n in reversed(moved_new)),
                         *((aside / n, p / n) for n in reversed(moved_old))]:
            try:
                os.replace(src, dst)
            except OSError:
                restored = False
        with contextlib.suppress(OSError):
            if marker is not None:
                _write_marker(p, marker.kind, marker.entries)
            else:
                (p / MARKER).unlink(missing_ok=True)
        raise
    finally:
        if restored:  # else the old results stay in the hidden folder, for the user to see
            shutil.rmtree(aside, ignore_errors=True)


def claim(path: str | Path, kind: str, entries: Iterable[str], overwrite: bool = False, *,
          option: str = "-o/--output", gitignore: bool = False) -> Path:
    """Make ``path`` a results folder of ``kind`` that will be written in place (a sweep
    adds to its folder run by run). Checks as ``check`` does; a results folder of another
    kind (only with ``overwrite``) loses the entries its marker lists. The marker lists
    ``entries`` plus what it listed before. ``gitignore`` (for a folder the user did not
    name): a new folder gets a ``.gitignore`` of ``*``, as ``write`` gives one. Returns
    the resolved path."""
    p = check(path, kind, overwrite, option=option)
    new = not p.exists()
    p.mkdir(parents=True, exist_ok=True)
    clear_partial(p)
    marker = read_marker(p)
    entries = list(entries)
    clash = sorted(set(entries) & set(_foreign(p, marker)))
    if clash:
        raise ConfigError(
            f"Output folder {str(path)!r} holds {_show(p, clash)}, which Frontier did not "
            f"write and would overwrite. Move {'it' if len(clash) == 1 else 'them'} away, or "
            f"choose another {option}."
        )
    previous: list[str] = []
    if marker is not None and marker.kind == kind:
        previous = list(marker.entries)
    elif marker is not None:
        _write_marker(p, kind, [*marker.entries, *entries])
        aside = _mkdtemp(p, _OLD)
        try:
            for name in marker.entries:
                if os.path.lexists(p / name):
                    os.replace(p / name, aside / name)
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    if gitignore and new:
        (p / GITIGNORE).write_text(_IGNORE_ALL)
        entries.append(GITIGNORE)
    _write_marker(p, kind, [*previous, *entries])
    return p


def clear_partial(folder: str | Path) -> None:
    """Delete the temporary folders an interrupted write left in ``folder``: its own
    (inside a results folder) and the hidden siblings that were to become
    ``folder/<name>``. Only folders holding ``PARTIAL`` whose writer has gone are
    touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for e in folder.iterdir():
        ours = e.name.startswith((_TMP, _OLD)) or (e.name.startswith(".") and _TMP in e.name)
        if ours and _is_partial(e) and _writer_gone(e):
            shutil.rmtree(e, ignore_errors=True)


# ---- single files (``frontier plan -o FILE``) ------------------------------------------


def file_header(command: str) -> str:
    """The first line of a file ``frontier <command>`` writes (a YAML/shell comment)."""
    return f"# written by frontier {command}\n"


def check_file(path: str | Path, command: str, overwrite: bool = False, *,
               option: str = "-o/--output") -> Path:
    """Check, before any long work, that ``frontier <command>`` may write the file ``path``:
    it does not exist yet (its folder does), or it begins with ``file_header(command)``,
    or ``overwrite`` is given. Never a folder. Returns the resolved path."""
    shown = str(path)
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        raise ConfigError(
            f"{option} {shown!r} is a folder; `frontier {command}` writes one file there. "
            f"Give a file name, e.g. {str(Path(shown) / (command + '.yaml'))!r}."
        )
    if not p.parent.is_dir():
        what = "is not a folder" if p.parent.exists() else "does not exist"
        raise ConfigError(
            f"Cannot write {option} {shown!r}: its folder {str(p.parent)!r} {what}. Create the "
            f"folder first, or choose another {option}."
        )
    _writable(p.parent, shown, option)
    if p.exists() and not overwrite:
        try:
            with open(p, encoding="utf-8", errors="replace") as f:
                first = f.readline()
        except OSError as e:
            raise ConfigError(f"Cannot read {option} {shown!r} ({e.strerror or e}); choose "
                              f"another {option}.") from None
        if first != file_header(command):
            raise ConfigError(
                f"{option} {shown!r} is an existing file that `frontier {command}` did not write "
                f"(its first line is not {file_header(command).strip()!r}); Frontier will not "
                f"replace it. Choose another {option}, or pass --overwrite to replace it."
            )
    return p


def write_file(path: str | Path, command: str, text: str, overwrite: bool = False, *,
               option: str = "-o/--output") -> Path:
    """Write ``file_header(command) + text`` to ``path`` whole or not at all (through a
    hidden temporary file beside it), after ``check_file``. Returns the resolved path."""
    p = check_file(path, command, overwrite, option=option)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(file_header(command) + text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a config is an ordinary file
        os.replace(tmp, p)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return p
