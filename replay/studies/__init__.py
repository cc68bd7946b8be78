"""Studies built on replay: ``remedies`` (the cheapest configuration that works), ``headroom`` (the
largest resolution and batch that still replays; its searches in ``search``, its records and JSON
file in ``headroom_result``), ``repro`` (a standalone ttnn pytest per signature). They store results;
replay.report reads them.
"""
