#!/usr/bin/env bash
# Checks scripts/lld-tied-records.py (the release link's linker) on a real Swift program built
# the way the release programs are: a public type nothing uses is dropped with its records and
# code; the runtime still finds everything about the type that is used (casts to its protocols,
# a conformance declared in another object, a generic requirement checked through the records
# when Set<Used> is looked up by name, enum case names, a conformance of an imported C type
# whichever object's copy of its descriptor the linker picks); copies are made once and made
# again when an object changes. The same program linked by ld.lld directly is the reference.
# Then the programs it links without Swift's regex engine (loopsyd, loopsy).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
loopsy_swift

source Tests/Packaging/checks.sh

cat >"$work/Types.swift" <<'SWIFT'
public protocol Greeter { func greet() -> String }

public struct Used: Greeter, Hashable {
    public var n: Int
    public func greet() -> String { "used \(n)" }
}

extension Used: CustomStringConvertible {
    public var description: String { "Used(\(n))" }
}

// Printed by its case name, which the runtime reads from the enum's field descriptor.
public enum Shade { case light, dark }
SWIFT
cat >"$work/Unused.swift" <<'SWIFT'
public struct NeverUsed: Greeter, Hashable {
    public init() {}
    public func greet() -> String { "never-used-type-was-linked" }
}
SWIFT
cat >"$work/main.swift" <<'SWIFT'
// Declared in another object than the type: this record stays retained.
extension Used: Comparable {
    public static func < (a: Used, b: Used) -> Bool { a.n < b.n }
}

@inline(never) func values() -> [Any] { [Used(n: CommandLine.arguments.count)] }

for value in values() {
    print((value as? any Greeter)?.greet() ?? "no Greeter conformance")
    print((value as? any CustomStringConvertible)?.description ?? "no CustomStringConvertible conformance")
    print(value is any Comparable ? "Comparable" : "no Comparable conformance")
}
// The runtime finds Used by its name, and Set's requirement Used: Hashable, through the records.
print(_typeByName("Shy4main4UsedVG").map { "\($0)" } ?? "no Set<Used>")
@inline(never) func shade() -> Shade { CommandLine.arguments.count > 5 ? .light : .dark }
print(shade())
SWIFT

# Compiled as SwiftPM compiles a release module (one object per file) with the release flags
# that matter here (LOOPSY_RELEASE_FLAGS).
(cd "$work" && swiftc -O -wmo -num-threads 3 -module-name main -Xfrontend -function-sections \
    -Xfrontend -internalize-at-link -c Types.swift Unused.swift main.swift)
objects=("$work/Types.o" "$work/Unused.o" "$work/main.o")
link() { # output, then extra flags
    local output="$1"
    shift
    swiftc -use-ld=lld "${objects[@]}" -o "$output" -Xlinker --gc-sections "$@"
}
link "$work/plain"
link "$work/tied" -Xclang-linker "--ld-path=$PWD/scripts/lld-tied-records.py"
expected=$'used 1\nUsed(1)\nComparable\nSet<Used>\ndark'

plain_runs() { [ "$("$work/plain")" = "$expected" ]; }
check "the program linked by ld.lld directly finds its types and conformances" plain_runs
tied_runs() { [ "$("$work/tied")" = "$expected" ]; }
check "linked with tied records it finds the same (casts, another object's conformance, Set<Used> by name, case names)" tied_runs
# A conformance of an imported C type declared in another module: each module that uses
# timespec defines its descriptor, as a weak symbol, and lld picks the copy it reads first.
mkdir "$work/c"
cat >"$work/c/Stamps.swift" <<'SWIFT'
import Glibc

extension timespec: @retroactive Equatable {
    public static func == (a: timespec, b: timespec) -> Bool { a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec }
}

@inline(never) public func boxedStamp() -> Any { timespec(tv_sec: 3, tv_nsec: 4) }
SWIFT
cat >"$work/c/main.swift" <<'SWIFT'
import Glibc
import Stamps

@inline(never) func stamps() -> [Any] { [timespec(tv_sec: CommandLine.arguments.count, tv_nsec: 2), boxedStamp()] }
print(stamps().allSatisfy { $0 is any Equatable } ? "timespec Equatable" : "no timespec Equatable")
SWIFT
(cd "$work/c" && swiftc -O -wmo -parse-as-library -module-name Stamps -emit-module -emit-module-path Stamps.swiftmodule \
    -Xfrontend -function-sections -Xfrontend -internalize-at-link -c Stamps.swift -o Stamps.o &&
    swiftc -O -wmo -module-name stamps -I . -Xfrontend -function-sections -Xfrontend -internalize-at-link \
        -c main.swift -o main.o)
