"""The files tt-metal's mock device needs and the ttnn wheel does not ship, written into optrace's cache.

1. a cluster descriptor YAML for the board (``TT_METAL_MOCK_CLUSTER_DESC_PATH``);
2. a stand-in for the SFPI compiler ``riscv-tt-elf-g++``: it answers ``--version`` with the version
   the wheel's pre-compiled firmware was built with (so no firmware is rebuilt), writes empty
   outputs for compile steps and copies (3) for every kernel link;
3. a minimal RISC-V kernel ELF that tt-metal's ELF loader accepts, written here with ``struct``.

tt-metal looks for the compiler under ``<runtime root>/runtime/sfpi`` and then
``/opt/tenstorrent/sfpi``. optrace never writes into the ttnn package nor shadows a real compiler:
when no real compiler exists, it builds a private runtime root in the cache (symlinks to the ttnn
package's own folders plus our ``runtime/sfpi``). replay/backends/device.py points tt-metal at
them. Never imports ttnn or torch.
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import shlex
import struct
import sys
from pathlib import Path

MOCK_BOARDS = ("n150", "n300", "p150", "p100")
COMPILER_NAME = "riscv-tt-elf-g++"
SYSTEM_SFPI_ROOT = "/opt/tenstorrent/sfpi"


class DeviceSetupError(RuntimeError):
    """The device cannot be opened; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Cluster descriptors. Harvest masks decide the usable Tensix grid; these give the grids seen on
# shipping boards (n150/n300: 8x8 compute grid per chip; p150/p100: 11x10). The p100 has one DRAM
# channel harvested (7 banks) and no Ethernet.

_WORMHOLE_CHIP = "{chip}: {{noc_translation: true, harvest_mask: 64, dram_harvesting_mask: 0, " \
                 "eth_harvesting_mask: 0, pcie_harvesting_mask: 0}}"
_BLACKHOLE_CHIP = "0: {{noc_translation: true, harvest_mask: 192, dram_harvesting_mask: {dram}, " \
                  "eth_harvesting_mask: {eth}, pcie_harvesting_mask: 2, l2cpu_harvesting_mask: 0}}"


# UMD reads the board type from bits 36.. of the board id (the board's UPI).
_BOARD_UPI = {"n150": 0x18, "n300": 0x14, "p150": 0x40, "p100": 0x43}


def _board_id(board: str) -> int:
    return (_BOARD_UPI[board] << 36) | 1


def cluster_descriptor_yaml(board: str) -> str:
    """The YAML tt-metal's mock cluster reads for one of MOCK_BOARDS."""
    if board == "n150":
        return "\n".join([
            "arch: {0: wormhole_b0}",
            "chips: {0: [0, 0, 0, 0]}",
            "ethernet_connections: []",
            "chips_with_mmio: [{0: 0}]",
            "harvesting: {" + _WORMHOLE_CHIP.format(chip=0) + "}",
            f"boards: [[{{board_id: {_board_id(board)}}}, {{board_type: n150}}, {{chips: [0]}}]]", ""])
    if board == "n300":
        return "\n".join([
            "arch: {0: wormhole_b0, 1: wormhole_b0}",
            "chips: {0: [0, 0, 0, 0], 1: [1, 0, 0, 0]}",
            "ethernet_connections: [[{chip: 0, chan: 8}, {chip: 1, chan: 0}], "
            "[{chip: 0, chan: 9}, {chip: 1, chan: 1}]]",
            "chips_with_mmio: [{0: 0}]",
            "harvesting: {" + _WORMHOLE_CHIP.format(chip=0) + ", " + _WORMHOLE_CHIP.format(chip=1) + "}",
            f"boards: [[{{board_id: {_board_id(board)}}}, {{board_type: n300}}, {{chips: [0, 1]}}]]", ""])
    if board in ("p150", "p100"):
        dram, eth = (0, 288) if board == "p150" else (8, 16383)
        return "\n".join([
            "arch: {0: blackhole}",
            "chips: {}",
            "ethernet_connections: []",
            "ethernet_connections_to_remote_devices: []",
            "chips_with_mmio: [{0: 0}]",
            "io_device_type: PCIe",
            "harvesting: {" + _BLACKHOLE_CHIP.format(dram=dram, eth=eth) + "}",
            f"boards: [[{{board_id: {_board_id(board)}}}, {{board_type: {board}}}, {{chips: [0]}}]]", ""])
    raise DeviceSetupError(f"unknown board {board!r}; the mock device knows {', '.join(MOCK_BOARDS)}")


# ---------------------------------------------------------------------------------------------
# The minimal kernel ELF

_EM_RISCV = 243
_R_RISCV_HI20, _R_RISCV_LO12_I = 26, 27
_DATA_VADDR = 0x4000


