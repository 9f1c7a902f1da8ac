#!/usr/bin/env python3
"""The release link's linker: ld.lld, given copies of the program's own objects in which each
Swift type and conformance record depends on its type (scripts/swift_records.py says how and
why), so that --gc-sections drops the records, and the code, of types nothing uses.

clang runs it in place of ld.lld (`-Xclang-linker --ld-path=...`, LOOPSY_RELEASE_FLAGS in
scripts/lib.sh) with ld.lld's arguments. Each object file (.o) among them, or in a response
file they name, that has records to tie is copied to `<object>.tied-<version>` next to it
(again only when the object or these scripts changed) and the copy linked in its place; everything else goes to ld.lld as
given. ld.lld is the one beside the swiftc on PATH (the one clang would have run), else the
first on PATH.
"""
import glob
import hashlib
import os
import shlex
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import swift_records  # noqa: E402


def expand(arguments, depth=0):
    """The arguments with each @response-file replaced by what it holds (GNU quoting, as lld reads it)."""
    expanded = []
    for argument in arguments:
        if argument.startswith("@") and depth < 8 and os.path.isfile(argument[1:]):
            with open(argument[1:], encoding="utf-8", errors="surrogateescape") as file:
                expanded += expand(shlex.split(file.read()), depth + 1)
        else:
            expanded.append(argument)
    return expanded


def version():
    """What tells copies made by these scripts from those an earlier version of them made."""
    digest = hashlib.sha256()
    for script in (__file__, swift_records.__file__):
        with open(script, "rb") as file:
            digest.update(file.read())
    return digest.hexdigest()[:12]


def tied_copy(path, made_by):
    """The path of a copy of object `path` with its records tied, or `path` when none are to be."""
    copy = f"{path}.tied-{made_by}"
    info = os.stat(path)
    try:
        made = os.stat(copy)
        if made.st_mtime_ns == info.st_mtime_ns and made.st_size == info.st_size:
            return copy
    except FileNotFoundError:
        pass
    with open(path, "rb") as file:
        data = bytearray(file.read())
    if swift_records.tie_records(data, 0, len(data)) == 0:
        return path
    # Links of several programs at once share objects: each writes a whole copy and renames it.
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tie.")
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.utime(temporary, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.replace(temporary, copy)
    except BaseException:
        os.unlink(temporary)
        raise
    for stale in glob.glob(glob.escape(path) + ".tied-*"):
        if stale != copy:
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
    return copy


def linker():
    swiftc = shutil.which("swiftc")
    if swiftc:
        beside = os.path.join(os.path.dirname(os.path.realpath(swiftc)), "ld.lld")
        if os.access(beside, os.X_OK):
            return beside
    found = shutil.which("ld.lld")
    if not found:
        sys.exit("lld-tied-records: no ld.lld beside swiftc or on PATH")
    return found


def main():
    made_by = version()
    arguments = []
    for argument in expand(sys.argv[1:]):
        if argument.endswith(".o") and not argument.startswith("-") and os.path.isfile(argument):
            try:
                argument = tied_copy(argument, made_by)
            except (OSError, ValueError, struct.error) as error:
                sys.exit(f"lld-tied-records: {argument}: {error}")
        arguments.append(argument)
    lld = linker()
    os.execv(lld, [lld] + arguments)


if __name__ == "__main__":
    main()
