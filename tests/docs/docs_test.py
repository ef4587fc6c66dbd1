#!/usr/bin/python3
"""docs_test.py - the docs that run (ctest test_docs; issue 13).

Every fenced ```sh block of README.md and docs/*.md is run, in the order of
its document, against the build of this test, with the state of each
document in a temporary directory:

  - the scratch copy: the repository's files (git ls-files: tracked and
    untracked but not ignored; a plain copy without build*/ outside git) in
    TMP/repo, one fresh copy per document; `build` there is a symlink to
    this test's build directory, and TMP/shared to ../shared beside the
    checkout when it exists (the data the docs name as ../shared/data);
  - each block runs in TMP/repo with bash, `set -eo pipefail`, HOME and
    TMPDIR inside TMP, build/bin first on PATH, in a process group of its
    own that is killed when the block ends (a daemon it started with `&`
    included), within a time limit (60 s unless the doc says otherwise);
  - `cmake -S . -B build ...` and `cmake --build build ...` in a block are
    not run again (build/ is this test's build, already made): the block
    prints a note instead;
  - blocks of one document share TMP/repo, so a file an earlier block made
    is there for a later one.

Markers, HTML comments on their own line next to a block (the doc's reader
sees them in the source only):

  <!-- docs-test: skip REASON -->     not run: listed with its reason
  <!-- docs-test: needs PATH -->      run only when PATH (relative to the
                                      repository root) exists, else listed
                                      as not run
  <!-- docs-test: timeout SECONDS --> the block's time limit
  <!-- docs-test: expect REGEX -->    the block's output (stdout and stderr)
                                      must match REGEX (Python re, multiline)
  <!-- docs-test: exit STATUS -->     the block ends with STATUS, not 0 (an
                                      example of an error: its last command)

`expect` and `exit` belong to the block just above it, the others to the block just
below (only blank lines or other markers in between); a marker next to no
sh block is an error. Checks besides running the blocks:

  - every fence has an info string (sh, text, console, json, ...): a block
    of commands cannot escape the test by having none;
  - a block with `sudo`, or naming a path under /etc/, must be marked
    skip (CI runs as root): such a block is never run;
  - every path a command names under a folder of the repository
    (scripts/..., docs/..., agents/examples/...) exists in it (after the
    block ran, for a block that runs: a file an earlier block, or the block
    itself, made counts; for a skipped block, in the repository as it
    is), and every build/... path in the build;
  - in the prose, `scripts/X` and `build/bin/X` in backquotes name a file
    that exists, and a `build-X` folder is one an sh block of the same
    document makes (cmake -B build-X).

usage: docs_test.py --source DIR --build DIR [--static] [--only DOC[:LINE]]
       [--list] [--keep] [--total SECONDS]
  --total    the time for all blocks (default 420 s, within ctest's 480):
             past it a block is stopped and the rest not run, each a
             failure, so that whatever the blocks started is stopped here
  --static   the static checks only, then exit 77 (ctest: skipped) when they
             pass: the sanitizer build's run (the plain build runs it all)
Exit status: 0 all good, 1 a failure (each named by doc:line with its
output), 2 bad usage.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FENCE = re.compile(r"^ {0,3}(`{3,})(.*)$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->\s*$")
MARKER_LOOSE = re.compile(r"^\s*<!--.*docs-test")
KEYWORDS = ("skip", "needs", "timeout", "expect", "exit")
DEFAULT_TIMEOUT = 60
# A path-like word: a folder of the repository, then more.
PATH_WORD = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.+-]+)+/?$")
PROSE_REF = re.compile(r"`((?:scripts|build/bin)/[A-Za-z0-9_.+-]+)")


class Block:
    def __init__(self, doc, line, info, body):
        self.doc = doc
        self.line = line  # the opening fence's line, 1-based
        self.info = info
        self.body = body  # list of lines
        self.skip = None
        self.needs = []
        self.timeout = DEFAULT_TIMEOUT
        self.expect = []  # (line, regex)
        self.exit = 0  # the status the block ends with
        self.unsafe = False  # sudo or /etc without a skip: never run

    @property
    def where(self):
        return "%s:%d" % (self.doc, self.line)


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, msg, output=None):
        self.items.append((where, msg, output))


def parse_doc(doc, text, problems):
    """The sh blocks of one document with their markers; every fence."""
    lines = text.split("\n")
    blocks = []  # sh blocks
    events = []  # ("block", Block, start, end) and ("marker", ...)
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            ticks, info = m.group(1), m.group(2).strip()
            start = i
            i += 1
            body = []
            close = re.compile(r"^ {0,3}" + ticks + r"`*\s*$")
            while i < len(lines) and not close.match(lines[i]):
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                problems.add("%s:%d" % (doc, start + 1), "fence never closed")
            if not info:
                problems.add("%s:%d" % (doc, start + 1),
                             "a fence without an info string: say ```sh for "
                             "commands the docs test runs, ```text or "
                             "```console for anything else")
            b = Block(doc, start + 1, info, body)
            if info.split()[0:1] == ["sh"]:
                blocks.append(b)
                events.append(("block", b, start, i))
            else:
                events.append(("other", b, start, i))
            i += 1
            continue
        mk = MARKER.match(lines[i])
        if mk:
            events.append(("marker", (mk.group(1), mk.group(2)), i, i))
        elif MARKER_LOOSE.search(lines[i]):
            problems.add("%s:%d" % (doc, i + 1),
                         "malformed marker: want <!-- docs-test: KEYWORD "
                         "ARGUMENT --> on a line of its own")
        i += 1
    attach_markers(doc, lines, events, problems)
    return blocks


def adjacent(lines, a, b):
    """Only blank lines or markers between line indexes a and b."""
    for k in range(a + 1, b):
        if lines[k].strip() and not MARKER.match(lines[k]):
            return False
    return True


def attach_markers(doc, lines, events, problems):
    for n, ev in enumerate(events):
        if ev[0] != "marker":
            continue
        (kw, arg), ln = ev[1], ev[2]
        where = "%s:%d" % (doc, ln + 1)
        if kw not in KEYWORDS:
            problems.add(where, "unknown marker docs-test: %s (want one of %s)"
                         % (kw, ", ".join(KEYWORDS)))
            continue
        before = next((e for e in reversed(events[:n]) if e[0] != "marker"),
                      None)
        after = next((e for e in events[n + 1:] if e[0] != "marker"), None)
        prev_b = before if before and adjacent(lines, before[3], ln) else None
        next_b = after if after and adjacent(lines, ln, after[2]) else None
        order = (prev_b, next_b) if kw in ("expect", "exit") \
            else (next_b, prev_b)
        target = next((e for e in order if e is not None), None)
        if target is None or target[0] != "block":
            problems.add(where, "marker docs-test: %s is next to no ```sh "
                         "block" % kw)
            continue
        b = target[1]
        if kw == "skip":
            if not arg:
                problems.add(where, "docs-test: skip needs a reason")
            b.skip = arg or "?"
        elif kw == "needs":
            b.needs.append(arg)
        elif kw == "exit":
            if not arg.isdigit():
                problems.add(where, "docs-test: exit %r is not a status"
                             % arg)
            else:
                b.exit = int(arg)
        elif kw == "timeout":
            try:
                b.timeout = float(arg)
            except ValueError:
                problems.add(where, "docs-test: timeout %r is not seconds"
                             % arg)
        else:
            try:
                re.compile(arg, re.M)
                b.expect.append((ln + 1, arg))
            except re.error as e:
                problems.add(where, "docs-test: expect: bad regex: %s" % e)


def words(body):
    """The words of a block, as the shell splits them (roughly)."""
    text = "\n".join(body)
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()")
    lex.whitespace_split = True
    lex.commenters = "#"
    out = []
    try:
        for w in lex:
            out.append(w)
    except ValueError:
        # unbalanced quotes: fall back to whitespace
        out = [w for ln in body for w in ln.split("#")[0].split()]
    return out


def path_words(body, top):
    """Words of a block that name a path under a folder of the repository
    (or build/)."""
    found = []
    for w in words(body):
        for part in [w] + ([w.split("=", 1)[1]] if "=" in w else []):
            part = part.rstrip(",")
            if not PATH_WORD.match(part) or "://" in part:
                continue
            first = part.split("/")[0]
            if first == "build" or first in top:
                found.append(part)
    return found


def unsafe_check(b, problems):
    """A block with sudo or a path under /etc/ (comments aside) must be
    marked skip: CI runs as root. Such a block is never run."""
    if b.skip is not None:
        return
    ws = words(b.body)
    if "sudo" in ws:
        b.unsafe = True
        problems.add(b.where, "a block with sudo must be marked "
                     "<!-- docs-test: skip REASON --> (the test runs as "
                     "root in CI)")
    if any(w.startswith("/etc/") or "=/etc/" in w for w in ws):
        b.unsafe = True
        problems.add(b.where, "a block that names /etc/ must be marked "
                     "<!-- docs-test: skip REASON -->")


def missing_paths(b, top, repo, build):
    out = []
    for p in path_words(b.body, top):
        if p.split("/")[0] == "build":
            full = os.path.join(build, p.split("/", 1)[1])
        else:
            full = os.path.join(repo, p)
        if not os.path.exists(full):
            out.append(p)
    return sorted(set(out))


def prose_refs(doc, text, repo, build, problems):
    """`scripts/X` and `build/bin/X` in the prose name files that exist;
    `build-X/...` a folder an sh block of the doc makes (-B build-X)."""
    made = set(re.findall(r"-B\s*(build[-\w]*)", "\n".join(
        b for b in re.findall(r"```sh[^\n]*\n(.*?)```", text, re.S))))
    in_fence = False
    for n, line in enumerate(text.split("\n"), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for ref in PROSE_REF.findall(line):
            if ref.endswith("..."):
                continue  # a placeholder: `scripts/...`
            if ref.startswith("build/"):
                full = os.path.join(build, ref[len("build/"):])
            else:
                full = os.path.join(repo, ref)
            if not os.path.exists(full):
                problems.add("%s:%d" % (doc, n), "`%s` names no file" % ref)
        spans = re.findall(r"`([^`]+)`", line)
        for ref in {r for sp in spans for r in re.findall(
                r"(?<![\w/.-])(build-[\w-]+)(?![\w-])", sp)}:
            if ref not in made:
                problems.add("%s:%d" % (doc, n), "`%s/` is made by no ```sh "
                             "block of this document (cmake -B %s)"
                             % (ref, ref))


def copy_repo(src, dst):
    """The repository's files (tracked, and untracked not ignored)."""
    os.makedirs(dst)
    try:
        r = subprocess.run(["git", "-C", src, "ls-files", "-z", "-c", "-o",
                            "--exclude-standard"],
                           capture_output=True, check=True)
        files = [f for f in r.stdout.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk(src):
            rel = os.path.relpath(root, src)
            dirs[:] = [d for d in dirs if not (rel == "." and (
                d.startswith("build") or d == ".git")) and
                d != "node_modules"]
            files += [os.path.normpath(os.path.join(rel, f)) for f in names]
    for f in files:
        s = os.path.join(src, f)
        if not os.path.lexists(s) or os.path.isdir(s):
            continue  # deleted in the work tree, or a submodule
        d = os.path.join(dst, f)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d, follow_symlinks=False)