def kernel_elf_bytes() -> bytes:
    """A tiny RISC-V kernel executable tt-metal's loader accepts (it is never executed).

    What the loader checks: ET_EXEC for EM_RISCV, 32-bit little-endian; the first PT_LOAD is text
    with the entry at its start; segments word-aligned; .data at the start of the second segment,
    whose load address is packed right after text; a .rela.text section targeting .text.
    """
    # text: lui a0, %hi(dummy); addi a0, a0, %lo(dummy); ret
    text = struct.pack("<3I", ((_DATA_VADDR >> 12) << 12) | (10 << 7) | 0x37,
                       (10 << 15) | (10 << 7) | 0x13, 0x00008067)
    data = struct.pack("<I", 0)
    strtab = b"\0dummy\0_start\0"
    shstrtab = b"\0.text\0.data\0.rela.text\0.symtab\0.strtab\0.shstrtab\0"

    def name(table: bytes, s: str) -> int:
        return table.index(s.encode() + b"\0")

    # symbols: null, dummy (local object in .data, section 2), _start (global func in .text, section 1)
    symtab = (struct.pack("<IIIBBH", 0, 0, 0, 0, 0, 0)
              + struct.pack("<IIIBBH", name(strtab, "dummy"), _DATA_VADDR, 4, 0x01, 0, 2)
              + struct.pack("<IIIBBH", name(strtab, "_start"), 0, len(text), 0x12, 0, 1))
    rela = (struct.pack("<IIi", 0, (1 << 8) | _R_RISCV_HI20, 0)
            + struct.pack("<IIi", 4, (1 << 8) | _R_RISCV_LO12_I, 0))

    ehsize, phentsize, phnum, shentsize = 52, 32, 2, 40
    off = ehsize + phnum * phentsize
    layout = {}
    blob = b""
    for key, payload in (("text", text), ("data", data), ("symtab", symtab), ("rela", rela),
                         ("strtab", strtab), ("shstrtab", shstrtab)):
        pad = (-(off + len(blob))) % 4
        blob += b"\0" * pad
        layout[key] = off + len(blob)
        blob += payload
    blob += b"\0" * ((-(off + len(blob))) % 4)
    shoff = off + len(blob)

    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + b"\0" * 8
    header = ident + struct.pack("<HHIIIIIHHHHHH", 2, _EM_RISCV, 1, 0, ehsize, shoff, 0,
                                 ehsize, phentsize, phnum, shentsize, 7, 6)
    phdrs = (struct.pack("<8I", 1, layout["text"], 0, 0, len(text), len(text), 5, 4)
             + struct.pack("<8I", 1, layout["data"], _DATA_VADDR, len(text), len(data), len(data), 6, 4))

    def shdr(nm, typ, flags, addr, key, size, link=0, info=0, align=4, entsize=0):
        return struct.pack("<10I", nm, typ, flags, addr, layout[key] if key else 0, size,
                           link, info, align, entsize)

    sections = (shdr(0, 0, 0, 0, None, 0, align=0)
                + shdr(name(shstrtab, ".text"), 1, 0x6, 0, "text", len(text))            # 1
                + shdr(name(shstrtab, ".data"), 1, 0x3, _DATA_VADDR, "data", len(data))  # 2
                + shdr(name(shstrtab, ".symtab"), 2, 0, 0, "symtab", len(symtab), 4, 2, 4, 16)  # 3
                + shdr(name(shstrtab, ".strtab"), 3, 0, 0, "strtab", len(strtab), align=1)      # 4
                + shdr(name(shstrtab, ".rela.text"), 4, 0x40, 0, "rela", len(rela), 3, 1, 4, 12)  # 5
                + shdr(name(shstrtab, ".shstrtab"), 3, 0, 0, "shstrtab", len(shstrtab), align=1))  # 6
    return header + phdrs + blob + sections


# ---------------------------------------------------------------------------------------------
# Reading the installed ttnn without importing it

def ttnn_package_dir() -> Path:
    """The installed ttnn package folder (found without importing ttnn)."""
    spec = importlib.util.find_spec("ttnn")
    if spec is None or not spec.submodule_search_locations:
        raise DeviceSetupError(f"ttnn is not installed for {sys.executable}; replay needs the ttnn "
                               "environment (.venv-ttnn, see scripts/setup.sh)")
    return Path(list(spec.submodule_search_locations)[0])


def _elf_comment(path: Path) -> str:
    """The .comment section of a 32-bit ELF, or '' when it has none."""
    b = path.read_bytes()
    if b[:4] != b"\x7fELF" or b[4] != 1:
        return ""
    shoff, = struct.unpack_from("<I", b, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x2E)
    sections = [struct.unpack_from("<10I", b, shoff + i * shentsize) for i in range(shnum)]
    names_at = sections[shstrndx][4]
    for s in sections:
        nm = b[names_at + s[0]: b.index(b"\0", names_at + s[0])]
        if nm == b".comment":
            return b[s[4]: s[4] + s[5]].split(b"\0")[0].decode(errors="replace")
    return ""


def sfpi_version_line(ttnn_dir: Path) -> str:
    """The `riscv-tt-elf-g++ --version` first line the wheel's pre-compiled firmware was built with.

    Firmware is keyed by a hash that includes this line, so it must match exactly; it is read from
    the firmware ELFs' .comment ("GCC: (tenstorrent/sfpi:7.89.0[1050]) 15.1.0").
    """
    for elf in sorted(glob.glob(str(ttnn_dir / "tt_metal" / "pre-compiled" / "*" / "*" / "*.elf")))[:8]:
        comment = _elf_comment(Path(elf))
        if comment.startswith("GCC: "):
            return f"{COMPILER_NAME} {comment[len('GCC: '):]}"
    raise DeviceSetupError(f"cannot read the SFPI compiler version from the firmware under "
                           f"{ttnn_dir / 'tt_metal' / 'pre-compiled'}; is the ttnn install complete?")


