#!/usr/bin/env python3
"""Runs the commands of a markdown document and compares the outputs it quotes.

  run_docs.py DOC --source SRC --binary OPGRAPH --scratch DIR [--prefix PREFIX] [--plugins DIR]
              [--python PYTHON]

The conventions, also written in docs/contributing.md:

  ```sh                 each command runs (`opgraph` is the binary under test), in order, in
                        one scratch folder per document where examples/, tests/, docs/,
                        datasets/ and build/ lead to the source tree and the build
  ```sh skip            an illustration, never run (say why in the text)
  ```python             the block is a Python program, run by the interpreter the module was
                        built for (`python3` in commands is that one too) with PYTHONPATH
                        leading to build/python; its output may follow (`python skip`,
                        `python data` as for sh)
  ```sh run             (docs/adding-an-op.md) runs against the installed package (--prefix)
  ```sh exit=1          the last command must exit with this status (default 0)
  ```sh data            needs $OPGRAPH_DATA (skipped without it, a failure with
                        OPGRAPH_REQUIRE_DATA=1)
  ```sh files=A:B,...   placeholder A in the commands stands for the file B (B relative to
                        the source tree; @plugins/NAME for a test plugin)
  ```LANG file=PATH     the block's text is written to PATH in the scratch folder
  ```LANG excerpt=PATH  the block is a quote of PATH (source tree): its lines must appear
                        there, one after another, as written
  ```output tested      error lines quoted without a command: each must be one the test suite
                        checks (found in tests/: a string of a test source (C++, or a
                        pytest regex with its escapes removed), or a line of the
                        bad-input corpus, where any model file stands as model.og)
  ```output             what the block before printed: its stderr lines, then its stdout
                        lines. A line "..." stands for any lines, "..." inside a line for
                        any text. Numbers match exactly unless the block says
                        tolerance=F (relative).

Exits 0 when every command ran as its block says and every quoted output matched, 1
otherwise, 77 when nothing could run for want of data.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def blocks(text):
    """(info words, body lines, line number) for every fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(.*)$", lines[i])
        if not m:
            i += 1
            continue
        info, start = m.group(1).split(), i + 1
        body = []
        i += 1
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        yield info, body, start
        i += 1


def attributes(info):
    out = {}
    for word in info[1:]:
        k, _, v = word.partition("=")
        out[k] = v
    return out


def commands(body):
    """Logical command lines: continuations joined, comments and blank lines dropped."""
    out, current = [], ""
    for line in body:
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        # A '#' after a space starts a comment (none of our commands quote one).
        cmd = re.sub(r"\s+#.*$", "", current).strip()
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
        current = ""
    return out


def line_pattern(expected, tolerance):
    parts = expected.split("...")
    regex, numbers = "", []
    for k, part in enumerate(parts):
        if k:
            regex += ".*?"
        if tolerance is None:
            regex += re.escape(part)
            continue
        pos = 0
        for m in re.finditer(NUMBER, part):
            regex += re.escape(part[pos:m.start()]) + "(" + NUMBER + ")"
            numbers.append(float(m.group(0)))
            pos = m.end()
        regex += re.escape(part[pos:])
    return re.compile(regex + r"\s*$"), numbers


def line_matches(expected, actual, tolerance):
    pattern, numbers = line_pattern(expected.rstrip(), tolerance)
    m = pattern.match(actual.rstrip())
    if not m:
        return False
    for want, got in zip(numbers, m.groups()):
        if abs(float(got) - want) > tolerance * max(abs(want), 1e-12):
            return False
    return True


