"""Where compiled kernels are cached: ``NUMBA_CACHE_DIR`` when the user set it, else
``$XDG_CACHE_HOME/gristmill/numba`` (``~/.cache/gristmill/numba``).

numba's own default is a ``__pycache__`` folder beside each source file, which is read-only in an installed
package, a container image or a Ray job's unpacked working directory; then every process recompiles (seconds
per kernel module). A fixed, user-writable folder lets every later process, and every Ray worker on the node,
load the kernels instead. numba reads the variable when first imported; when it was imported before, its setting
is changed directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np


def numba_cache_dir() -> Path:
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gristmill" / "numba"


def use_numba_cache_dir() -> Path:
    """Point numba's cache at ``numba_cache_dir()``; call before the kernels' decorators run."""
    path = numba_cache_dir()
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    numba = sys.modules.get("numba")
    if numba is not None:  # imported already (``require("numba", ...)``): its settings were read then
        numba.config.CACHE_DIR = str(path)
    return path


def tables_cache_dir() -> Path:
    """Where lookup tables derived from the Unicode database and the regex engine are kept (with the kernels)."""
    return numba_cache_dir() / "tables"


def cached_bytes(name: str, key: str, build: Callable[[], bytes]) -> bytes:
    """``build()``'s bytes, kept in ``tables_cache_dir()`` under ``name`` and a hash of ``key``, so that a table
    that takes a process a noticeable part of a second to derive is derived once per machine.

    ``key`` must name everything the bytes depend on (library versions, the source that builds them): another
    key is another file. The file is written whole under a temporary name and renamed, so a reader never sees a
    partial one; a cache folder that cannot be written is no error (the bytes are built every time then)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    path = tables_cache_dir() / f"{name}-{digest}.bin"
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
    except OSError:
        pass
    return data


# --- ahead-of-time compiled kernel modules ------------------------------------------------------------------------
#
# Loading numba-cached kernels still costs a process about 0.45 CPU s: importing numba, initializing its CPU
# target (which imports scipy.linalg for BLAS) and reading the cache. The same kernels compiled once ahead of time
# (numba.pycc) into an extension module under the cache folder load in milliseconds, without numba. That module
# is specific to the kernels' source, the interpreter, numpy and the CPU (it is compiled for the host CPU, as the
# JIT is), all part of its file name; it is built by the first process that needs it, under a lock, while any other
# process uses the JIT kernels meanwhile. Where it cannot be built (no C compiler, numba without pycc) the reason is
# kept beside it and every later process uses the JIT kernels without trying again.

AOT_ENV = "GRISTMILL_AOT"  # "0": JIT kernels only (no module compiled ahead of time is built or loaded)
_TUPLE_COMMA = re.compile(r",(?!\])")  # between a tuple's elements, not the comma of a 2-D array's "[,]"
_NUMPY_CODES = {"u1": "uint8", "u4": "uint32", "u8": "uint64", "i4": "int32", "i8": "int64", "f8": "float64",
                "b1": "boolean"}


@dataclasses.dataclass(frozen=True)
class KernelSignature:
    """One kernel's argument and return types in a short notation: ``u1 u4 u8 i4 i8 f8 b1`` are scalars,
    ``i8[]`` a C-contiguous 1-D array, ``u4[,]`` a C-contiguous 2-D array; ``void`` returns nothing and
    ``(i8,i8)`` a tuple."""

    args: tuple[str, ...]
    returns: str = "void"

    @classmethod
    def parse(cls, text: str) -> "KernelSignature":
        """``"u1[] i8[] i8 -> i8"`` (arguments, then what it returns; ``-> void`` may be left out)."""
        args, _, returns = text.partition("->")
        return cls(tuple(args.split()), returns.strip() or "void")

    def numba(self) -> str:
        """The signature as numba's ``pycc`` export needs it."""
        return f"{_numba_type(self.returns)}({', '.join(_numba_type(a) for a in self.args)})"

    def check(self, kernel: str, values: tuple) -> None:
        """A compiled module reads its arguments as the types it was built for, whatever they are: a wrong
        dtype or layout would be read as raw memory, so it is refused here."""
        if len(values) != len(self.args):
            raise TypeError(f"kernel {kernel} takes {len(self.args)} arguments, got {len(values)}")
        for i, (code, value) in enumerate(zip(self.args, values)):
            if not _matches(code, value):
                got = (f"{value.dtype}[{value.ndim}-D, {'C' if value.flags.c_contiguous else 'strided'}]"
                       if isinstance(value, np.ndarray) else type(value).__name__)
                raise TypeError(f"kernel {kernel}: argument {i} must be {code}, got {got}")


def _numba_type(code: str) -> str:
    if code == "void":
        return "void"
    if code.startswith("("):
        elements = _TUPLE_COMMA.split(code[1:-1])
        return f"Tuple(({', '.join(_numba_type(c) for c in elements)},))"
    if code.endswith("[,]"):
        return f"{_NUMPY_CODES[code[:-3]]}[:, ::1]"
    if code.endswith("[]"):
        return f"{_NUMPY_CODES[code[:-2]]}[::1]"
    return _NUMPY_CODES[code]


