"""Write ``docs/reliability.md`` from the committed results of the reliability scripts.

    python scripts/reliability.py

Reads ``benchmarks/results/fuzz.json`` (``scripts/fuzz.py``), ``kill_resume.json``
(``scripts/kill_resume.py``) and ``ui_load_cpu.json`` (``benchmarks/ui_load.py``); a result
that is missing is said to be missing. Every guarantee is listed with the test that checks
it, and the script fails if a named test no longer exists, so the page cannot drift from
the test suite.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: (area, what holds, "tests/file.py::test_name")
GUARANTEES = [
    ("untrusted files", "HDF5 external storage (e.g. pointing at /etc/passwd) is refused before reading",
     "tests/test_untrusted_files.py::test_external_storage_pointing_at_a_server_file_is_refused"),
    ("untrusted files", "HDF5 soft/external links and virtual datasets are refused",
     "tests/test_untrusted_files.py::test_links_and_virtual_datasets_are_refused"),
    ("untrusted files", "a declared array over SROM_MAX_DATASET_BYTES is refused before allocation",
     "tests/test_untrusted_files.py::test_a_huge_declared_array_is_refused_before_allocation"),
    ("untrusted files", "an npz zip bomb is refused from its declared size",
     "tests/test_untrusted_files.py::test_a_zip_bomb_is_refused_from_its_declared_size"),
    ("untrusted files", "model configs asking for huge layers or states are refused before building",
     "tests/test_io.py::test_configs_asking_for_huge_networks_are_refused_before_building"),
    ("untrusted files", "a model file is never unpickled",
     "tests/test_io.py::test_loading_never_unpickles"),
    ("uploads", "an upload is read in another process within time and memory limits",
     "tests/test_app_training.py::test_an_upload_is_read_in_another_process_within_time_and_memory_limits"),
    ("uploads", "the session checks an upload in the background, one at a time",
     "tests/test_app_training.py::test_the_session_checks_an_upload_in_the_background_one_at_a_time"),
    ("pages", "markup in a model's config is shown as text in a real browser (stored XSS)",
     "tests/ui/test_app_xss_ui.py::test_markup_in_a_model_config_is_shown_as_text"),
    ("pages", "user-given names are escaped in every Markdown pane",
     "tests/test_app_safe_text.py::test_md_leaves_no_tag_link_or_emphasis"),
    ("pages", "no page shows the server's folders",
     "tests/test_app_safe_text.py::test_pages_never_show_the_servers_folders"),
    ("server", "srom serve listens on loopback unless told, and then asks for a password",
     "tests/test_cli.py::test_serve_listens_on_loopback_unless_told_and_then_asks_for_a_password"),
    ("server", "the admin's caps bound the training queue, the steps and the generated data",
     "tests/test_app_training.py::test_the_admins_caps_bound_the_queue_and_each_training"),
    ("server", "a dashboard prediction's horizon and path steps are bounded",
     "tests/test_app_state.py::test_horizon_and_frames"),
    ("server", "a prediction request superseded by newer inputs is never computed",
     "tests/test_app_scheduler.py::test_a_superseded_request_is_never_computed"),
    ("server", "sessions share the prediction threads in turn, even one that keeps asking",
     "tests/test_app_scheduler.py::test_sessions_are_served_in_turn_even_when_one_keeps_asking"),
    ("server", "every session's first result (a preview) comes before any session's refinement",
     "tests/test_app_scheduler.py::test_refinements_wait_behind_every_sessions_first_result"),
    ("server", "trainings run in a child process that may crash alone",
     "tests/test_app_training.py::test_trainings_run_in_a_child_process_that_may_crash_alone"),
    ("server", "a training cut by a server restart is resumed from its checkpoint and saved",
     "tests/test_app_training.py::test_a_training_cut_by_a_server_restart_is_resumed_and_saved"),
    ("faults", "a diverging run never overwrites a model already there",
     "tests/test_cli.py::test_a_diverging_run_never_overwrites_a_model_already_there"),
    ("faults", "a full disk at the final save loses nothing (saved elsewhere, or the checkpoint is named)",
     "tests/test_cli.py::test_a_full_disk_at_the_final_save_loses_nothing"),
    ("faults", "a checkpoint that cannot be written does not end the training",
     "tests/test_cli.py::test_a_checkpoint_that_cannot_be_written_does_not_end_the_training"),
    ("faults", "temporary files of killed writes are cleaned up",
     "tests/test_io.py::test_temporary_files_of_killed_writes_are_cleaned_up"),
    ("CLI", "mistakes end in one line, not a traceback",
     "tests/test_cli.py::test_user_errors_print_one_line"),
    ("CLI", "a multi-term forcing can be given on the command line",
     "tests/test_cli.py::test_predict_takes_a_multi_term_forcing_on_the_command_line"),
]


def _test_exists(test_id: str) -> bool:
    path, _, name = test_id.partition("::")
    file = ROOT / path
    if not file.is_file():
        return False
    tree = ast.parse(file.read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _fuzz_lines(fuzz: dict | None) -> list[str]:
    if fuzz is None:
        return ["Not run yet (`python scripts/fuzz.py`)."]
    targets = fuzz.get("targets") or fuzz.get("results") or []
    if isinstance(targets, dict):
        targets = [{"target": k, **v} for k, v in targets.items()]
    lines = [f"`{fuzz.get('command', 'python scripts/fuzz.py')}` ({fuzz.get('date', '?')}):", "",
             "| target | cases | failures |", "|---|---|---|"]
    for t in targets:
        lines.append(f"| {t.get('target') or t.get('name')} | {t.get('cases')} | {t.get('failures')} |")
    return lines


def _kill_lines(kill: dict | None) -> list[str]:
    if kill is None:
        return ["Not run yet (`python scripts/kill_resume.py`)."]
    return [f"`{kill['command']}` ({kill['date']}, {kill['host']}): a {kill['steps']}-step training "
            f"killed with SIGKILL {kill['kills']} times at random moments and resumed each time: "
            f"checkpoint readable after {kill['checkpoints_readable_after_kill']} of {kill['kills']} "
            f"kills, final weights bit-identical to an uninterrupted run: "
            f"{'yes' if kill['bit_identical'] else 'NO'}; temporary files left: "
            f"{len(kill['temporary_files_left'])}."]


def _load_lines(load: dict | None) -> list[str]:
    if load is None:
        return ["Not run yet (`python benchmarks/ui_load.py`)."]
    # a soak run alone keeps the load figures of the run before it
    command, date = load.get("load_command") or load["command"], load.get("load_date") or load["date"]
    lines = [f"`{command}` ({date}, {load['host']}); details in "
             "[ui_load_cpu.md](../benchmarks/results/ui_load_cpu.md).", "",
             "| sessions (+1 training) | pause between a page's moves (s) | moves done / asked "
             "| errors | first visible update median / p95 (s) | full view median / p95 (s) | "
             "host load (1 min) |",
             "|---|---|---|---|---|---|---|"]

    def cell(v: dict | None) -> str:
        return "—" if v is None else f"{v['median']:.2f} / {v['p95']:.2f}"

    for r in load["load"]:
        lines.append(f"| {r['sessions']} | {r.get('think_s', 0):g} | "
                     f"{r['moves_done']} / {r['moves_asked']} | "
                     f"{len(r['errors'])} | {cell(r.get('first_update_s'))} | "
                     f"{cell(r['full_view_s'])} | {r.get('load_1min_end', float('nan')):.1f} |")
    s = load.get("soak")
    if s:
        lines += ["", f"Soak: {s['sessions']} sessions opened and closed: memory "
                  f"{100 * s['memory_growth_after_10']:+.1f} % over its level after 10 sessions "
                  f"({'held' if s['memory_held'] else 'missed the 10 % target'}), threads "
                  f"{s['threads_after_10']} → at most {s['threads_max']}"
                  + (f" (`{load['command']}`, {load['date']}; each reading once the closed "
                     "sessions are gone)." if load.get("load_command") else
                     f" (`{load['soak_command']}`, {load['soak_date']}; each reading once the "
                     "closed sessions are gone)." if load.get("soak_command") else ".")]
    return lines


def main() -> int:
    missing = [t for _, _, t in GUARANTEES if not _test_exists(t)]
    if missing:
        print("these tests named in docs/reliability.md do not exist:\n" + "\n".join(missing),
              file=sys.stderr)
        return 1
    lines = ["# Reliability and security", "",
             "Generated by `python scripts/reliability.py` from the committed results of the "
             "reliability scripts and the test suite; do not edit.", "",
             "## What holds, and the test that checks it", "",
             "| area | what holds | test |", "|---|---|---|"]
    lines += [f"| {area} | {what} | `{test}` |" for area, what, test in GUARANTEES]
    lines += ["", "## Fuzzing (property-based, hypothesis)", "",
              *_fuzz_lines(_load("fuzz.json")), "",
              "## Kill and resume", "", *_kill_lines(_load("kill_resume.json")), "",
              "## Load and soak (loopback, real browsers, 2-core CPU)", "",
              *_load_lines(_load("ui_load_cpu.json")), ""]
    out = ROOT / "docs" / "reliability.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
