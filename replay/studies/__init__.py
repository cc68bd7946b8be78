"""Studies built on replay: ``remedies`` (the cheapest configuration that works), ``context_remedies``
(the cheapest change to how a model holds its tensors that lets it pass in context), ``headroom`` (the
largest resolution and batch that still replays; its searches in ``search``, its records and JSON
file in ``headroom_result``), ``repro`` (a standalone ttnn pytest per signature). They store results;
replay.report reads them.
"""