def _matches(code: str, value) -> bool:
    if code.endswith("]"):
        dims = 2 if code.endswith("[,]") else 1
        return (isinstance(value, np.ndarray) and value.dtype == np.dtype(code.split("[")[0])
                and value.ndim == dims and value.flags.c_contiguous)
    if code == "b1":
        return isinstance(value, (bool, np.bool_))
    if code == "f8":
        return isinstance(value, (float, int, np.floating, np.integer))
    return isinstance(value, (int, np.integer))


class CheckedKernels:
    """The kernels of one module, each called through its signature's argument check; ``source`` says which
    build they come from ("aot": the module compiled ahead of time, "jit": numba's)."""

    def __init__(self, module, signatures: dict[str, KernelSignature], source: str):
        self.source = source
        for name, signature in signatures.items():
            setattr(self, name, _checked(name, getattr(module, name), signature))


def _checked(name: str, function, signature: KernelSignature):
    def call(*args):
        signature.check(name, args)
        return function(*args)

    call.__name__ = name
    return call


def load_kernels(module: str, signatures: dict[str, str], sources: tuple[str, ...]) -> CheckedKernels:
    """The kernels ``signatures`` (name -> signature text, see ``KernelSignature``) of the numba module
    ``module``: from its ahead-of-time build when there is one (built now, if this process can take the build
    lock), else the JIT-compiled functions of ``module`` itself. ``sources``: the modules whose source the
    compiled code depends on (the kernel module and the constants it reads)."""
    parsed = {name: KernelSignature.parse(text) for name, text in signatures.items()}
    if os.environ.get(AOT_ENV, "1") != "0":
        try:
            built = _aot_module(module, parsed, sources)
        except OSError:  # an unwritable cache folder: the kernels still work, compiled by the JIT
            built = None
        if built is not None:
            return CheckedKernels(built, parsed, "aot")
    return CheckedKernels(importlib.import_module(module), parsed, "jit")


def aot_module_path(module: str, signatures: dict[str, KernelSignature], sources: tuple[str, ...]) -> Path:
    """Where the ahead-of-time build of these kernels lives: its name carries a digest of everything the
    machine code depends on."""
    digest = hashlib.sha256()
    for part in (module, repr(sorted((n, s.numba()) for n, s in signatures.items())), sys.version,
                 np.__version__, platform.machine(), _cpu_identity()):
        digest.update(part.encode() + b"\0")
    for name in sources:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    numba_spec = importlib.util.find_spec("numba")  # found, not imported: its version file is read
    version_file = Path(numba_spec.origin).with_name("_version.py") if numba_spec and numba_spec.origin else None
    digest.update(version_file.read_bytes() if version_file and version_file.exists() else b"-")
    name = f"{module.rpartition('.')[2].lstrip('_')}_{digest.hexdigest()[:20]}"
    return numba_cache_dir() / "aot" / (name + importlib.machinery.EXTENSION_SUFFIXES[0])


def _cpu_identity() -> str:
    """The host CPU's model and instruction-set flags (the code is compiled for them)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f.read(1 << 16).splitlines() if line.startswith(("model name", "flags"))]
        return "\n".join(lines[:2])
    except OSError:
        return platform.processor()


def _aot_module(module: str, signatures: dict[str, KernelSignature], sources: tuple[str, ...]):
    """The ahead-of-time build of these kernels, built now if needed and possible; None: use the JIT kernels."""
    path = aot_module_path(module, signatures, sources)
    if not path.exists() and not _build_once(module, signatures, path):
        return None
    spec = importlib.util.spec_from_file_location(path.name.split(".")[0], path)
    built = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(built)
    except ImportError:  # built against something this process does not have after all
        return None
    return built


def _build_once(module: str, signatures: dict[str, KernelSignature], path: Path) -> bool:
    """Build ``path`` unless another process is building it or an earlier build failed (the reason is kept in
    ``PATH.failed``); whether it exists now."""
    failed = path.with_name(path.name + ".failed")
    if failed.exists():
        return False
    try:
        import fcntl
    except ImportError:  # no POSIX file locks (Windows): the JIT kernels
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process is building it: this one uses the JIT kernels
            return False
        if not path.exists():
            try:
                _build_aot(module, signatures, path)
            except Exception as exc:  # noqa: BLE001 - any failure to build leaves the JIT kernels in use
                failed.write_text(f"{type(exc).__name__}: {exc}\n")
                return False
    return True


def _build_aot(module: str, signatures: dict[str, KernelSignature], path: Path) -> None:
    import warnings

    kernels = importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc is "pending deprecation"; no replacement exists yet
        from numba.pycc import CC

        compiler = CC(path.name.split(".")[0], source_module=kernels)
    compiler.target_cpu = "host"
    for name, signature in signatures.items():
        compiler.export(name, signature.numba())(getattr(kernels, name).py_func)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        compiler.output_dir = tmp
        compiler.compile()
        os.replace(Path(tmp) / compiler.output_file, path)

