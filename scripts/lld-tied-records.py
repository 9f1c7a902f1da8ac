#!/usr/bin/env python3
"""The release link's linker: ld.lld, given copies of the program's own objects in which each
Swift type and conformance record depends on its type (scripts/swift_records.py says how and
why), so that --gc-sections drops the records, and the code, of types nothing uses.

In the same copies, each function the compiler left without a name gets a local one
(scripts/unnamed_functions.py), so that the release link's symbol order can place it.

clang runs it in place of ld.lld (`-Xclang-linker --ld-path=...`, LOOPSY_RELEASE_FLAGS in
scripts/lib.sh) with ld.lld's arguments. Each object file (.o) among them, or in a response
file they name, that has records to tie or functions to name is copied to `<object>.tied-<stamp>` next to it, the
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
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import swift_records  # noqa: E402
import unnamed_functions  # noqa: E402

# Options whose value is the next argument, and may end in ".o" without being an input.
VALUE_OPTIONS = {"-o", "--output", "-R", "--just-symbols", "-T", "--script", "-Map", "--dependency-file"}

# The programs linked without Swift's regex engine (see without_regex). loopsy-mcp keeps it: the
# MCP SDK and Foundation are not ours to keep from it.
WITHOUT_REGEX = {"loopsyd", "loopsy"}


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
    for script in (__file__, swift_records.__file__, unnamed_functions.__file__):
        with open(script, "rb") as file:
            digest.update(file.read())
    return digest.hexdigest()


def object_label(path):
    """What tells an object's unnamed functions from another's (unnamed_functions.py): for
    ".../<module>.build/<dirs>/<file>.swift.o", "<module>.<dirs>.<file>.swift"; for an object in
    no such directory, its directory's name and its own. An order file entry applies to every
    local symbol of that name in any object, so two objects of one link must not share one."""
    parts = os.path.abspath(path).split(os.sep)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index].endswith(".build"):
            return ".".join([parts[index].removesuffix(".build")] + parts[index + 1:]).removesuffix(".o")
    return ".".join(parts[-2:]).removesuffix(".o")


def tied_copy(path, made_by):
    """The path of a copy of object `path` with its records tied and its unnamed functions
    named, or `path` when there is nothing of either."""
    info = os.stat(path)
    stamp = hashlib.sha256(f"{made_by} {info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns}".encode())
    copy = f"{path}.tied-{stamp.hexdigest()[:16]}"
    if os.path.exists(copy):
        return copy
    with open(path, "rb") as file:
        data = bytearray(file.read())
    tied = swift_records.tie_records(data, 0, len(data))
    if tied + unnamed_functions.name_unnamed_functions(data, object_label(path)) == 0:
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


def tool(name):
    """The LLVM tool `name` beside the swiftc on PATH (the toolchain clang runs), else on PATH."""
    swiftc = shutil.which("swiftc")
    if swiftc:
        beside = os.path.join(os.path.dirname(os.path.realpath(swiftc)), name)
        if os.access(beside, os.X_OK):
            return beside
    found = shutil.which(name)
    if not found:
        sys.exit(f"lld-tied-records: no {name} beside swiftc or on PATH")
    return found


def library(name, arguments):
    """Where ld.lld finds -l`name` (lib`name`.a) on the -L paths in `arguments`, or None."""
    directories, previous = [], None
    for argument in arguments:
        if previous == "-L":
            directories.append(argument)
        elif argument.startswith("-L") and len(argument) > 2:
            directories.append(argument[2:])
        previous = argument
    for directory in directories:
        path = os.path.join(directory, f"lib{name}.a")
        if os.path.isfile(path):
            return path
    return None


def nm_symbols(arguments):
    """(file, symbol, type letter) for each line llvm-nm prints with `arguments`; the file is
    "archive[member]" for an archive's member. Swift symbol names may hold spaces: the name is
    what lies between the file's ": " and the last three fields."""
    listing = subprocess.run([tool("llvm-nm"), "--print-file-name", "--format=posix", *arguments],
                             capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        file, _, rest = line.partition(": ")
        fields = rest.rsplit(" ", 3)
        if len(fields) == 4:
            yield file, fields[0], fields[1]


def strong_symbols(archives):
    """{symbol: is it code} for the global symbols the archives define strongly."""
    return {symbol: kind == "T" for _, symbol, kind in nm_symbols(["--defined-only", "--extern-only", *archives])
            if kind in ("T", "D", "R", "B")}


def stub_object(symbols, directory, made_by, archives):
    """An object that defines each of `symbols` weakly: code as a function that says what
    happened on stderr and stops the program (ud2), data as zeros, each at an address of its
    own (the runtime tells protocols and types apart by address). Made once per set of
    archives, set of symbols and version of these scripts, in `directory`."""
    stamp = hashlib.sha256(made_by.encode())
    for archive in archives:
        info = os.stat(archive)
        stamp.update(f"{archive} {info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns}".encode())
    stamp.update("\n".join(f"{symbol} {code}" for symbol, code in sorted(symbols.items())).encode())
    path = os.path.join(directory, f".regex-absent-{stamp.hexdigest()[:16]}.o")
    if os.path.exists(path):
        return path
    message = ("loopsy: this program was linked without Swift's regular-expression engine (_StringProcessing, "
               "scripts/lld-tied-records.py) and has just called into it: please report this as a bug\\n")
    lines = [
        '.section .text.loopsy_regex_absent,"ax",@progbits', ".p2align 4",
        "loopsy_regex_absent:",
        "mov $1, %eax", "mov $2, %edi", "lea .Lmessage(%rip), %rsi", "mov $(.Lend - .Lmessage), %edx",
        "syscall", "ud2",
        f'.Lmessage: .ascii "{message}"', ".Lend:",
    ]
    for index, (symbol, code) in enumerate(sorted(symbols.items())):
        name = '"' + symbol.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines += [f".weak {name}", f".type {name},@{'function' if code else 'object'}"]
        if code:
            lines.append(f".set {name}, loopsy_regex_absent")
        else:
            # A section each, so that --gc-sections keeps only those something refers to.
            lines += [f'.section .rodata.loopsy_regex_absent.{index},"a",@progbits', ".p2align 4",
                      f"{name}:", ".zero 64"]
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".regex-absent.", suffix=".o")
    os.close(descriptor)
    try:
        subprocess.run([tool("clang"), "-c", "-x", "assembler", "-", "-o", temporary],
                       input="\n".join(lines) + "\n", text=True, check=True)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    # Older stubs go, but not one made in the last hour: another program's link running now may
    # be using it (two programs whose own objects define different engine symbols have two).
    for stale in glob.glob(os.path.join(glob.escape(directory), ".regex-absent-*.o")):
        try:
            if stale != path and os.stat(stale).st_mtime < time.time() - 3600:
                os.unlink(stale)
        except FileNotFoundError:
            pass
    return path


