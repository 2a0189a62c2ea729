#!/usr/bin/env python3
"""Runs h2spec (the HTTP/2 conformance suite) against the hub, over TLS and over h2c, and
compares its failures with tests/h2spec-exceptions.txt: a failure not listed there fails
the run (a listed exception that passes is only noted: some depend on timing).

    tests/h2spec/run.py H2SPEC_BINARY [h2spec arguments, e.g. --strict or http2/5.1]

The hubs are the binary of $QS_BINARY (default build/mercure), started with a test
certificate: one serving https (protocols h1 h2, the default), one serving plain HTTP with
`protocols h1 h2c`. Each h2spec run has a timeout; the hubs are stopped on every path.
"""

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import qs  # noqa: E402

EXCEPTIONS = REPO / "tests" / "h2spec-exceptions.txt"
TARGETS = ("tls", "h2c")


def load_exceptions():
    """{(target, test id): reason}"""
    out = {}
    for n, line in enumerate(EXCEPTIONS.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise SystemExit("%s:%d: expected `TARGETS TEST-ID REASON`" % (EXCEPTIONS, n))
        targets, test, reason = parts
        for t in targets.split(","):
            if t not in TARGETS:
                raise SystemExit("%s:%d: unknown target %r" % (EXCEPTIONS, n, t))
            out[(t, test)] = reason
    return out


def results(junit):
    """{test id: failure text or None} from h2spec's JUnit report; a test's id is its
    section's package and its rank there ("http2/5.1/8"), as h2spec names it."""
    out = {}
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        for i, case in enumerate(suite.findall("testcase"), 1):
            key = "%s/%d" % (case.get("package") or suite.get("package"), i)
            if case.find("skipped") is not None:
                continue
            failure = case.find("error")
            if failure is None:
                failure = case.find("failure")
            out[key] = None if failure is None else (
                "%s: %s" % (case.get("classname"),
                            " / ".join((failure.text or "").split("\n"))[:300]))
    return out


def run_target(h2spec, target, extra_args, work):
    tls = qs.TLSFiles(work / "tls") if target == "tls" else None
    env = {"GLOBAL_OPTIONS": "protocols h1 h2c"} if target == "h2c" else None
    hub = qs.Hub.start(work / ("hub-" + target), tls=tls, env=env)
    try:
        junit = work / ("%s.xml" % target)
        argv = [h2spec, "-h", qs.HOST, "-p", str(hub.port), "-P", qs.HUB_PATH, "-o", "3",
                "-j", str(junit)] + (["-t", "-k"] if tls else []) + list(extra_args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=600)
        tail = p.stdout.strip().splitlines()[-1:] or ["(no output)"]
        print("h2spec over %s: %s" % (target, tail[0]))
        if not junit.exists():
            raise SystemExit("h2spec wrote no report:\n" + p.stdout[-3000:] + p.stderr[-2000:])
        if not hub.alive():
            raise SystemExit("the hub died under h2spec:\n" + hub.crash_report())
        return results(junit)
    finally:
        rc = hub.stop()
        report = hub.sanitizer_report()
        if rc != 0 or report:
            raise SystemExit("the %s hub did not stop cleanly (exit %r):\n%s"
                             % (target, rc, hub.stderr()[-5000:]))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    h2spec, extra_args = sys.argv[1], sys.argv[2:]
    exceptions = load_exceptions()
    problems = []
    passed = failed = excepted = 0
    with tempfile.TemporaryDirectory(prefix="qs-h2spec-") as tmp:
        for target in TARGETS:
            res = run_target(h2spec, target, extra_args, Path(tmp))
            for test, failure in sorted(res.items()):
                known = exceptions.get((target, test))
                if failure is None:
                    passed += 1
                    if known:
                        # Some pass or fail by timing (see the file): a note, not an error.
                        print("  listed exception %s %s passed this time" % (target, test))
                elif known:
                    excepted += 1
                    print("  exception %s %s: %s" % (target, test, known))
                else:
                    failed += 1
                    problems.append("%s %s failed: %s" % (target, test, failure))
    for p in problems:
        print("h2spec: " + p, file=sys.stderr)
    print("h2spec: %d passed, %d failed, %d listed exceptions" % (passed, failed, excepted))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
