#!/usr/bin/env python3
"""The release link's linker: ld.lld, given copies of the program's own objects in which each
Swift type and conformance record depends on its type (scripts/swift_records.py says how and
why), so that --gc-sections drops the records, and the code, of types nothing uses.

clang runs it in place of ld.lld (`-Xclang-linker --ld-path=...`, LOOPSY_RELEASE_FLAGS in
scripts/lib.sh) with ld.lld's arguments. Each object file (.o) among them, or in a response
file they name, that has records to tie is copied to `<object>.tied-<stamp>` next to it, the
stamp naming the object's device, inode, size and time and these scripts' contents (a copy is
made again only when one of them changed), and the copy is linked in its place; everything
else goes to ld.lld as given, in a response file of its own. ld.lld is the one beside the
swiftc on PATH (the one clang would have run), else the first on PATH.
"""
import glob
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import swift_records  # noqa: E402

# Options whose value is the next argument, and may end in ".o" without being an input.
VALUE_OPTIONS = {"-o", "--output", "-R", "--just-symbols", "-T", "--script", "-Map", "--dependency-file"}


def gnu_tokens(text):
    """Splits a response file as LLVM's GNU tokenizer does: whitespace separates, quotes group,
    and a backslash takes the next character as it is, inside quotes too."""
    tokens, token, quote, index = [], None, None, 0
    while index < len(text):
        character = text[index]
        if character == "\\" and index + 1 < len(text):
            index += 1
            token = (token or "") + text[index]
        elif quote:
            if character == quote:
                quote = None
            else:
                token += character
        elif character in "\"'":
            quote = character
            token = token or ""
        elif character.isspace():
            if token is not None:
                tokens.append(token)
                token = None
        else:
            token = (token or "") + character
        index += 1
    if token is not None:
        tokens.append(token)
    return tokens


def expand(arguments, depth=0):
    """The arguments with each @response-file replaced by what it holds."""
    expanded = []
    for argument in arguments:
        if argument.startswith("@") and depth < 8 and os.path.isfile(argument[1:]):
            with open(argument[1:], encoding="utf-8", errors="surrogateescape") as file:
                expanded += expand(gnu_tokens(file.read()), depth + 1)
        else:
            expanded.append(argument)
    return expanded


def quoted(argument):
    """The argument as a response file gives it to ld.lld (gnu_tokens reads it back)."""
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'


def version():
    """What tells copies made by these scripts from those an earlier version of them made."""
    digest = hashlib.sha256()
    for script in (__file__, swift_records.__file__):
        with open(script, "rb") as file:
            digest.update(file.read())
    return digest.hexdigest()


def tied_copy(path, made_by):
    """The path of a copy of object `path` with its records tied, or `path` when none are to be."""
    info = os.stat(path)
    stamp = hashlib.sha256(f"{made_by} {info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns}".encode())
    copy = f"{path}.tied-{stamp.hexdigest()[:16]}"
    if os.path.exists(copy):
        return copy
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
    arguments, previous = [], None
    for argument in expand(sys.argv[1:]):
        if (argument.endswith(".o") and not argument.startswith("-") and previous not in VALUE_OPTIONS
                and os.path.isfile(argument)):
            try:
                argument = tied_copy(argument, made_by)
            except (OSError, ValueError, struct.error) as error:
                sys.exit(f"lld-tied-records: {argument}: {error}")
        arguments.append(argument)
        previous = argument
    lld = linker()
    # Hundreds of object paths, expanded from clang's own response files, could pass the limit
    # of a command line: ld.lld reads them from a file.
    with tempfile.NamedTemporaryFile("w", prefix="lld-tied-records.", suffix=".rsp",
                                     encoding="utf-8", errors="surrogateescape") as response:
        response.write("\n".join(quoted(argument) for argument in arguments) + "\n")
        response.flush()
        sys.exit(subprocess.run([lld, "@" + response.name]).returncode)


if __name__ == "__main__":
    main()
