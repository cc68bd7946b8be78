"""The recorder's accelerators, built here, loaded here, optional everywhere: capture/_accel.c (the
per-call bookkeeping in C) and capture/_dispatch.cpp (torch's dispatch of the recorder in C++,
built against the capture environment's torch).

The recorder's pure-Python path is the reference; the extensions do the same work on the same
containers, so a trace is byte-identical on every path. ``load()`` returns the C module only when it
was built from the current source (its SOURCE_SHA), makes records with capture.schema's fields, and
OPTRACE_PURE_PYTHON is not set; else None, and the recorder runs in Python. ``load_dispatch()``
returns the C++ module only when load() does, it was built from the current source for this torch,
and OPTRACE_PYTHON_DISPATCH is not set; else None, and torch calls the recorder from Python.
scripts/setup.sh builds both into the source tree:

    .venv/bin/python -m capture.accel          # build what is missing or stale; prints what it did
    .venv/bin/python -m capture.accel --check  # exit 1 unless both built modules are current
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_accel.c")
DISPATCH_SOURCE = Path(__file__).with_name("_dispatch.cpp")
PURE_ENV = "OPTRACE_PURE_PYTHON"
PYTHON_DISPATCH_ENV = "OPTRACE_PYTHON_DISPATCH"


def source_sha() -> str:
    """The first 16 hex digits of the source's sha256: what a current build carries as SOURCE_SHA."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def dispatch_sha() -> str:
    """The C++ module's SOURCE_SHA: its source's and the torch it is built against (version and place:
    it links that torch's libraries)."""
    spec = importlib.util.find_spec("torch")
    torch_dir = str(Path(spec.origin).parent) if spec and spec.origin else "no torch"
    version = _torch_version(torch_dir)
    return hashlib.sha256(DISPATCH_SOURCE.read_bytes() + f"\0{version}\0{torch_dir}".encode()).hexdigest()[:16]


def _torch_version(torch_dir: str) -> str:
    try:
        return Path(torch_dir, "version.py").read_text().split("__version__", 1)[1].split("'")[1]
    except (OSError, IndexError):
        return "unknown"


def target() -> Path:
    """Where the built module goes: beside the source, with this interpreter's extension suffix."""
    return SOURCE.with_name("_accel" + sysconfig.get_config_var("EXT_SUFFIX"))


def dispatch_target() -> Path:
    """Where the built C++ module goes: beside target()."""
    return SOURCE.with_name("_dispatch" + sysconfig.get_config_var("EXT_SUFFIX"))


@functools.cache
def load():
    """The built module if it is current and not switched off (OPTRACE_PURE_PYTHON=1), else None."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None
    try:
        module = importlib.import_module("capture._accel")
    except ImportError:
        return None
    if getattr(module, "SOURCE_SHA", None) != source_sha():
        return None
    # the records it makes without their __init__ must have the fields it sets, in order
    from capture.schema import OpCall, TensorMeta
    if (module.OPCALL_FIELDS, module.META_FIELDS) != (_field_names(OpCall), _field_names(TensorMeta)):
        return None
    return module


@functools.cache
def load_dispatch():
    """The built C++ dispatch if load() gives the C module, it is current for this torch and not
    switched off (OPTRACE_PYTHON_DISPATCH=1), else None."""
    if load() is None or os.environ.get(PYTHON_DISPATCH_ENV, "") not in ("", "0"):
        return None
    import torch  # noqa: F401  (the module links torch's libraries, loaded by importing torch)
    try:
        module = importlib.import_module("capture._dispatch")
    except ImportError:
        return None
    return module if getattr(module, "SOURCE_SHA", None) == dispatch_sha() else None


def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def build(force: bool = False) -> Path:
    """Compile _accel.c with this interpreter's C compiler and flags into target(); a current build
    is kept unless force."""
    if not force and is_current():
        return target()
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    flags = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    ldshared = shlex.split(sysconfig.get_config_var("LDSHARED") or "cc -shared")
    # LDSHARED names the compiler and -shared; compiling and linking in one step with it
    cmd = [*ldshared, *flags, "-O2", "-Wall", "-Werror", f"-I{sysconfig.get_paths()['include']}",
           f'-DOPTRACE_ACCEL_SOURCE_SHA="{source_sha()}"', str(SOURCE)]
    if ldshared[0] != cc[0]:
        cmd[0] = cc[0]
    return _compile(cmd, target())


def build_dispatch(force: bool = False) -> Path:
    """Compile _dispatch.cpp with this interpreter's C++ compiler against the installed torch
    (its headers, its C++ ABI, its libraries) into dispatch_target(); a current build is kept unless force."""
    if not force and is_dispatch_current():
        return dispatch_target()
    import torch
    torch_dir = Path(torch.__file__).parent
    cxx = shlex.split(sysconfig.get_config_var("CXX") or "c++")
    flags = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    lib = torch_dir / "lib"
    cmd = [*cxx, "-shared", *flags, "-O2", "-std=c++20", "-Wall", "-Werror",
           f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
           f"-I{sysconfig.get_paths()['include']}", f"-I{torch_dir / 'include'}",
           f"-I{torch_dir / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
           f'-DOPTRACE_DISPATCH_SOURCE_SHA="{dispatch_sha()}"', str(DISPATCH_SOURCE),
           f"-L{lib}", "-lc10", "-ltorch_cpu", "-ltorch_python", f"-Wl,-rpath,{lib}"]
    return _compile(cmd, dispatch_target())


def _compile(cmd: list[str], out: Path) -> Path:
    """Run the compiler command with `-o` a temporary file beside out, then rename it to out."""
    fd, tmp = tempfile.mkstemp(suffix=out.suffix, prefix=f".{out.name.split('.')[0].lstrip('_')}-", dir=out.parent)
    os.close(fd)
    try:
        subprocess.run([*cmd, "-o", tmp], check=True, capture_output=True, text=True)
        os.replace(tmp, out)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"building {out.name} failed ({' '.join(cmd)}):\n{e.stderr.strip()}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def is_current() -> bool:
    """target() exists and was built from the current source (its bytes carry the source's SOURCE_SHA;
    importing it to ask would pin that file)."""
    out = target()
    return out.exists() and source_sha().encode() in out.read_bytes()


def is_dispatch_current() -> bool:
    """dispatch_target() exists and was built from the current source for the installed torch."""
    out = dispatch_target()
    return out.exists() and dispatch_sha().encode() in out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    """Build the modules (--force: even when current), or --check that both are current. The C
    module failing to build is exit status 2 (the recorder runs in pure Python); the C++ one only
    warns (the recorder is dispatched through Python)."""
    args = sys.argv[1:] if argv is None else argv
    force = "--force" in args
    status = 0
    for name, source, current, make, without, required in (
            ("_accel", SOURCE, is_current, build, "the recorder will run in pure Python", True),
            ("_dispatch", DISPATCH_SOURCE, is_dispatch_current, build_dispatch,
             "torch will call the recorder from Python", False)):
        was_current = current()
        if "--check" in args:
            print(f"capture.accel: {name} {'is current' if was_current else 'is missing or stale'}")
            status = status or (0 if was_current else 1)
            continue
        try:
            out = make(force=force)
        except (RuntimeError, OSError, ImportError) as e:
            print(f"capture.accel: {e}; {without}", file=sys.stderr)
            if required:
                return 2
            continue
        state = "is current" if was_current and not force else "built"
        print(f"capture.accel: {out.name} {state} ({source.name})")
    return status


if __name__ == "__main__":
    sys.exit(main())
