"""app.views.lazy_tabs: a hidden tab is built on its first activation, once, and its models
join the page only then."""

import panel as pn
from bokeh.document import Document

from app.views.lazy_tabs import lazy_tabs


def test_a_tab_is_built_when_first_opened_and_kept():
    built: list[str] = []

    def build(name: str):
        def make() -> pn.viewable.Viewable:
            built.append(name)
            return pn.pane.Markdown(f"the {name} tab", name=name)
        return make

    tabs = lazy_tabs(("First", pn.pane.Markdown("first")), ("Second", build("second")),
                     ("Third", build("third")))
    doc = Document()
    root = tabs.get_root(doc)
    doc.add_root(root)
    assert list(tabs._names) == ["First", "Second", "Third"] and built == []
    texts = lambda: [m.text for m in doc.models if hasattr(m, "text")]  # noqa: E731
    assert not any("second" in t for t in texts())

    tabs.active = 2
    assert built == ["third"] and any("the third tab" in t for t in texts())
    tabs.active = 0
    tabs.active = 2  # opened again: not rebuilt
    tabs.active = 1
    assert built == ["third", "second"] and any("the second tab" in t for t in texts())
    assert tabs[1][0].object == "the second tab"
