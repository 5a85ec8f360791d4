#!/usr/bin/env python3
"""Runs an example model's first-comment command as a user would copy it, and checks what
it reports.

    first_comment.py MODEL.og --binary build/opgraph --scratch DIR [--plugins DIR]
                     --expect KEY>=VALUE ... [--file NAME ...]

The command is the first `opgraph train ...` line in the model's leading comment
(continued over lines ending in a backslash). It runs in DIR with `opgraph` replaced by
the built binary and `--json` added; each --expect compares a number of the JSON result
(NaN, printed as null, fails every comparison); each --file must exist in DIR afterwards.
Exit 77 (a skip) when the command needs MNIST and OPGRAPH_DATA does not point at it,
unless OPGRAPH_REQUIRE_DATA is set.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys


def first_command(path):
    lines, text = [], open(path, encoding="utf-8").read().splitlines()
    for line in text:
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    joined = " ".join(lines).replace("\\ ", " ")
    m = re.search(r"opgraph train .*", joined)
    if not m:
        sys.exit(f"{path}: no 'opgraph train' command in its first comment")
    # The command ends where the comment's prose resumes (a sentence after it is rare).
    return shlex.split(m.group(0))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--binary", required=True)
    p.add_argument("--scratch", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--plugins", default="")
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--file", action="append", default=[])
    a = p.parse_args()

    argv = first_command(os.path.join(a.source, a.model))
    needs_mnist = any(s.startswith("mnist") for s in argv)
    data = os.environ.get("OPGRAPH_DATA", "")
    if needs_mnist and not os.path.isdir(os.path.join(data, "mnist")):
        if os.environ.get("OPGRAPH_REQUIRE_DATA"):
            sys.exit(f"{a.model}: needs MNIST, and OPGRAPH_REQUIRE_DATA is set but OPGRAPH_DATA={data!r} holds none")
        print(f"SKIP {a.model}: needs MNIST (set OPGRAPH_DATA)")
        sys.exit(77)
    shutil.rmtree(a.scratch, ignore_errors=True)
    os.makedirs(a.scratch)
    argv[0] = a.binary
    # Paths in the command are relative to the source tree, as a user runs it from there;
    # outputs (--plot DIR, --save) land in the scratch folder.
    argv = [os.path.join(a.source, x) if x.endswith(".og") else x for x in argv]
    # So are files a data spec reads (text:file=examples/text/...).
    argv = [re.sub(r"(?<=file=)([^,]+)",
                   lambda m: os.path.join(a.source, m.group(1))
                   if not os.path.isabs(m.group(1)) and os.path.exists(os.path.join(a.source, m.group(1)))
                   else m.group(1), x) for x in argv]
    if a.plugins:
        argv = [os.path.join(a.plugins, os.path.basename(x)) if x.endswith(".so") else x for x in argv]
    argv.append("--json")
    print("$", " ".join(shlex.quote(x) for x in argv), flush=True)
    run = subprocess.run(argv, cwd=a.scratch, capture_output=True, text=True)
    sys.stderr.write(run.stderr)
    print(run.stdout)
    if run.returncode != 0:
        sys.exit(f"FAIL: exit {run.returncode}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    failed = False
    for e in a.expect:
        key, op, value = re.match(r"(\w+)(>=|<=)(.+)", e).groups()
        got = result.get(key)
        ok = isinstance(got, (int, float)) and (got >= float(value) if op == ">=" else got <= float(value))
        print(f"{'ok' if ok else 'FAIL'}: {key} = {got}, expected {op} {value}")
        failed |= not ok
    for f in a.file:
        ok = os.path.isfile(os.path.join(a.scratch, f))
        print(f"{'ok' if ok else 'FAIL'}: {f} {'written' if ok else 'missing'}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
