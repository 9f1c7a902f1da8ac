#!/usr/bin/env python3
"""Every program the project's shell scripts call must be on a fresh Debian 12 machine: part of
the base system (Priority required or important), or installed by the scripts themselves
(named in a loopsy_apt call or a *_PACKAGES list they use, or pulled in by one of those as a
dependency). A fresh machine lacked rsync once because a session had installed it by hand;
this check reads the scripts as a newcomer's machine would run them.

Usage: python3 Tests/Packaging/script-deps.py   (exit 1 and a list when something is missing)
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Scripts and what runs them: each may use what its runners install.
ENTRY_POINTS = {
    "scripts/setup.sh": ["scripts/lib.sh"],
    "scripts/test.sh": ["scripts/lib.sh"],
    "scripts/build-deb.sh": ["scripts/lib.sh"],
    "scripts/symbol-order.sh": ["scripts/lib.sh"],
    "Tests/Packaging/deb-test.sh": ["scripts/lib.sh", "scripts/test.sh", "scripts/build-deb.sh"],
    "Tests/Fuzz/run.sh": ["scripts/lib.sh", "scripts/test.sh"],
    "Tests/Support/lab.sh": ["scripts/lib.sh", "scripts/test.sh"],
    ".ci/run": ["scripts/lib.sh", "scripts/test.sh"],
}
for name in sorted(os.listdir(os.path.join(ROOT, "bench"))):
    if name.endswith(".sh"):
        ENTRY_POINTS["bench/" + name] = ["scripts/lib.sh"]

COMMAND_POSITION = re.compile(
    r"(?:^|[;&|({`]|\$\(|\bthen\b|\bdo\b|\belse\b|\bexec\b|\bsudo\b|\btimeout\s+\S+|\bxargs\b)\s*"
    r"([A-Za-z][\w.+-]*)(?=\s|$|;|\))")
SHELL_WORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in",
               "function", "local", "export", "return", "set", "shift", "source", "declare", "read", "trap", "wait",
               "cd", "echo", "printf", "true", "false", "test", "eval", "exit", "break", "continue", "command",
               "type", "unset", "let", "exec", "sudo", "timeout", "xargs", "time"}


def text_without_comments_and_heredocs(path):
    lines, heredoc = [], None
    for line in open(path, encoding="utf-8"):
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        match = re.search(r"<<-?\s*'?\"?(\w+)", line)
        if match:
            heredoc = match.group(1)
        stripped = re.sub(r"(^|\s)#.*$", "", line)
        lines.append(stripped)
    return "".join(lines)


def commands(path):
    text = text_without_comments_and_heredocs(path)
    # Functions the script defines are not programs.
    defined = set(re.findall(r"^\s*([\w-]+)\s*\(\)\s*\{", text, re.M))
    found = set()
    for line in text.splitlines():
        # `; do cmd`: the separator's match takes the keyword, so the keyword gets one too.
        line = re.sub(r"\b(then|do|else)\b", r"\1;", line)
        for word in COMMAND_POSITION.findall(line):
            if word not in SHELL_WORDS and word not in defined and not word.startswith("loopsy_"):
                found.add(word)
    return found


def named_packages(path):
    text = text_without_comments_and_heredocs(path)
    names = set()
    for match in re.finditer(r"loopsy_apt\s+([^\n]*)", text):
        names.update(w for w in match.group(1).split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w))
    for match in re.finditer(r'[A-Z_]*PACKAGES="([^"]*)"', text, re.S):
        names.update(match.group(1).split())
    # An optional install done directly (a benchmark's reference tool, when Debian has it).
    for match in re.finditer(r"apt-get install\s+([^\n>|&;]*)", text):
        names.update(w for w in match.group(1).split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w))
    return names


def depends_closure(packages):
    seen, todo = set(), list(packages)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        result = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", package],
                                capture_output=True, text=True)
        for alternative in result.stdout.split(","):
            for option in alternative.split("|"):
                name = option.strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
    return seen


def owner(program):
    path = shutil.which(program)
    if not path:
        return None, None
    real = os.path.realpath(path)
    for candidate in (real, path):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            return path, result.stdout.split(":")[0].split(",")[0].strip()
    return path, None


def priority(package):
    return subprocess.run(["dpkg-query", "-W", "-f=${Priority}", package], capture_output=True, text=True).stdout


def main():
    problems = []
    checked = 0
    for script, runners in sorted(ENTRY_POINTS.items()):
        path = os.path.join(ROOT, script)
        if not os.path.exists(path):
            continue
        allowed = named_packages(path)
        for runner in runners:
            allowed |= named_packages(os.path.join(ROOT, runner))
        allowed = depends_closure(allowed)
        for program in sorted(commands(path)):
            where, package = owner(program)
            if where is None or package is None:
                continue  # not a program here (a variable, a function, or the project's own binary)
            if where.startswith("/opt/swift") or where.startswith(ROOT):
                continue
            checked += 1
            if package in allowed or priority(package) in ("required", "important"):
                continue
            problems.append(f"{script}: calls {program} ({where}, package {package}), which no script installs")
    for problem in problems:
        print(problem)
    print(f"script-deps: {checked} program uses checked, {len(problems)} missing")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