c_type_conformance() { # objects in link order
    swiftc -use-ld=lld "$@" -o "$work/c/stamps" -Xlinker --gc-sections \
        -Xclang-linker "--ld-path=$PWD/scripts/lld-tied-records.py" &&
        [ "$("$work/c/stamps")" = "timespec Equatable" ]
}
check "a C type's conformance from another module stays, its module's object linked first" \
    c_type_conformance "$work/c/Stamps.o" "$work/c/main.o"
check "and linked last (lld then picks the other module's copy of the type's descriptor)" \
    c_type_conformance "$work/c/main.o" "$work/c/Stamps.o"
plain_keeps() { grep -qa never-used-type-was-linked "$work/plain"; }
check "directly linked, the unused type's code is in the program (its retained records keep it)" plain_keeps
tied_drops() { ! grep -qa never-used-type-was-linked "$work/tied" && ! nm "$work/tied" | grep NeverUsed >/dev/null; }
check "with tied records, the unused type is gone: no code, no symbol" tied_drops

records() { # object: one line per record section, "name flags"
    python3 - "$1" <<'PY'
import sys
sys.path.insert(0, "scripts")
import swift_records
data = bytearray(open(sys.argv[1], "rb").read())
elf = swift_records.ObjectFile(data, 0, len(data))
for index, header in enumerate(elf.headers):
    if elf.names[index] in ("swift5_type_metadata", "swift5_protocol_conformances"):
        kind = "tied" if header[2] & swift_records.SHF_LINK_ORDER else (
            "retained" if header[2] & swift_records.SHF_GNU_RETAIN else "loose")
        print(elf.names[index], kind)
PY
}
copy_of() { ls "$1".tied-* 2>/dev/null | head -1; }
# (Pipes end in `grep >/dev/null`, not `grep -q`: with pipefail, a grep that quits at its first
# match makes the writer's SIGPIPE the pipeline's status.)
# swiftc does not put each file's code in the object named after it: find Used's by its descriptor.
used_object=""
for object in "${objects[@]}"; do
    if nm --defined-only "$object" | grep ' \$s4main4UsedVMn$' >/dev/null; then used_object="$object"; fi
done
types_tied() {
    local copy
    copy="$(copy_of "$used_object")"
    [ -n "$copy" ] && records "$copy" | grep "swift5_type_metadata tied" >/dev/null &&
        ! records "$copy" | grep -v " tied$" >/dev/null
}
check "in the copy of Used's object every type and conformance record depends on its type" types_tied
other_object_retained() {
    local object copy
    # main.swift's object: the one whose records name a type of another object.
    for object in "${objects[@]}"; do
        copy="$(copy_of "$object")"
        records "${copy:-$object}" | grep "swift5_protocol_conformances retained" >/dev/null && return 0
    done
    return 1
}
check "a conformance whose type is in another object stays retained" other_object_retained

[ -n "$used_object" ] || loopsy_die "no object defines Used's type descriptor"
first_copy="$(copy_of "$used_object")"
[ -n "$first_copy" ] || loopsy_die "the wrapper made no copy of $used_object"
first_changed="$(stat -c %z "$first_copy")"
link "$work/tied2" -Xclang-linker "--ld-path=$PWD/scripts/lld-tied-records.py"
reused() { [ "$(copy_of "$used_object")" = "$first_copy" ] && [ "$(stat -c %z "$first_copy")" = "$first_changed" ]; }
check "a second link reuses the copy of an unchanged object" reused
touch "$used_object"
link "$work/tied3" -Xclang-linker "--ld-path=$PWD/scripts/lld-tied-records.py"
remade() {
    [ -n "$(copy_of "$used_object")" ] && [ "$(copy_of "$used_object")" != "$first_copy" ] &&
        [ ! -e "$first_copy" ] && [ "$("$work/tied3")" = "$expected" ]
}
check "a changed object is copied again (the old copy removed), and the program still runs" remade

# Functions the compiler leaves without a name (.text..L__unnamed_N, here the == and hashing
# that the enums' and structs' conformances share) get a local name in the copy
# (scripts/unnamed_functions.py), so that an order file, like the release link's, places them.
mkdir "$work/kinds.build"
cat >"$work/kinds.build/types.swift" <<'SWIFT'
public enum Shade { case light, dark }
public enum Tone { case warm, cool, neutral }
public struct Pair: Codable, Hashable { public var n: Int; public var name: String }
@inline(never) public func same<T: Equatable>(_ a: T, _ b: T) -> Bool { a == b }
SWIFT
cat >"$work/kinds.build/main.swift" <<'SWIFT'
print(same(Shade.light, .dark), same(Tone.warm, .warm), same(Pair(n: 1, name: "a"), Pair(n: 1, name: "a")))
SWIFT
(cd "$work/kinds.build" && swiftc -O -wmo -num-threads 2 -module-name kinds -Xfrontend -function-sections \
    -Xfrontend -internalize-at-link -c types.swift main.swift)
