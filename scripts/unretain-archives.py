#!/usr/bin/env python3
"""Copies the Swift toolchain's static runtime archives so that --gc-sections can drop what we never call.

The toolchain's archives (libswiftCore.a, libFoundationEssentials.a, ...) put functions in sections
of their own, but mark every one SHF_GNU_RETAIN ("R" in `readelf -S`), and a linker keeps a retained
section even when nothing refers to it: every function of every object the link pulls in stayed in
the binary. The copies are the same bytes with that flag cleared on function sections (.text.*)
only. Everything else keeps it, above all the Swift metadata sections (swift5_*) that the runtime
scans for conformances and types, so a dynamic cast still finds what it found before. A function
now goes only when no relocation in the program reaches it; our links already export no dynamic
symbols (--no-export-dynamic), so no dlsym could have found it either.

Usage: unretain-archives.py [SOURCE_DIR] DEST_DIR
SOURCE_DIR is by default the static runtime of the swiftc on PATH (what SwiftPM builds with).
Copies SOURCE_DIR/lib*.a whose copy is missing or was made from another file, and writes
DEST_DIR/remap.txt for lld's --remap-inputs-file (each line: toolchain archive=copy), anew only
when a copy changed, so that programs older than it can be linked again.
"""
import fcntl
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import swift_records  # noqa: E402  (its ELF reader)

GLOB_CHARACTERS = set("*?[]\\")


def unretain_object(data, start, size):
    """Clears SHF_GNU_RETAIN on the .text.* sections of the ELF object at data[start:start+size];
    a member that is not one (the archive's symbol index) is left as it is."""
    if size < 4 or data[start:start + 4] != b"\x7fELF":
        return 0
    elf = swift_records.ObjectFile(data, start, size)
    cleared = 0
    for index, header in enumerate(elf.headers):
        if header[2] & swift_records.SHF_GNU_RETAIN and elf.names[index].startswith(".text."):
            elf.set_flags(index, header[2] & ~swift_records.SHF_GNU_RETAIN)
            cleared += 1
    return cleared


def unretain_archive(source, dest_dir, name):
    """Writes dest_dir/name: source with its members' function sections unretained. Same size, so
    the archive's symbol index (member offsets) stays valid."""
    data = bytearray(open(source, "rb").read())
    if data[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive (a thin archive?)")
    position = 8
    while position + 60 <= len(data):
        size = int(data[position + 48:position + 58].decode("ascii").strip())
        if data[position + 58:position + 60] != b"`\n" or position + 60 + size > len(data):
            raise ValueError(f"bad member header at offset {position}")
        unretain_object(data, position + 60, size)
        position += 60 + size + (size & 1)
    write_atomically(dest_dir, name, data)


def write_atomically(directory, name, data):
    """Replaces directory/name with data: a reader sees the old file or the new one, never half."""
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, os.path.join(directory, name))
    except BaseException:
        os.unlink(temporary)
        raise


def stamp(source):
    """What identifies the archive a copy was made from, and how it was made: a new toolchain's
    files keep their build dates (older than an earlier copy), but not their inode and size."""
    info = os.stat(source)
    digest = hashlib.sha256()
    for script in (__file__, swift_records.__file__):
        with open(script, "rb") as file:
            digest.update(file.read())
    script = digest.hexdigest()
    return f"{source} {info.st_ino} {info.st_size} {info.st_mtime_ns} {script}\n"


def toolchain_runtime():
    """The static runtime archives' directory of the swiftc on PATH."""
    try:
        info = subprocess.run(["swiftc", "-print-target-info"], check=True, capture_output=True, text=True).stdout
        resources = json.loads(info)["paths"]["runtimeResourcePath"]
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError) as error:
        sys.exit(f"unretain-archives: cannot ask swiftc where its runtime is: {error}")
    return os.path.join(resources, "..", "swift_static", "linux")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: unretain-archives.py [SOURCE_DIR] DEST_DIR")
    source = sys.argv[1] if len(sys.argv) == 3 else toolchain_runtime()
    source_dir, dest_dir = os.path.realpath(source), os.path.realpath(sys.argv[-1])
    os.makedirs(dest_dir, exist_ok=True)
    archives = sorted(name for name in os.listdir(source_dir) if name.startswith("lib") and name.endswith(".a"))
    if "libswiftCore.a" not in archives:
        sys.exit(f"unretain-archives: no libswiftCore.a in {source_dir}: not the Swift static runtime")
    # Builds at once (setup, a bench, the .deb) take turns.
    with open(os.path.join(dest_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remap, changed = [], False
        for name in archives:
            source, dest = os.path.join(source_dir, name), os.path.join(dest_dir, name)
            # lld reads each line as from-glob=to-file.
            if set(source + dest) & (GLOB_CHARACTERS | {"="}):
                sys.exit(f"unretain-archives: {source} or {dest} has a character lld's remap file would misread")
            made_from = os.path.join(dest_dir, f".{name}.stamp")
            wanted = stamp(source)
            try:
                current = open(made_from).read() if os.path.exists(dest) else None
            except FileNotFoundError:
                current = None
            if current != wanted:
                try:
                    unretain_archive(source, dest_dir, name)
                except (ValueError, struct.error) as error:
                    sys.exit(f"unretain-archives: {source}: {error}")
                write_atomically(dest_dir, f".{name}.stamp", wanted.encode())
                changed = True
            remap.append(f"{source}={dest}\n")
        # Rewritten only when a copy changed: programs older than it are linked again.
        text = "".join(remap)
        remap_path = os.path.join(dest_dir, "remap.txt")
        try:
            unchanged = open(remap_path).read() == text
        except FileNotFoundError:
            unchanged = False
        if changed or not unchanged:
            write_atomically(dest_dir, "remap.txt", text.encode())


if __name__ == "__main__":
    main()
