"""Backends: one captured signature in, one ReplayResult out (the interface: ``base.Backend``).

``estimate`` (the analytic memory model, pure Python), ``torch_ref`` (the CPU reference, needs
torch) and ``ttnn_ops`` (real ttnn, needs ttnn; runs inside a worker process) each offer a backend
constructed with its settings, ``run(case) -> ReplayResult``. ``device`` opens a real board or ttnn's
mock device (``mock_device`` writes the mock's files), ``devices`` holds the boards' memory facts,
``footprint`` models ttnn's allocator for one buffer, ``input_rules`` builds valid torch inputs,
``numerics`` compares outputs with torch on a real board.
"""
