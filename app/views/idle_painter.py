"""Keep the file dropper's animation loop from drawing frames that nobody needs.

The Train tab's upload box is Panel's ``FileDropper``, a FilePond widget. Its script is on
every page (``pn.extension("filedropper")``: the Train tab is put on the page only when it
is first opened, so its scripts must be there from the start), and FilePond starts a
60 Hz ``requestAnimationFrame`` loop as soon as its script loads, whether or not any drop
box exists. On the 2-core machine that loop cost each idle page ~6 % of a core in the
renderer plus ~2 % in the GPU process (software compositing): ten idle pages took almost
half of one core (``benchmarks/ui_load.py``'s CPU shares, the browsers' column).

:func:`pause_idle_file_dropper` adds a page-load callback that parks FilePond's next frame
request instead of scheduling it, and releases it when the page creates its first drop box
(``FilePond.create``, which Panel's FileDropper calls when the Train tab is rendered). From
then on the loop runs at every animation frame while the user is active on the page or a
file goes through the box (for :data:`ACTIVE_MS` after the last pointer, key, wheel or drag
event, or FilePond event of a file: its animations also move a file from one state to the
next, and an upload at 4 ticks a second took 15 s to show as done), and ticks on a
:data:`IDLE_TICK_MS` timer otherwise: a page left on the Train tab while a training runs
(its live curves) no longer draws 60 frames a second for an idle drop box. FilePond's loop
is recognised by the script it runs from (its file name in the call stack); every other
frame request passes through.
"""

from __future__ import annotations

from bokeh.document import Document
from bokeh.events import DocumentReady
from bokeh.models import CustomJS

__all__ = ["pause_idle_file_dropper", "PAUSE_JS"]

#: after the user's last pointer, key, wheel or drag event on a page with a drop box,
#: FilePond's loop runs at every animation frame for this long (ms) ...
ACTIVE_MS = 3000
#: ... and then ticks on a timer this often (ms): an upload's progress still shows, and a
#: page left open on the Train tab (a teacher watching a training) draws no idle frames
IDLE_TICK_MS = 250

#: the page-load callback (no server data in it)
PAUSE_JS = """
if (window.__sromPainterPaused) { return; }
window.__sromPainterPaused = true;
const ACTIVE_MS = ACTIVE_MS_VALUE, IDLE_TICK_MS = IDLE_TICK_MS_VALUE;
const raf = window.requestAnimationFrame.bind(window);
const caf = window.cancelAnimationFrame.bind(window);
let parked = null;      // FilePond's next frame callback, held while no drop box exists
let live = false;       // a drop box exists: FilePond's loop runs
let lastInput = -1e9;   // the user's last pointer, key, wheel or drag event
let slowTicks = 0;      // frames FilePond asked for while the user was away (timer ticks)
// FilePond's own events while a file is added, uploaded or removed: its animations (which
// also move a file from one state to the next) need every frame
const FILE_EVENTS = ["addfilestart", "addfileprogress", "addfile", "processfilestart",
                     "processfileprogress", "processfile", "processfileabort",
                     "processfilerevert", "removefile", "updatefiles", "warning", "error"];
for (const type of ["pointerdown", "pointermove", "keydown", "wheel", "dragenter", "dragover",
                    "drop", "change"]) {
  window.addEventListener(type, () => { lastInput = performance.now(); },
                          {capture: true, passive: true});
}
window.requestAnimationFrame = function (callback) {
  if (/filepond/i.test(new Error().stack || "")) {
    if (!live) { parked = callback; return 0; }
    if (performance.now() - lastInput > ACTIVE_MS) {  // nobody at the drop box: a slow tick
      slowTicks += 1;
      return -window.setTimeout(() => callback(performance.now()), IDLE_TICK_MS);
    }
  }
  return raf(callback);
};
window.cancelAnimationFrame = function (id) {
  if (id < 0) { window.clearTimeout(-id); } else { caf(id); }
};
function wake() {
  if (live) { return; }
  live = true;
  lastInput = performance.now();
  if (parked !== null) { const callback = parked; parked = null; raf(callback); }
}
const pond = window.FilePond;
if (pond && typeof pond.create === "function") {
  const create = pond.create;
  pond.create = function () {
    wake();
    const instance = create.apply(this, arguments);
    if (instance && typeof instance.on === "function") {  // a file's way through the box
      for (const name of FILE_EVENTS) {                   // keeps the loop at full speed
        instance.on(name, () => { lastInput = performance.now(); });
      }
    }
    return instance;
  };
} else {
  wake();  // no FilePond on this page (or another version): change nothing
}
window.__sromPainter = {parked: () => parked !== null, live: () => live,
                        slowTicks: () => slowTicks};
""".replace("ACTIVE_MS_VALUE", str(ACTIVE_MS)).replace("IDLE_TICK_MS_VALUE", str(IDLE_TICK_MS))


def pause_idle_file_dropper(doc: Document) -> None:
    """Park FilePond's animation loop in ``doc``'s page until a drop box is created, and
    slow it to :data:`IDLE_TICK_MS` ticks while nobody is at the box (module docstring)."""
    doc.js_on_event(DocumentReady, CustomJS(code=PAUSE_JS))
