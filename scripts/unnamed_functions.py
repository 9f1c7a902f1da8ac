"""Gives a name to each function of an object that has none, so the release link can place it.

The Swift compiler emits some functions with no name at all: LLVM's private `.L__unnamed_N`,
which the assembler leaves out of the symbol table (thunks that several conformances share,
value operations that several types share). With -function-sections each still has a section
of its own (`.text..L__unnamed_N`), and the section's STT_SECTION symbol is what calls to it
are relocated against. But lld's --symbol-ordering-file places sections by the names of the
symbols in them, and valgrind, which scripts/symbol-order.sh records start-up with, names such
a function by its address: it could be in no order, and lay wherever its object's other
unordered code did. loopsyd ran 179 of them at start-up; each page one of them was on mapped
64-128 KiB of the binary around it.

`name_unnamed_functions` turns each such section symbol into a local function symbol (same
section, value 0, the section's size) named `__loopsy_unnamed.<label>.<rest of the section's
name>`, `label` telling the object (e.g. `LoopsyAPI.PairingTypes.swift`), so every relocation
against it resolves exactly as before. Sections in COMDAT groups are left alone. The names are added at the end of the object's string table, which moves to the end of
the file; nothing else moves. They are local: other objects neither see nor clash with them,
and the release link strips them with the rest of the symbol table.
"""
import struct

import swift_records

SHT_PROGBITS, SHT_STRTAB, SHT_GROUP = 1, 3, 17
SHF_EXECINSTR = 0x4
STT_FUNC, STT_SECTION = 2, 3
PREFIX = ".text..L"


def name_unnamed_functions(data, label):
    """Names the unnamed functions of the ELF64 relocatable object `data` (a bytearray, which
    grows by the names). Returns how many were named; 0 leaves `data` as it was."""
    try:
        elf = swift_records.ObjectFile(data, 0, len(data))
    except ValueError:
        return 0
    # A section in a COMDAT group is left as it is: a group's signature may be its section
    # symbol, and renaming that would change which copies the linker takes as one.
    signatures = {header[7] for header in elf.headers if header[1] == SHT_GROUP}
    unnamed = {index for index, (name, header) in enumerate(zip(elf.names, elf.headers))
               if name.startswith(PREFIX) and header[1] == SHT_PROGBITS
               and header[2] & SHF_EXECINSTR and not header[2] & swift_records.SHF_GROUP}
    symtab = next((index for index, header in enumerate(elf.headers) if header[1] == swift_records.SHT_SYMTAB), None)
    if not unnamed or symtab is None:
        return 0
    strtab = elf.headers[symtab][6]
    if strtab >= len(elf.headers) or elf.headers[strtab][1] != SHT_STRTAB:
        return 0
    table_offset, table_size = elf.headers[strtab][4], elf.headers[strtab][5]
    table = bytearray(data[table_offset:table_offset + table_size])
    renames = []
    for index, (_, info, other, shndx, _, _) in enumerate(elf.symbols):
        if info == (swift_records.STB_LOCAL << 4) | STT_SECTION and shndx in unnamed and index not in signatures:
            name = f"__loopsy_unnamed.{label}.{elf.names[shndx][len(PREFIX):]}".encode()
            renames.append((index, len(table), other, shndx))
            table += name + b"\0"
            unnamed.discard(shndx)  # one name for a section
    if not renames:
        return 0
    symbols_at = elf.headers[symtab][4]
    for index, name_offset, other, shndx in renames:
        swift_records.SYMBOL.pack_into(data, symbols_at + index * swift_records.SYMBOL.size, name_offset,
                                       (swift_records.STB_LOCAL << 4) | STT_FUNC, other, shndx, 0,
                                       elf.headers[shndx][5])
    # The string table (which may hold the section names too: same offsets) moves to the end.
    new_offset = len(data)
    data += table
    header_at = elf.shoff + strtab * 64
    struct.pack_into("<QQ", data, header_at + 24, new_offset, len(table))
    return len(renames)
