"""Lets the linker drop the Swift runtime records of types that nothing in a program uses.

The Swift compiler puts a record in a section of its own for each type (swift5_type_metadata)
and each protocol conformance (swift5_protocol_conformances) a module defines, and marks each
SHF_GNU_RETAIN: the runtime finds them by scanning those sections, so no relocation reaches
them and --gc-sections would otherwise drop them all. Retained, each keeps what it points to:
the type's descriptor, the conformance's witness table, and through them every method of every
type, used or not (loopsyd kept about 0.7 MB of code nothing calls: the P-384/P-521/RSA half
of swift-crypto, the CLI's own types in shared modules).

`tie_records` makes such a record depend on the type it describes instead: the retain flag
goes, SHF_LINK_ORDER comes, with sh_link naming the section of the type's context descriptor.
lld keeps a SHF_LINK_ORDER section exactly when the section it links to is kept, which is
what ld64 does on Apple platforms for these records (S_ATTR_LIVE_SUPPORT). A type's records
thus stay whenever anything refers to its descriptor, and every way to have a value of the
type does (its metadata points to its descriptor), so whatever the runtime can be asked about
a live type (a cast, a conformance a generic requirement needs, a name lookup) it still finds.
A type that nothing refers to but a name string (`_typeByName("...")`, which loopsy never
calls) is dropped with its records, as an unused one is. Only records whose type is certainly in the same object are tied:

- a type record whose relative pointer is direct (its two low bits clear) and relocated
  against a symbol defined in this object;
- a conformance record whose conformance descriptor is defined here and names its type
  directly (TypeReferenceKind 0, "direct type descriptor"), relocated against a symbol
  defined here. Conformances of types from other objects (an extension of String, of a type
  another file of the module declares) stay retained, as do records of any other shape and
  records of types whose descriptor is a weak symbol or in a COMDAT group (imported C types:
  each object that uses one defines its descriptor, and the linker picks one of them).

Protocol records (swift5_protocols) stay retained: mangled names refer to protocols by name
(e.g. "$s6Crypto6CipherP" in loopsyd's swift5_typeref), and the runtime finds those through
the records. Nominal types are referred to by symbolic reference, a relocation to their
descriptor, which keeps it.

Field descriptors (swift5_fieldmd) and closure capture descriptors (swift5_capture) lose the
retain flag: a type's descriptor and a closure context's metadata refer to them, so they stay
with what they describe.

Everything works on ELF64 little-endian relocatable objects held in a bytearray, in place; no
section changes size. `ObjectFile` also serves scripts/unretain-archives.py.
"""
import struct

SHF_LINK_ORDER = 0x80
SHF_GROUP = 0x200
SHF_GNU_RETAIN = 0x200000
SHT_SYMTAB = 2
SHT_RELA = 4
R_X86_64_PC32 = 2
SHN_LORESERVE = 0xFF00
STB_LOCAL, STB_GLOBAL = 0, 1
# ProtocolConformanceFlags: TypeReferenceKind in bits 3-5; 0 is a direct type descriptor.
TYPE_REFERENCE_KIND_SHIFT = 3
TYPE_REFERENCE_KIND_MASK = 0x7

HEADER = struct.Struct("<IIQQQQIIQQ")  # name, type, flags, addr, offset, size, link, info, align, entsize
SYMBOL = struct.Struct("<IBBHQQ")      # name, info, other, shndx, value, size
RELA = struct.Struct("<QQq")           # offset, info, addend


