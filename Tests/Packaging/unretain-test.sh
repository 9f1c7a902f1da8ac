#!/usr/bin/env bash
# Checks scripts/unretain-archives.py on the toolchain's real runtime archives: the copies differ
# from them only in the retain flag of function sections; Swift's metadata sections keep it; a
# second run rewrites nothing; a different source file (as a new toolchain brings, even with an
# older date) is copied again; two runs at once both succeed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
loopsy_swift

source Tests/Packaging/checks.sh

# The toolchain's runtime, copied as the release link gets it (the script finds it through swiftc).
python3 scripts/unretain-archives.py "$work/toolchain-copies"
toolchain="$(sed -n 's|^\(.*\)/libswiftCore\.a=.*|\1|p' "$work/toolchain-copies/remap.txt")"
found_toolchain() { [ -f "$toolchain/libswiftCore.a" ] && [ -f "$work/toolchain-copies/libswiftCore.a" ]; }
check "without a source directory, the copies are of swiftc's own runtime" found_toolchain
# A small source directory: two real archives (libswiftCore.a is required to be there).
mkdir "$work/source"
cp -p "$toolchain/libswiftCore.a" "$toolchain/libswiftSynchronization.a" "$work/source/"
python3 scripts/unretain-archives.py "$work/source" "$work/copies"

same_size() { [ "$(stat -c %s "$work/source/libswiftCore.a")" = "$(stat -c %s "$work/copies/libswiftCore.a")" ]; }
check "a copy has the size of its source (its symbol index stays valid)" same_size

# Section flags of one member, source against copy: only .text.* sections may lose R.
(cd "$work" && mkdir a b && cd a && ar x ../source/libswiftCore.a Swift.o && cd ../b && ar x ../copies/libswiftCore.a Swift.o)
readelf -SW "$work/a/Swift.o" >"$work/a.sections"
readelf -SW "$work/b/Swift.o" >"$work/b.sections"
only_text_unretained() {
    python3 - "$work/a.sections" "$work/b.sections" <<'PY'
import sys
def sections(path):
    """(name, flags) of each section in readelf -SW's table (flags may be empty)."""
    found = []
    for line in open(path):
        if not line.lstrip().startswith("[") or "]" not in line or "Nr]" in line:
            continue
        fields = line.split("]", 1)[1].split()
        found.append((fields[0], fields[6] if len(fields) == 10 else ""))
    return found
before, after = sections(sys.argv[1]), sections(sys.argv[2])
assert len(before) == len(after) and before, "section lists differ"
cleared = 0
for (name, old), (name2, new) in zip(before, after):
    assert name == name2, (name, name2)
    if old == new:
        assert not (name.startswith(".text.") and "R" in new), f"{name} still retained"
        continue
    assert name.startswith(".text.") and old.replace("R", "") == new, (name, old, new)
    cleared += 1
assert cleared > 1000, f"only {cleared} function sections changed"
kept = [name for name, flags in after if name.startswith("swift5_") and "R" in flags]
assert kept, "no swift5_* section kept its retain flag"
PY
}
check "only function sections lost the retain flag, swift5_* sections kept it" only_text_unretained

remap_line() { grep -qxF "$work/source/libswiftCore.a=$work/copies/libswiftCore.a" "$work/copies/remap.txt"; }
check "the remap file maps the toolchain's archive to its copy" remap_line

touch -d '2000-01-01' "$work/copies/remap.txt" "$work/copies/libswiftCore.a"
python3 scripts/unretain-archives.py "$work/source" "$work/copies"
untouched() { [ "$(stat -c %Y "$work/copies/remap.txt")" = "$(date -d 2000-01-01 +%s)" ]; }
check "a second run rewrites nothing (programs are not linked again)" untouched

# A new toolchain: another file at the same path, with an older date than the copy.
cp "$work/source/libswiftSynchronization.a" "$work/source/libswiftCore.a.new"
touch -d '1999-01-01' "$work/source/libswiftCore.a.new"
mv "$work/source/libswiftCore.a.new" "$work/source/libswiftCore.a"
python3 scripts/unretain-archives.py "$work/source" "$work/copies"
recopied() {
    [ "$(stat -c %s "$work/copies/libswiftCore.a")" = "$(stat -c %s "$work/source/libswiftCore.a")" ] &&
        [ "$(stat -c %Y "$work/copies/remap.txt")" != "$(date -d 2000-01-01 +%s)" ]
}
check "an older but different source is copied again, and the remap file renewed" recopied

rm -rf "$work/copies"
python3 scripts/unretain-archives.py "$work/source" "$work/copies" & first=$!
python3 scripts/unretain-archives.py "$work/source" "$work/copies" & second=$!
together() { wait "$first" && wait "$second" && same_size; }
check "two runs at once both succeed" together

check_summary unretain
