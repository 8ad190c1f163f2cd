"""Thin Panel/Bokeh views over :mod:`app.state`: they build widgets from the state's params,
draw plots whose data they update in place, and hold no logic of their own.

* tabs: :mod:`.explore` (``ExploreView``), :mod:`.sensitivity` (``SensitivityView``),
  :mod:`.training` (``TrainingView``), :mod:`.about`;
* their parts: :mod:`.controls`, :mod:`.explore_tools`, :mod:`.field_maps`, :mod:`.pinning`,
  :mod:`.simulation_progress`, :mod:`.presentation`;
* plot builders: :mod:`.plots`, :mod:`.training_plots`;
* :mod:`.polling`: periodic callbacks that drain worker results on the session thread.
"""
