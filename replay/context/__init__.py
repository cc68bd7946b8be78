"""In-context replay: one model's whole call sequence in order, live tensors resident.

``plan`` (steps, lifetimes, call records), ``changes`` (what a port changes: placement, dtype, frees,
folds, applied by both sides), ``estimate`` (the estimate's in-context allocator),
``worker`` (the ttnn side, a worker process) and ``run`` (runs either and writes the results).
"""
