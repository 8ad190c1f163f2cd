"""``python -m srom``: the command line of the srom engine (:mod:`engine.cli`).

The engine itself lives in the ``engine`` package and the dashboard in ``app``; this
package only names the project, so that ``python -m srom train …`` works like ``srom train …``.
"""
