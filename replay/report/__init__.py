"""Reports: replay results attributed back to models, layers and calls, rendered as HTML, Markdown,
CSV, JSON and terminal text. ``data`` is the report's typed content, ``attribution`` the
accounting, ``build`` assembles a Report; ``context``, ``remedies`` and ``headroom`` turn what the
in-context runs and the studies stored into report rows; ``groups`` groups a zoo by task and family
(summaries, the fix order by models unblocked); ``combine`` puts reports over separate results sets
side by side; ``html`` (``html_parts``, ``html_groups``) and ``text`` render it.
"""
