"""Backends: one captured signature in, one ReplayResult out.

Each backend is a module with ``run_signature(sig, arg_names, settings) -> ReplayResult``:
``estimate`` (analytic memory model, pure Python), ``torch_ref`` (the CPU reference, needs torch)
and ``ttnn_ops`` (real ttnn, needs ttnn; run inside a worker process). ``device`` opens a real board
or ttnn's mock device, ``devices`` holds the boards' memory facts, ``footprint`` models ttnn's
allocator for one buffer, ``numerics`` compares outputs with torch on a real board.
"""
