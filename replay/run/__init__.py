"""The engine: unique signatures across traces, replayed once each, journaled as they finish.

``runner`` collects cases and journals results, ``drivers`` hosts a backend (in this process, or a
pool of crash-isolated ttnn workers), ``pool`` and ``worker`` are those worker processes.
"""
