"""The srom dashboard, split by job:

* :mod:`app.state`: the session state and the GUI-free logic behind it (``param`` classes,
  the model catalog, scheduling, limits, URL state, exports); it imports no Panel or Bokeh,
  so the CLI, notebooks and tests drive it without a browser;
* :mod:`app.views`: thin Panel/Bokeh views over that state (widgets, plots, tabs);
* :mod:`app.main`: the served entry point; :mod:`app.notebook`: the dashboard in Jupyter.

Serve it with ``panel serve app/main.py`` (or ``srom serve``).
"""
