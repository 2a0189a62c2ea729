"""Deployment tests: run by scripts/test-deploy, which builds the image, the helper image,
the Debian package and helm first, and removes every container, network and volume named
here when it exits, whatever happened."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# Figures measured by the tests, printed at the end of the run (and kept in a file when
# QS_DEPLOY_FIGURES names one).
FIGURES = {}


def pytest_configure(config):
    config.qs_figures = FIGURES


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("measured")
    for k, v in FIGURES.items():
        terminalreporter.write_line("%-52s %s" % (k, v))
    path = os.environ.get("QS_DEPLOY_FIGURES")
    if path:
        with open(path, "a") as f:
            for k, v in FIGURES.items():
                f.write("%s\t%s\n" % (k, v))
