#!/usr/bin/env bash
# libFuzzer on the parsers that see untrusted bytes. Each target is compiled with
# -sanitize=fuzzer,address from the parser sources it covers (as one module, so no package
# build with sanitizers is needed) and run for SECONDS (default 20) on the committed seed corpus
# in Tests/Fuzz/corpus/<target>; new inputs go to .build/fuzz/corpus/<target>, crashes to
# .build/fuzz/crashes. Usage: bash Tests/Fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
loopsy_swift
seconds="${1:-20}"
shift || true
out=.build/fuzz
api=$(ls Sources/LoopsyAPI/*.swift)
declare -A sources=(
    [json]="$api"
    [multipart]="Sources/LoopsyTransfer/MultipartParser.swift Sources/LoopsyAPI/String+Trimming.swift Sources/LoopsyPOSIX/String+Search.swift"
    [sse]="Sources/LoopsyClient/SSEParser.swift Sources/LoopsyAPI/JSONValue.swift"
    [config]="Sources/LoopsyConfig/YAML.swift Sources/LoopsyConfig/Config.swift Sources/LoopsyConfig/ConfigParser.swift
              Sources/LoopsyConfig/ConfigParser+Sections.swift $api"
)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json multipart sse config)
mkdir -p "$out/crashes"
printf '| target | seconds | runs | coverage | corpus | result |\n|---|---|---|---|---|---|\n' >"$out/summary.md"
for target in "${targets[@]}"; do
    [ -n "${sources[$target]:-}" ] || loopsy_die "no fuzz target '$target' (have: ${!sources[*]})"
    src="$out/src/$target"
    rm -rf "$src"
    mkdir -p "$src" "$out/corpus/$target"
    # One module: imports of our own modules go, the files are compiled together.
    for file in ${sources[$target]}; do sed '/^import Loopsy/d' "$file" >"$src/$(basename "$file")"; done
    cp "Tests/Fuzz/targets/$target.swift" "$src/FuzzTarget.swift"
    loopsy_log "fuzz: building $target"
    # CPosix (glibc's GNU extensions) is a module map with a header: found on the include path.
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name Fuzz"${target^}" -I Sources/CPosix "$src"/*.swift \
        -o "$out/$target" 2>"$out/$target.build.log" || { cat "$out/$target.build.log" >&2; loopsy_die "building $target failed"; }
    loopsy_log "fuzz: running $target for $seconds s"
    status=0
    "$out/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/crashes/$target-" "$out/corpus/$target" "Tests/Fuzz/corpus/$target" \
        >"$out/$target.log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$target.log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -oE 'cov: [0-9]+' "$out/$target.log" | tail -1 | grep -o '[0-9]*' || echo 0)
    corpus=$(ls "$out/corpus/$target" | wc -l)
    result=$([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "$runs" "$cov" "$corpus" "$result" >>"$out/summary.md"
    if [ "$status" -ne 0 ]; then
        tail -40 "$out/$target.log" >&2
        loopsy_die "fuzz target $target failed; the input is in $out/crashes (replay: $out/$target <file>)"
    fi
done
cat "$out/summary.md"