kinds_link() { # output, then extra flags
    local output="$1"
    shift
    swiftc -use-ld=lld "$work/kinds.build/types.o" "$work/kinds.build/main.o" -o "$output" -Xlinker --gc-sections "$@"
}
kinds_link "$work/kinds.build/plain"
kinds_link "$work/kinds.build/named" -Xclang-linker "--ld-path=$PWD/scripts/lld-tied-records.py"
unnamed_named() {
    local file original copy sections named left total=0
    for file in main types; do
        original="$work/kinds.build/$file.o"
        # readelf shows a section symbol by its section's name.
        sections="$(readelf -sW "$original" | awk '$4 == "SECTION" && $8 ~ /^\.text\.\.L/' | wc -l)"
        total=$((total + sections))
        [ "$sections" -gt 0 ] || continue
        copy="$(copy_of "$original")"
        [ -n "$copy" ] || return 1
        named="$(readelf -sW "$copy" | awk -v label="__loopsy_unnamed.kinds.$file." \
            '$4 == "FUNC" && $5 == "LOCAL" && index($8, label) == 1 && length($8) > length(label)' | wc -l)"
        left="$(readelf -sW "$copy" | awk '$4 == "SECTION" && $8 ~ /^\.text\.\.L/' | wc -l)"
        echo "$file.o: unnamed sections with a section symbol: $sections; named in the copy: $named; left unnamed: $left"
        [ "$named" -eq "$sections" ] && [ "$left" -eq 0 ] || return 1
    done
    [ "$total" -gt 0 ]
}
check "each unnamed function of an object gets a local name in its copy" unnamed_named
named_runs() { [ "$("$work/kinds.build/named")" = "$("$work/kinds.build/plain")" ] && [ "$("$work/kinds.build/plain")" = "false true true" ]; }
check "the program linked with them named runs as the one linked directly" named_runs
unnamed_ordered() { # the last of them, named in an order file, comes first in .text
    local last first
    last="$(nm -n "$work/kinds.build/named" | awk '$3 ~ /^__loopsy_unnamed\.kinds\./ {name = $3} END {print name}')"
    [ -n "$last" ] || return 1
    printf '%s\n' "$last" >"$work/kinds.build/order.txt"
    kinds_link "$work/kinds.build/ordered" -Xclang-linker "--ld-path=$PWD/scripts/lld-tied-records.py" \
        -Xlinker "--symbol-ordering-file=$work/kinds.build/order.txt"
    first="$(nm -n "$work/kinds.build/ordered" | awk '$2 ~ /^[tT]$/ {print $3; exit}')"
    echo "ordered: $last; first in .text: $first"
    [ "$first" = "$last" ] && [ "$("$work/kinds.build/ordered")" = "false true true" ]
}
check "an order file that names one places it first" unnamed_ordered

# loopsyd and loopsy are linked without Swift's regex engine (without_regex in the wrapper): a
# program of that name, static as the release programs are, gets a stub in its place.
mkdir "$work/rx"
cat >"$work/rx/main.swift" <<'SWIFT'
import FoundationEssentials

protocol NothingConforms {}
struct Sample: Codable, Hashable { var name: String }

