# Shared by the packaging tests: `check DESCRIPTION COMMAND...` runs the command, prints ok or
# FAIL (with the last of its output), and counts; `check_summary NAME` prints the counts and
# fails when any check did. Sourced, not run.
passed=0 failed=0
check_log="$(mktemp)"
check() { # description, command...
    local description="$1"
    shift
    if "$@" >"$check_log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $description"
    else
        failed=$((failed + 1))
        echo "FAIL $description"
        sed 's/^/     /' "$check_log" | tail -20
    fi
}
check_summary() { # name
    rm -f "$check_log"
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