def described(uses):
    """Lines "  file: symbol" for the first (file, symbol) pairs of `uses`, the symbols as
    swift-demangle words them (as they are when it is not at hand)."""
    shown = uses[:12]
    symbols = [symbol for _, symbol in shown]
    swift_demangle = shutil.which("swift-demangle", path=os.path.dirname(tool("ld.lld")) + os.pathsep +
                                  os.environ.get("PATH", ""))
    words = subprocess.run([swift_demangle, "--simplified"], input="\n".join(symbols), capture_output=True,
                           text=True).stdout.splitlines() if swift_demangle else []
    if len(words) != len(symbols):
        words = symbols
    return "\n".join(f"  {file}: {word}" for (file, _), word in zip(shown, words))


def reviewed_users():
    """The (archive[member], symbol) pairs of the Swift runtime that may refer to the regex
    engine in a program linked without it: scripts/regex-engine-users.txt."""
    with open(os.path.join(os.path.dirname(os.path.realpath(__file__)), "regex-engine-users.txt"),
              encoding="utf-8") as file:
        return {tuple(line.split(" ", 1)) for line in file.read().splitlines()
                if line.strip() and not line.startswith("#")}


def without_regex(arguments, objects, output, made_by):
    """The arguments with Swift's regex engine (-lswift_StringProcessing, -lswift_RegexParser;
    1.27 MB, kept whole by anything that refers to it) replaced by a stub object.

    Every Swift module imports _StringProcessing implicitly, so the compiler asks for it in
    every link, and FoundationEssentials refers to it. Two checks stop the link:
    - the program's own objects must not refer to it at all (the error names the calls);
    - the runtime archives in the link may refer to it only as scripts/regex-engine-users.txt
      lists, each member there reviewed as code loopsy does not run (a new toolchain that
      calls the engine from elsewhere stops the link until someone looks).
    What is left binds to the stub, which stops the program (the stub's message and SIGILL, or
    SIGSEGV where the runtime reads a regex type's descriptor first) should it be reached. The
    runtime compares protocol descriptors by address when it scans conformance records, so
    the records of types conforming to regex protocols (Date.ISO8601FormatStyle) are passed
    over without being read."""
    program = os.path.basename(output)
    names = ("swift_StringProcessing", "swift_RegexParser")
    archives = [library(name, arguments) for name in names]
    if None in archives or not all(("-l" + name) in arguments for name in names):
        sys.exit(f"lld-tied-records: {program} is to be linked without Swift's regex engine, but the link "
                 "does not ask for its static archives as -lswift_StringProcessing -lswift_RegexParser "
                 "(a link with the static Swift runtime, --static-swift-stdlib, does)")
    symbols = strong_symbols(archives)
    own = list(nm_symbols(objects)) if objects else []
    uses = [(file, symbol) for file, symbol, kind in own if kind == "U" and symbol in symbols]
    if uses:
        where = described([(os.path.basename(file).split(".tied-")[0], symbol) for file, symbol in uses])
        sys.exit(f"lld-tied-records: {program} is linked without Swift's regex engine "
                 f"(_StringProcessing), which these refer to:\n{where}\n"
                 "Write them without it: LoopsyPOSIX's `includes(_:)` and `replacingEvery(_:with:)` for "
                 "String's `contains(_:)` and `replacing(_:with:)`, no Regex.")
    # The Swift runtime's other archives: those in the engine's directory that the link asks for.
    engine_directory = os.path.realpath(os.path.dirname(archives[0]))
    runtime = sorted({path for argument in arguments if argument.startswith("-l") and argument[2:] not in names
                      for path in [library(argument[2:], arguments)]
                      if path and os.path.realpath(os.path.dirname(path)) == engine_directory})
    if "-lFoundationEssentials" in arguments and not any(path.endswith("/libFoundationEssentials.a") for path in runtime):
        sys.exit(f"lld-tied-records: {program}: libFoundationEssentials.a is not beside the engine's archives "
                 f"({engine_directory}), so what it refers to in the engine could not be checked")
    listing = list(nm_symbols(runtime)) if runtime else []
    found = {(os.path.basename(file), symbol) for file, symbol, kind in listing if kind == "U" and symbol in symbols}
    unreviewed = sorted(found - reviewed_users())
    if unreviewed:
        where = described(unreviewed)
        sys.exit(f"lld-tied-records: {program} is linked without Swift's regex engine, and the Swift runtime "
                 f"refers to it where nobody has checked that {program} cannot get there:\n{where}\n"
                 "If none of it can run in loopsy, add the pairs (archive[member] symbol) to "
                 "scripts/regex-engine-users.txt, saying why; otherwise link the engine.")
    # A symbol the program or the runtime defines itself must not be met by the stub first: the
    # stub comes before the runtime's archives, and the linker would take its weak definition.
    defined = {symbol for _, symbol, kind in own + listing if kind not in ("U", "w", "v")}
    symbols = {symbol: code for symbol, code in symbols.items() if symbol not in defined}
    stub = stub_object(symbols, os.path.dirname(os.path.abspath(output)), made_by, archives)
    result, placed = [], False
    for argument in arguments:
        if argument in ("-l" + name for name in names):
            if not placed:
                result.append(stub)
                placed = True
            continue
        result.append(argument)
    return result