PRELUDE = r"""set -eo pipefail
cmake() { case " $* " in *" -B build "*|*" --build build "*|*" -Bbuild "*) echo "docs-test: build/ is this test's build, already made: 'cmake $*' not run" >&2; return 0;; esac; command cmake "$@"; }
trap 'echo "docs-test: exit status $? at block line $((LINENO - 3))" >&2' ERR
"""
PRELUDE_LINES = 3


def kill_group(p):
    """Stops what the block left running: its process group (the block's
    shell leads it; reaped here, as a zombie would keep the group)."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        t = time.time() + wait
        while time.time() < t:
            p.poll()
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def run_block(b, work, repo, env, limit):
    script = os.path.join(work, "block-%d.sh" % b.line)
    with open(script, "w") as f:
        f.write(PRELUDE + "\n".join(b.body) + "\n")
    out_path = os.path.join(work, "block-%d.out" % b.line)
    t0 = time.time()
    with open(out_path, "wb") as out:
        p = subprocess.Popen(["bash", script], cwd=repo, env=env,
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT,
                             start_new_session=True)
        timed_out = False
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            rc = None
        except BaseException:  # interrupted: stop the block's processes
            kill_group(p)
            raise
        kill_group(p)
        if rc is None:
            rc = p.wait()
    with open(out_path, "rb") as f:
        output = f.read().decode("utf-8", "replace")
    return rc, timed_out, time.time() - t0, output


def tail(output, n=40):
    lines = output.rstrip("\n").split("\n")
    cut = lines[-n:]
    head = ["  | ... (%d lines before)" % (len(lines) - n)] \
        if len(lines) > n else []
    return "\n".join(head + ["  | " + ln for ln in cut])


def block_env(work, repo):
    home = os.path.join(work, "home")
    tmp = os.path.join(work, "tmp")
    os.makedirs(home, exist_ok=True)
    os.makedirs(tmp, exist_ok=True)
    env = {
        "PATH": os.path.join(repo, "build", "bin") + ":" +
        os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "TERM": "dumb", "SHELL": "/bin/bash",
        "USER": os.environ.get("USER", "root"),
    }
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def run_doc(doc, blocks, args, top, problems, report):
    work = tempfile.mkdtemp(prefix="docs-test.")
    repo = os.path.join(work, "repo")
    try:
        copy_repo(args.source, repo)
        os.symlink(args.build, os.path.join(repo, "build"))
        shared = os.path.join(os.path.dirname(args.source), "shared")
        if os.path.isdir(shared):
            os.symlink(os.path.realpath(shared),
                       os.path.join(work, "shared"))
        env = block_env(work, repo)
        for b in blocks:
            if args.only_line and b.line != args.only_line:
                continue
            run_one(b, work, repo, env, top, args, problems, report)
    finally:
        if args.keep:
            print("docs-test: kept %s (%s)" % (work, doc))
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_one(b, work, repo, env, top, args, problems, report):
    if b.skip is not None:
        report.append((b.where, "skipped: " + b.skip))
        miss = missing_paths(b, top, repo, args.build)
        if miss:
            problems.add(b.where, "names files that do not exist: " +
                         ", ".join(miss))
        return
    if b.unsafe:
        report.append((b.where, "not run: sudo or /etc/ without a skip "
                       "(a failure below)"))
        return
    absent = [n for n in b.needs
              if not os.path.exists(os.path.join(repo, n))]
    if absent:
        report.append((b.where, "not run: needs %s (absent here)"
                       % ", ".join(absent)))
        return
    left = args.deadline - time.time()
    if left <= 1:
        problems.add(b.where, "not run: the docs test's time (--total %g s) "
                     "ran out" % args.total)
        return
    limit = min(b.timeout, left)
    rc, timed_out, secs, output = run_block(b, work, repo, env, limit)
    if timed_out and limit < b.timeout:
        problems.add(b.where, "stopped after %.0f s: the docs test's time "
                     "(--total %g s) ran out" % (limit, args.total), output)
    elif timed_out:
        problems.add(b.where, "still running after %g s (the block's time "
                     "limit; <!-- docs-test: timeout S --> to change it)"
                     % b.timeout, output)
    elif rc != b.exit:
        m = re.search(r"docs-test: exit status \d+ at block line (\d+)",
                      output)
        at = " at %s:%d" % (b.doc, b.line + int(m.group(1))) if m else ""
        problems.add(b.where, "exit status %d%s%s" % (
            rc, at, " (the doc says %d)" % b.exit if b.exit else ""), output)
    for ln, rx in b.expect:
        if not re.search(rx, output, re.M):
            problems.add("%s:%d" % (b.doc, ln), "the output of the block at "
                         "line %d does not match /%s/" % (b.line, rx), output)
    miss = missing_paths(b, top, repo, args.build)
    if miss:
        problems.add(b.where, "names files that do not exist: " +
                     ", ".join(miss))
    report.append((b.where, "ran (%.1f s, exit %s)%s" % (
        secs, "timeout" if timed_out else rc,
        ", %d expectation(s)" % len(b.expect) if b.expect else "")))


def interrupted(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def documents(source):
    docs = ["README.md"]
    ddir = os.path.join(source, "docs")
    docs += sorted("docs/" + f for f in os.listdir(ddir) if f.endswith(".md"))
    return docs


def main():
    ap = argparse.ArgumentParser(description="Run the docs' sh blocks.")
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--static", action="store_true")
    ap.add_argument("--only", default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--total", type=float, default=420)
    args = ap.parse_args()
    args.source = os.path.realpath(args.source)
    args.build = os.path.realpath(args.build)
    args.only_doc, args.only_line = None, None
    if args.only:
        d, _, ln = args.only.partition(":")
        args.only_doc, args.only_line = d, int(ln) if ln else None
    if not os.path.isdir(os.path.join(args.build, "bin")):
        print("docs-test: %s/bin does not exist: build first" % args.build)
        return 2
    problems = Problems()
    top = {e for e in os.listdir(args.source)
           if os.path.isdir(os.path.join(args.source, e))
           and not e.startswith((".", "build"))}
    parsed = []
    for doc in documents(args.source):
        with open(os.path.join(args.source, doc), encoding="utf-8") as f:
            text = f.read()
        blocks = parse_doc(doc, text, problems)
        prose_refs(doc, text, args.source, args.build, problems)
        for b in blocks:
            unsafe_check(b, problems)
        parsed.append((doc, blocks))
    if args.list:
        for doc, blocks in parsed:
            for b in blocks:
                print("%-24s %s%s%s" % (
                    b.where, "skip: %s" % b.skip if b.skip is not None else
                    "run", " needs " + ",".join(b.needs) if b.needs else "",
                    " expect %d" % len(b.expect) if b.expect else ""))
        return 0
    if args.static:  # files named by the blocks that never run
        for doc, blocks in parsed:
            for b in (b for b in blocks if b.skip is not None):
                miss = missing_paths(b, top, args.source, args.build)
                if miss:
                    problems.add(b.where, "names files that do not exist: "
                                 + ", ".join(miss))
    report = []
    t0 = time.time()
    args.deadline = t0 + args.total
    signal.signal(signal.SIGTERM, interrupted)
    nblocks = sum(len(bl) for _, bl in parsed)
    if not args.static:
        for doc, blocks in parsed:
            if args.only_doc and doc != args.only_doc:
                continue
            if blocks:
                run_doc(doc, blocks, args, top, problems, report)
    for where, what in report:
        print("%-24s %s" % (where, what))
    shown = None
    for where, msg, output in problems.items:
        print("\nFAILED %s: %s" % (where, msg))
        if output is not None and output is shown:
            print("  (the block's output is above)")
        elif output is not None:
            print(tail(output))
            shown = output
    nrun = sum(1 for _, w in report if w.startswith("ran"))
    nskip = sum(1 for _, w in report if w.startswith("skipped"))
    nabs = sum(1 for _, w in report if w.startswith("not run: needs"))
    print("\ndocs-test: %d documents, %d sh blocks: %d run, %d skipped "
          "(marked), %d not run (data absent); %d problem(s); %.0f s"
          % (len(parsed), nblocks, nrun, nskip, nabs, len(problems.items),
             time.time() - t0))
    if problems.items:
        return 1
    if args.static:
        print("docs-test: static checks only (fences, markers, sudo, named "
              "files): the blocks run in the plain build's test_docs")
        return 77
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print("docs-test: interrupted (%s): the running block stopped" % e)
        sys.exit(1)
