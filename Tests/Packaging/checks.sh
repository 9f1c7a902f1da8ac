# Shared by the packaging tests: a scratch directory, $work, removed on exit (a test that sets an
# EXIT trap of its own calls checks_cleanup from it); `check DESCRIPTION COMMAND...` runs the
# command, prints ok or FAIL (with the last of its output), and counts; `check_summary NAME`
# prints the counts and fails when any check did. Sourced, not run.
work="$(mktemp -d)"
checks_cleanup() { rm -rf "$work"; }
trap checks_cleanup EXIT
passed=0 failed=0
check() { # description, command...
    local description="$1"
    shift
    if "$@" >"$work/check.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $description"
    else
        failed=$((failed + 1))
        echo "FAIL $description"
        sed 's/^/     /' "$work/check.log" | tail -20
    fi
}
check_summary() { # name
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