def main():
    made_by = version()
    arguments, objects, output, previous = [], [], None, None
    for argument in expand(sys.argv[1:]):
        if previous in ("-o", "--output"):
            output = argument
        elif argument.startswith("--output="):
            output = argument[len("--output="):]
        elif (argument.endswith(".o") and not argument.startswith("-") and previous not in VALUE_OPTIONS
                and os.path.isfile(argument)):
            try:
                argument = tied_copy(argument, made_by)
            except (OSError, ValueError, struct.error) as error:
                sys.exit(f"lld-tied-records: {argument}: {error}")
            objects.append(argument)
        arguments.append(argument)
        previous = argument
    if output and os.path.basename(output) in WITHOUT_REGEX:
        try:
            arguments = without_regex(arguments, objects, output, made_by)
        except (OSError, subprocess.CalledProcessError) as error:
            sys.exit(f"lld-tied-records: linking {output} without the regex engine: {error}")
    lld = tool("ld.lld")
    # Hundreds of object paths, expanded from clang's own response files, could pass the limit
    # of a command line: ld.lld reads them from a file.
    with tempfile.NamedTemporaryFile("w", prefix="lld-tied-records.", suffix=".rsp",
                                     encoding="utf-8", errors="surrogateescape") as response:
        response.write("\n".join(quoted(argument) for argument in arguments) + "\n")
        response.flush()
        sys.exit(subprocess.run([lld, "@" + response.name]).returncode)


if __name__ == "__main__":
    main()