let arguments = CommandLine.arguments.dropFirst()
if arguments.first == "subpaths" {
    // FoundationEssentials calls the engine's trimmingPrefix(_:) here (a function of the stub).
    print(try FileManager.default.subpathsOfDirectory(atPath: arguments.last!).count)
} else if arguments.first == "template" {
    // It parses a URL template with a Regex, whose type it needs first.
    print(URL.Template("http://example.com/{name}") != nil)
} else {
    let json = String(decoding: try JSONEncoder().encode(Sample(name: "x\(arguments.count)")), as: UTF8.self)
    let value: Any = try JSONDecoder().decode(Sample.self, from: Data(json.utf8))
    // Casts scan the conformance records, among them FoundationEssentials' records of regex protocols.
        let style: Any = Date.ISO8601FormatStyle()
    print(json, value is any Hashable, value is any NothingConforms, style is any Hashable)
}
SWIFT
cat >"$work/rx/uses.swift" <<'SWIFT'
print(CommandLine.arguments.joined().contains("needle"), CommandLine.arguments.joined().replacing("a", with: "b"))
SWIFT
rx_link() { # output, sources...
    local output="$1"
    shift
    swiftc -O -static-stdlib -use-ld=lld "$@" -o "$output" -Xlinker --gc-sections \
        -Xclang-linker "--ld-path=$PWD/scripts/lld-tied-records.py"
}
rx_link "$work/rx/reference" "$work/rx/main.swift"
rx_link "$work/rx/loopsyd" "$work/rx/main.swift"
rx_expected='{"name":"x0"} true false true'
rx_runs() { [ "$("$work/rx/reference")" = "$rx_expected" ] && [ "$("$work/rx/loopsyd")" = "$rx_expected" ]; }
check "a program linked without the regex engine runs as one linked with it (JSON, casts past regex conformances)" rx_runs
engine() { nm "$1" | grep -c -E ' [tT] \$s(17_StringProcessing9Processor|12_RegexParser)' || true; }
rx_dropped() {
    echo "with the engine: $(engine "$work/rx/reference") of its functions, without: $(engine "$work/rx/loopsyd")"
    [ "$(engine "$work/rx/reference")" -gt 100 ] && [ "$(engine "$work/rx/loopsyd")" -eq 0 ]
}
check "the engine's code (_StringProcessing, _RegexParser) is in the reference and not in the program named loopsyd" rx_dropped
rx_trap() {
    local status=0
    mkdir -p "$work/rx/tree/sub" && touch "$work/rx/tree/sub/file"
    [ "$("$work/rx/reference" subpaths "$work/rx/tree")" = 2 ] && [ "$("$work/rx/reference" template)" = true ]
    "$work/rx/loopsyd" subpaths "$work/rx/tree" >"$work/rx/trap.out" 2>"$work/rx/trap.err" || status=$?
    cat "$work/rx/trap.out" "$work/rx/trap.err"
    # SIGILL (ud2) after the message, never an answer.
    [ "$status" -eq 132 ] && [ ! -s "$work/rx/trap.out" ] &&
        grep "linked without Swift's regular-expression engine" "$work/rx/trap.err" >/dev/null || return 1
    # Where the runtime needs a regex type's metadata first, it reads the stub's zeros: SIGSEGV.
    status=0
    "$work/rx/loopsyd" template >"$work/rx/trap.out" 2>/dev/null || status=$?
    echo "template: status $status"
    [ "$status" -eq 139 ] && [ ! -s "$work/rx/trap.out" ]
}
check "reaching the engine anyway through FoundationEssentials stops the program (the stub's message, or SIGSEGV on a regex type), never answers" rx_trap
rx_refused() {
    if rx_link "$work/rx/loopsy" "$work/rx/uses.swift" 2>"$work/rx/refused.err"; then return 1; fi
    cat "$work/rx/refused.err"
    grep "loopsy is linked without Swift's regex engine" "$work/rx/refused.err" >/dev/null &&
        grep "StringProtocol.contains(_:)" "$work/rx/refused.err" >/dev/null &&
        grep "replacing" "$work/rx/refused.err" >/dev/null && [ ! -e "$work/rx/loopsy" ]
}
check "a program of its own that uses the engine (contains, replacing) is not linked, and the error names the calls" rx_refused
# The runtime may refer to the engine only where scripts/regex-engine-users.txt says: the same
# wrapper with a list that lacks URL.Template's pairs refuses the link and names them.
mkdir "$work/rx/scripts"
cp scripts/lld-tied-records.py scripts/swift_records.py scripts/unnamed_functions.py "$work/rx/scripts/"
grep -v 'URLTemplate_Expression' scripts/regex-engine-users.txt >"$work/rx/scripts/regex-engine-users.txt"
rx_unreviewed() {
    if swiftc -O -static-stdlib -use-ld=lld "$work/rx/main.swift" -o "$work/rx/unreviewed/loopsyd" -Xlinker --gc-sections \
        -Xclang-linker "--ld-path=$work/rx/scripts/lld-tied-records.py" 2>"$work/rx/unreviewed.err"; then return 1; fi
    cat "$work/rx/unreviewed.err"
    grep "refers to it where nobody has checked" "$work/rx/unreviewed.err" >/dev/null &&
        grep "URLTemplate_Expression.swift.o" "$work/rx/unreviewed.err" >/dev/null
}
mkdir "$work/rx/unreviewed"
check "a runtime archive's reference to the engine that the reviewed list lacks stops the link" rx_unreviewed
rx_stub_reused() { # the stub object is made once for these archives and this wrapper
    local before after
    before="$(stat -c '%n %i %Y' "$work"/rx/.regex-absent-*.o)"
    rx_link "$work/rx/loopsyd" "$work/rx/main.swift" || return 1
    after="$(stat -c '%n %i %Y' "$work"/rx/.regex-absent-*.o)"
    echo "before: $before"$'\n'"after: $after"
    [ "$(echo "$before" | wc -l)" -eq 1 ] && [ "$before" = "$after" ] &&
        [ "$(ls -a "$work/rx" | grep -c '^\.regex-absent')" -eq 1 ] && [ "$("$work/rx/loopsyd")" = "$rx_expected" ]
}
check "linking again reuses the one stub object" rx_stub_reused

check_summary tie-records
