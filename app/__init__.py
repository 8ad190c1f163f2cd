"""The srom dashboard: GUI-free session state (``state``), Bokeh plot builders (``plots``),
thin Panel views (``explore``) and the served entry point (``main``).

Serve it with ``panel serve app/main.py`` (or ``srom serve``).
"""