def real_compiler(ttnn_dir: Path) -> str | None:
    """A real SFPI compiler tt-metal would find, if any."""
    for root in (ttnn_dir / "runtime" / "sfpi", Path(SYSTEM_SFPI_ROOT)):
        gxx = root / "compiler" / "bin" / COMPILER_NAME
        if gxx.exists():
            return str(gxx)
    return None


# ---------------------------------------------------------------------------------------------
# Writing the mock files

def repo_root() -> Path:
    """The repository checkout this module lives in (replay/backends/ -> two levels up)."""
    return Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """optrace's cache folder: $OPTRACE_CACHE, else <repo>/.cache/optrace."""
    env = os.environ.get("OPTRACE_CACHE")
    return Path(env) if env else repo_root() / ".cache" / "optrace"


_STUB = """#!/bin/sh
# optrace's stand-in for the SFPI compiler, for tt-metal's mock device only (no real board, no
# real compiler installed). It compiles nothing: compile steps get empty outputs, links to *.elf
# get a minimal kernel ELF (replay/backends/mock_device.py's, as octal escapes). Written by optrace.
if [ "$1" = "--version" ]; then
  echo {version}
  exit 0
fi
out=""; mf=""; mmd=0; prev=""
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  [ "$prev" = "-MF" ] && mf="$a"
  [ "$a" = "-MMD" ] && mmd=1
  prev="$a"
done
[ -n "$out" ] || exit 0
# shell builtins only (one process per step, not four): a cold kernel cache runs this thousands of times
case "$out" in
  */*) [ -d "${{out%/*}}" ] || mkdir -p "${{out%/*}}" || exit 1 ;;
esac
case "$out" in
  *.elf) printf '{elf_octal}' > "$out" || exit 1 ;;
  *) : > "$out" || exit 1 ;;
esac
if [ "$mmd" = 1 ]; then
  [ -n "$mf" ] || mf="${{out%.*}}.d"
  echo "$out:" > "$mf"
fi
exit 0
"""


def _write_if_changed(path: Path, content: bytes, mode: int | None = None) -> None:
    if not (path.exists() and path.read_bytes() == content):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(content)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)


def _link(dst: Path, src: Path) -> None:
    if dst.is_symlink() and os.readlink(dst) == str(src):
        return
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(src, tmp)
    os.replace(tmp, dst)


def _build_runtime_root(root: Path, ttnn_dir: Path, compiler: Path) -> None:
    """A runtime root that is the ttnn package's own, except runtime/sfpi is ours."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in ttnn_dir.iterdir():
        if entry.name not in ("runtime", "__pycache__"):
            _link(root / entry.name, entry)
    (root / "runtime").mkdir(exist_ok=True)
    for entry in (ttnn_dir / "runtime").iterdir():
        if entry.name != "sfpi":
            _link(root / "runtime" / entry.name, entry)
    sfpi = root / "runtime" / "sfpi"
    (sfpi / "include").mkdir(parents=True, exist_ok=True)
    (sfpi / "compiler" / "bin").mkdir(parents=True, exist_ok=True)
    _link(sfpi / "compiler" / "bin" / COMPILER_NAME, compiler)


def write_mock_files(board: str, cache: Path | None = None) -> dict[str, str]:
    """Write (idempotently) the descriptor, kernel ELF, compiler stand-in and runtime root.

    Returns the paths: descriptor, kernel_elf, compiler, runtime_root ('' when a real compiler is
    installed and used instead of ours).
    """
    cache = Path(cache) if cache else cache_dir()
    mock = cache / "mock"
    ttnn_dir = ttnn_package_dir()
    descriptor = mock / f"cluster-{board}.yaml"
    _write_if_changed(descriptor, cluster_descriptor_yaml(board).encode())
    elf = mock / "kernel.elf"
    _write_if_changed(elf, kernel_elf_bytes())
    real = real_compiler(ttnn_dir)
    if real:
        return {"descriptor": str(descriptor), "kernel_elf": str(elf), "compiler": real, "runtime_root": ""}
    compiler = mock / "sfpi-stand-in" / COMPILER_NAME
    stub = _STUB.format(version=shlex.quote(sfpi_version_line(ttnn_dir)),
                        elf_octal="".join(f"\\{b:03o}" for b in kernel_elf_bytes()))
    _write_if_changed(compiler, stub.encode(), 0o755)
    # One runtime root per ttnn install, so two ttnn environments can share a cache folder.
    root = mock / ("runtime-root-" + _short_id(str(ttnn_dir)))
    _build_runtime_root(root, ttnn_dir, compiler)
    return {"descriptor": str(descriptor), "kernel_elf": str(elf), "compiler": str(compiler),
            "runtime_root": str(root) + "/"}


def _short_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]
