"""Adds up the CPU of trafilatura's own work in every Python process started with this folder on PYTHONPATH and
``TRAFILATURA_CPU_LOG`` set (``benchmarks/crawl_peer.py``): the CPU of each ``trafilatura.extract`` call and of
trafilatura's import (its dependencies included), appended to that file as ``PID KIND SECONDS`` lines.

gristmill's reader and datatrove's extractor both call ``trafilatura.extract`` through the module attribute, so
wrapping the attribute once the module is loaded catches every call. datatrove extracts in a forked sandbox
process: the wrapper is inherited, and each call writes its line at once (a forked child may end without
running exit handlers). CPU is the calling thread's (``thread_time``), so another thread's work is not counted."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time

LOG = os.environ.get("TRAFILATURA_CPU_LOG")


def _record(kind: str, seconds: float) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {kind} {seconds:.6f}\n".encode())
    finally:
        os.close(fd)


def _timed(extract):
    def timed_extract(*args, **kwargs):
        start = time.thread_time()
        try:
            return extract(*args, **kwargs)
        finally:
            _record("call", time.thread_time() - start)

    return timed_extract


class _TrafilaturaFinder(importlib.abc.MetaPathFinder):
    """Finds trafilatura with the other finders and times its loading, then wraps its ``extract``. It stays in
    place: a dependency check (``importlib.util.find_spec``) asks for a spec it never loads."""

    finding = False

    def find_spec(self, name, path, target=None):
        if name != "trafilatura" or self.finding:
            return None
        self.finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.finding = False
        load = spec.loader.exec_module

        def timed_load(module):
            start = time.thread_time()
            load(module)
            _record("import", time.thread_time() - start)
            module.extract = _timed(module.extract)

        spec.loader.exec_module = timed_load
        return spec


if LOG:
    sys.meta_path.insert(0, _TrafilaturaFinder())
