"""The dashboard's session state and GUI-free logic; no module here imports Panel or Bokeh
(``tests/test_layering.py`` checks it).

* session state (``param``): :mod:`.explore` (``ExploreState``: model, μ, forcing, paths,
  horizon, seed, the prediction and the simulator truth), :mod:`.sensitivity`
  (``SensitivityState``), :mod:`.training` (``TrainingState``);
* what the views show: :mod:`.specs` (μ and forcing specs, bands), :mod:`.scenarios`,
  :mod:`.model_summary`, :mod:`.model_cost`, :mod:`.code_snippets`, :mod:`.export`,
  :mod:`.safe_text` (escaping of untrusted text);
* models and data: :mod:`.catalog`, :mod:`.model_archive`, :mod:`.upload`,
  :mod:`.upload_worker`, :mod:`.simulate`, :mod:`.simulation_run`;
* running work: :mod:`.scheduler`, :mod:`.background`, :mod:`.worker`, :mod:`.training_job`,
  :mod:`.training_process`, :mod:`.job_records`, :mod:`.limits`, :mod:`.memory`;
* :mod:`.url_state`: the state a page URL carries.

Nothing is re-exported here, so importing one module does not load the others.
"""
