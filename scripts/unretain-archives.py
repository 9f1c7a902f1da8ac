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

Usage: unretain-archives.py SOURCE_DIR DEST_DIR
Copies SOURCE_DIR/lib*.a whose copy is missing or older, and writes DEST_DIR/remap.txt for lld's
--remap-inputs-file (each line: toolchain archive=copy).
"""
import os
import struct
import sys

SHF_GNU_RETAIN = 0x200000
GLOB_CHARACTERS = set("*?[]\\")


def unretain_object(data, start, size):
    """Clears SHF_GNU_RETAIN on the .text.* sections of the ELF64 little-endian object at data[start:start+size]."""
    if size < 64 or data[start:start + 4] != b"\x7fELF" or data[start + 4] != 2 or data[start + 5] != 1:
        return 0
    (shoff,) = struct.unpack_from("<Q", data, start + 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, start + 0x3A)
    if shoff == 0 or shentsize != 64 or shstrndx >= shnum or shoff + shnum * 64 > size:
        raise ValueError("unexpected ELF section header table")
    (names,) = struct.unpack_from("<Q", data, start + shoff + shstrndx * 64 + 0x18)
    cleared = 0
    for index in range(shnum):
        header = start + shoff + index * 64
        (name,) = struct.unpack_from("<I", data, header)
        (flags,) = struct.unpack_from("<Q", data, header + 8)
        if not flags & SHF_GNU_RETAIN:
            continue
        first = start + names + name
        if bytes(data[first:data.index(b"\0", first)]).startswith(b".text."):
            struct.pack_into("<Q", data, header + 8, flags & ~SHF_GNU_RETAIN)
            cleared += 1
    return cleared


def unretain_archive(source, dest):
    """Writes dest: source with its members' function sections unretained. Same size, so the
    archive's symbol index (member offsets) stays valid."""
    data = bytearray(open(source, "rb").read())
    if data[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive")
    position, cleared = 8, 0
    while position + 60 <= len(data):
        size = int(data[position + 48:position + 58].decode("ascii").strip())
        if data[position + 58:position + 60] != b"`\n" or position + 60 + size > len(data):
            raise ValueError(f"bad member header at offset {position}")
        cleared += unretain_object(data, position + 60, size)
        position += 60 + size + (size & 1)
    partial = dest + ".partial"
    with open(partial, "wb") as out:
        out.write(data)
    os.replace(partial, dest)
    return cleared


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: unretain-archives.py SOURCE_DIR DEST_DIR")
    source_dir, dest_dir = (os.path.abspath(path) for path in sys.argv[1:])
    os.makedirs(dest_dir, exist_ok=True)
    archives = sorted(name for name in os.listdir(source_dir) if name.startswith("lib") and name.endswith(".a"))
    if "libswiftCore.a" not in archives:
        sys.exit(f"unretain-archives: no libswiftCore.a in {source_dir}: not the Swift static runtime")
    remap = []
    for name in archives:
        source, dest = os.path.join(source_dir, name), os.path.join(dest_dir, name)
        if GLOB_CHARACTERS & set(source + dest):
            sys.exit(f"unretain-archives: {source} or {dest} has a glob character, which lld's remap file would misread")
        if not os.path.exists(dest) or os.path.getmtime(dest) < os.path.getmtime(source):
            try:
                unretain_archive(source, dest)
            except (ValueError, struct.error) as error:
                sys.exit(f"unretain-archives: {source}: {error}")
        remap.append(f"{source}={dest}\n")
    partial = os.path.join(dest_dir, "remap.txt.partial")
    with open(partial, "w") as out:
        out.writelines(remap)
    os.replace(partial, os.path.join(dest_dir, "remap.txt"))


if __name__ == "__main__":
    main()
