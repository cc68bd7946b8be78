"""Studies built on replay: ``remedies`` (the cheapest configuration that works), ``headroom`` (the
largest resolution and batch that still replays), ``repro`` (a standalone ttnn pytest per signature).
"""