def output_matches(expected, actual, tolerance):
    """Backtracking match of expected lines ("..." = any lines) against actual lines."""
    memo = {}

    def match(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(expected):
            r = j == len(actual)
        elif expected[i].strip() == "...":
            r = any(match(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            r = j < len(actual) and line_matches(expected[i], actual[j], tolerance) and match(i + 1, j + 1)
        memo[(i, j)] = r
        return r

    return match(0, 0)


def tested_messages(source):
    """Every expected message of the test suite, as one searchable text."""
    texts = []
    for folder, _, names in os.walk(os.path.join(source, "tests")):
        for name in names:
            if name.endswith((".cpp", ".hpp", ".txt", ".py")):
                t = open(os.path.join(folder, name), encoding="utf-8", errors="replace").read()
                if name.endswith(".py"):  # messages in pytest.raises(match=r"...") are regexes
                    t = re.sub(r'"\s*\n\s*r?"', "", t)
                    t = re.sub(r"\\([()\[\].?*+^$|{}])", r"\1", t)
                t = re.sub(r'"\s*\n\s*"', "", t)  # "a" "b" split over lines -> "ab"
                t = re.sub(r"@[A-Z]@/[^ :]*?\.og", "model.og", t)
                texts.append(t)
    return "\n".join(texts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("doc")
    ap.add_argument("--source", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--prefix")
    ap.add_argument("--plugins")
    ap.add_argument("--python", help="the interpreter of the Python module (python3 in the commands)")
    a = ap.parse_args()
    a.source = os.path.abspath(a.source)
    a.scratch = os.path.abspath(a.scratch)
    doc_path = os.path.join(a.source, a.doc)
    text = open(doc_path, encoding="utf-8").read()
    shutil.rmtree(a.scratch, ignore_errors=True)
    os.makedirs(a.scratch)
    for sub in ["examples", "tests", "docs", "datasets", "bench", "cmake", "graph", "ops", "optim", "frontends"]:
        os.symlink(os.path.join(a.source, sub), os.path.join(a.scratch, sub))
    os.symlink(os.path.dirname(os.path.abspath(a.binary)), os.path.join(a.scratch, "build"))
    bindir = os.path.join(a.scratch, ".bin")
    os.makedirs(bindir)
    os.symlink(os.path.abspath(a.binary), os.path.join(bindir, "opgraph"))
    if a.python:
        os.symlink(a.python, os.path.join(bindir, "python3"))
    data = os.environ.get("OPGRAPH_DATA", "")
    require = os.environ.get("OPGRAPH_REQUIRE_DATA") == "1"

    failures, ran, compared, skipped, missing_data = [], 0, 0, 0, 0
    last = None  # (stderr lines + stdout lines, the command) of the last block run
    for info, body, line_no in blocks(text):
        if not info:
            continue
        lang, attrs = info[0], attributes(info)
        where = f"{a.doc}:{line_no}"
        if "excerpt" in attrs:
            source = open(os.path.join(a.source, attrs["excerpt"]), encoding="utf-8").read().split("\n")
            quote = [l.rstrip() for l in body]
            lines = [l.rstrip() for l in source]
            if not any(lines[i:i + len(quote)] == quote for i in range(len(lines) - len(quote) + 1)):
                failures.append(f"{where}: the quote of {attrs['excerpt']} is not in that file as written")
            compared += 1
            continue
        if "file" in attrs:
            path = os.path.join(a.scratch, attrs["file"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w", encoding="utf-8").write("\n".join(body) + "\n")
            continue
        if lang == "output" and "tested" in attrs:
            corpus = tested_messages(a.source)
            for line in body:
                if line.strip() and line.strip() not in corpus:
                    failures.append(f"{where}: no test checks the quoted message: {line.strip()}")
            compared += 1
            continue
        if lang == "output":
            if last is None:
                failures.append(f"{where}: an output block with no command block before it")
                continue
            tol = float(attrs["tolerance"]) if "tolerance" in attrs else None
            if not output_matches(body, last[0], tol):
                failures.append(f"{where}: the output of `{last[1]}` differs from the document:\n--- quoted\n" +
                                "\n".join(body) + "\n--- printed (stderr, then stdout)\n" + "\n".join(last[0]))
            compared += 1
            last = None
            continue
        if lang not in ("sh", "python"):
            continue
        last = None
        if lang == "python":
            # A program: one command that runs the block's text, as a reader would paste it.
            script = os.path.join(a.scratch, f".block{line_no}.py")
            open(script, "w", encoding="utf-8").write("\n".join(body) + "\n")
            cmds = [f"PYTHONPATH=build/python python3 {script}"]
        else:
            cmds = commands(body)
        if "skip" in attrs:
            skipped += len(cmds)
            continue
        if "data" in attrs and not data:
            if require:
                failures.append(f"{where}: needs OPGRAPH_DATA, and OPGRAPH_REQUIRE_DATA=1")
            missing_data += len(cmds)
            continue
        files = {}
        for pair in filter(None, attrs.get("files", "").split(",")):
            name, _, target = pair.partition(":")
            if target.startswith("@plugins/"):
                target = os.path.join(a.plugins or "", target[len("@plugins/"):])
            else:
                target = os.path.join(a.source, target)
            files[name] = target
        for name, target in files.items():
            link = os.path.join(a.scratch, name)
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(target, link)
        env = dict(os.environ)
        env["PATH"] = (os.path.join(a.prefix, "bin") + ":" if "run" in attrs and a.prefix else bindir + ":") + env["PATH"]
        if a.prefix:
            env["OPGRAPH_PREFIX"] = a.prefix
        want_exit = int(attrs.get("exit", "0"))
        for k, cmd in enumerate(cmds):
            if re.match(r"^\.?/?scripts/", cmd):
                failures.append(f"{where}: `{cmd}` runs a project script: mark the block `sh skip`")
                continue
            try:
                p = subprocess.run(["bash", "-c", cmd], cwd=a.scratch, env=env, capture_output=True, text=True,
                                   timeout=900)
            except subprocess.TimeoutExpired:
                failures.append(f"{where}: `{cmd}` did not finish in 15 minutes")
                continue
            ran += 1
            expected = want_exit if k == len(cmds) - 1 else 0
            if p.returncode != expected:
                failures.append(f"{where}: `{cmd}` exited {p.returncode}, the document expects {expected}:\n" +
                                p.stderr[-2000:])
            last = (p.stderr.splitlines() + p.stdout.splitlines(), cmd)
    summary = (f"{a.doc}: {ran} commands run, {compared} quoted outputs compared, {skipped} commands in blocks "
               f"marked skip" + (f", {missing_data} needing data not run" if missing_data else ""))
    print(summary)
    for f in failures:
        print("FAIL " + f)
    if failures:
        return 1
    if ran == 0 and missing_data:
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
