"""Stop the file dropper's animation loop on pages that show no file dropper.

The Train tab's upload box is Panel's ``FileDropper``, a FilePond widget. Its script is on
every page (``pn.extension("filedropper")``: the Train tab is put on the page only when it
is first opened, so its scripts must be there from the start), and FilePond starts a
60 Hz ``requestAnimationFrame`` loop as soon as its script loads, whether or not any drop
box exists. On the 2-core machine that loop cost each idle page ~6 % of a core in the
renderer plus ~2 % in the GPU process (software compositing): ten idle pages took almost
half of one core (``benchmarks/ui_load.py``'s CPU shares, the browsers' column).

:func:`pause_idle_file_dropper` adds a page-load callback that parks FilePond's next frame
request instead of scheduling it, and releases it when the page creates its first drop box
(``FilePond.create``, which Panel's FileDropper calls when the Train tab is rendered): from
then on the loop runs as FilePond expects. FilePond's loop is recognised by the script it
runs from (its file name in the call stack); every other frame request passes through.
"""

from __future__ import annotations

from bokeh.document import Document
from bokeh.events import DocumentReady
from bokeh.models import CustomJS

__all__ = ["pause_idle_file_dropper", "PAUSE_JS"]

#: the page-load callback (no server data in it)
PAUSE_JS = """
if (window.__sromPainterPaused) { return; }
window.__sromPainterPaused = true;
const raf = window.requestAnimationFrame.bind(window);
let parked = null;   // FilePond's next frame callback, held while no drop box exists
let live = false;    // a drop box exists: FilePond's loop runs
window.requestAnimationFrame = function (callback) {
  if (!live && /filepond/i.test(new Error().stack || "")) {
    parked = callback;
    return 0;
  }
  return raf(callback);
};
function wake() {
  if (live) { return; }
  live = true;
  if (parked !== null) { const callback = parked; parked = null; raf(callback); }
}
const pond = window.FilePond;
if (pond && typeof pond.create === "function") {
  const create = pond.create;
  pond.create = function () { wake(); return create.apply(this, arguments); };
} else {
  wake();  // no FilePond on this page (or another version): change nothing
}
window.__sromPainter = { parked: () => parked !== null, live: () => live };
"""


def pause_idle_file_dropper(doc: Document) -> None:
    """Park FilePond's animation loop in ``doc``'s page until a drop box is created."""
    doc.js_on_event(DocumentReady, CustomJS(code=PAUSE_JS))
