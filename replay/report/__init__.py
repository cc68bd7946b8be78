"""Reports: replay results attributed back to models, layers and calls, rendered as HTML, Markdown,
CSV, JSON and terminal text. ``data`` is the report's typed content, ``attribution`` the
accounting, ``build`` assembles a Report; ``context``, ``remedies`` and ``headroom`` turn what the
in-context runs and the studies stored into report rows; ``html`` and ``text`` render it.
"""