class ObjectFile:
    """The sections, symbols and relocations of one ELF64 relocatable object at data[start:start+size]."""

    def __init__(self, data, start, size):
        self.data, self.start = data, start
        if size < 64 or data[start:start + 4] != b"\x7fELF":
            raise ValueError("not an ELF object")
        if data[start + 4] != 2 or data[start + 5] != 1 or struct.unpack_from("<H", data, start + 16)[0] != 1:
            raise ValueError("not an ELF64 little-endian relocatable object")
        (self.shoff,) = struct.unpack_from("<Q", data, start + 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, start + 0x3A)
        if self.shoff == 0 or shentsize != 64 or shstrndx >= shnum or self.shoff + shnum * 64 > size:
            raise ValueError("unexpected ELF section header table")
        self.headers = [list(HEADER.unpack_from(data, start + self.shoff + index * 64)) for index in range(shnum)]
        for header in self.headers:
            if header[1] != 8 and header[4] + header[5] > size:  # SHT_NOBITS has no bytes in the file
                raise ValueError("a section lies outside the object")
        names = self.headers[shstrndx][4]
        self.names = [self.string(names, header[0]) for header in self.headers]
        self.symbols = []
        for header in self.headers:
            if header[1] == SHT_SYMTAB:
                self.symbols = [SYMBOL.unpack_from(data, start + header[4] + index * SYMBOL.size)
                                for index in range(header[5] // SYMBOL.size)]
                break
        # What weak symbols cover: section index -> [(first offset, end)].
        self.weak = {}
        for symbol in self.symbols:
            if symbol[1] >> 4 not in (STB_LOCAL, STB_GLOBAL):
                self.weak.setdefault(symbol[3], []).append((symbol[4], symbol[4] + max(symbol[5], 1)))
        # Relocation sections by the index of the section they apply to, read when first asked for.
        self.relocation_sections = {header[7]: index for index, header in enumerate(self.headers)
                                    if header[1] == SHT_RELA}
        self.relocations = {}

    def string(self, table_offset, offset):
        first = self.start + table_offset + offset
        return bytes(self.data[first:self.data.index(b"\0", first)]).decode("utf-8", "replace")

    def target(self, section, offset):
        """Where the relative pointer at `offset` in `section` points (see `pointee`), unless a
        weak symbol covers that place: an imported C type's descriptor, which each module that
        uses the type defines, may be the copy the linker does not pick (references then go to
        another object's), and the assembler resolves a reference to it within its section."""
        found = self.pointee(section, offset)
        if found is None or any(first <= found[1] < end for first, end in self.weak.get(found[0], ())):
            return None
        return found

    def pointee(self, section, offset):
        """(section index, offset) that the relative pointer at `offset` in `section` points
        to, when that is in this object: relocated (R_X86_64_PC32) against a local or global
        symbol defined here, or not relocated at all (then into its own section); else None."""
        if section not in self.relocations:
            found = {}
            index = self.relocation_sections.get(section)
            if index is not None:
                header = self.headers[index]
                for entry in range(header[5] // RELA.size):
                    at, info, addend = RELA.unpack_from(self.data, self.start + header[4] + entry * RELA.size)
                    found[at] = (info >> 32, info & 0xFFFFFFFF, addend)
            self.relocations[section] = found
        relocation = self.relocations[section].get(offset)
        if relocation is None:
            # A relative pointer to a place in its own section needs no relocation: the
            # assembler wrote the distance.
            header = self.headers[section]
            if header[1] == 8 or offset + 4 > header[5]:
                return None
            (distance,) = struct.unpack_from("<i", self.data, self.start + header[4] + offset)
            if distance == 0 or not 0 <= offset + distance < header[5]:
                return None
            return section, offset + distance
        symbol, kind, addend = relocation
        if kind != R_X86_64_PC32 or symbol >= len(self.symbols):
            return None
        info, shndx, value = self.symbols[symbol][1], self.symbols[symbol][3], self.symbols[symbol][4]
        if shndx == 0 or shndx >= SHN_LORESERVE or shndx >= len(self.headers):
            return None
        if info >> 4 not in (STB_LOCAL, STB_GLOBAL):  # weak: see `target`
            return None
        # A relative pointer at P holds target - P, and the relocation writes S + A - P.
        return shndx, value + addend

    def set_flags(self, index, flags, link=None):
        self.headers[index][2] = flags
        struct.pack_into("<Q", self.data, self.start + self.shoff + index * 64 + 8, flags)
        if link is not None:
            self.headers[index][6] = link
            struct.pack_into("<I", self.data, self.start + self.shoff + index * 64 + 40, link)


def tie_records(data, start, size):
    """Ties the object's type and conformance records to their types' descriptors and lets its
    field and capture descriptors go with what refers to them (see the module's text). Returns
    how many sections changed."""
    try:
        elf = ObjectFile(data, start, size)
    except ValueError:
        return 0
    changed = 0
    for index, header in enumerate(elf.headers):
        flags, name = header[2], elf.names[index]
        if not flags & SHF_GNU_RETAIN or flags & SHF_LINK_ORDER:
            continue
        # (Empty ones stay: swiftrt.o's mark where each section starts and ends.)
        if name in ("swift5_fieldmd", "swift5_capture") and header[5] > 0:
            elf.set_flags(index, flags & ~SHF_GNU_RETAIN)
            changed += 1
            continue
        descriptor = None
        if name == "swift5_type_metadata" and header[5] == 4:
            descriptor = elf.target(index, 0)
            if descriptor is not None and descriptor[1] & 3:  # an indirect reference
                descriptor = None
        elif name == "swift5_protocol_conformances" and header[5] == 4:
            conformance = elf.target(index, 0)
            if conformance is not None:
                section = elf.headers[conformance[0]]
                if section[1] != 8 and conformance[1] + 16 <= section[5]:
                    (conformance_flags,) = struct.unpack_from("<I", data, start + section[4] + conformance[1] + 12)
                    if (conformance_flags >> TYPE_REFERENCE_KIND_SHIFT) & TYPE_REFERENCE_KIND_MASK == 0:
                        descriptor = elf.target(conformance[0], conformance[1] + 4)
        else:
            continue
        # A descriptor in a COMDAT group may be a copy the linker drops for another object's,
        # as a weak one may (`ObjectFile.target`).
        if descriptor is not None and (elf.headers[descriptor[0]][2] | flags) & SHF_GROUP:
            descriptor = None
        if descriptor is None or descriptor[0] == index:
            continue
        elf.set_flags(index, (flags & ~SHF_GNU_RETAIN) | SHF_LINK_ORDER, link=descriptor[0])
        changed += 1
    return changed
