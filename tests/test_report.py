"""`python -m helpers report`: the README's findings and charts are what data/reference/ says, every figure is
generated (a changed measurement changes the text), and the HTML report of a run renders in the lab's real browser
(Debian's Chromium, headless, through Playwright) with every image loaded."""

import copy
import json
import shutil
import subprocess
import sys

import pytest

from helpers import REPO_ROOT
from helpers.runs import report, verdicts


@pytest.fixture(scope="module")
def reference():
    return report.reference()


def test_the_readme_findings_and_charts_are_what_the_command_writes(reference):
    """Fails when the README's block or a chart under docs/findings/ differs from `python -m helpers report`'s:
    rerun it (`make report`) after changing data/reference/ or helpers/runs/report.py."""
    assert report.stale(measured=reference) == []


def test_the_check_command_fails_on_a_stale_block_or_chart(tmp_path, reference, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(report.README.read_text())
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "CHARTS_DIR", tmp_path / "charts")
    monkeypatch.setattr(report, "DETAILS", tmp_path / "findings.md")
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path / "report")
    assert report.main(check=True) == 1  # no chart there yet
    report.write_readme()
    report.write_html(reference, report.REPORT_DIR, copy=False)
    assert report.stale() == [] and report.main(check=True) == 0
    start, end = readme.read_text().split(report.FINDINGS_START)
    readme.write_text(start + report.FINDINGS_START + end.replace("PASS", "FAIL", 1))
    (tmp_path / "charts" / "inp.png").write_bytes(b"not the chart")
    shown = [report.shown_path(readme), report.shown_path(tmp_path / "charts" / "inp.png")]
    assert report.stale() == shown
    assert report.main(check=True) == 1
    assert f"stale: {shown[0]}" in capsys.readouterr().out


def test_the_command_line_checks_the_committed_readme():
    done = subprocess.run([sys.executable, "-m", "helpers", "report", "--check"], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_figure_in_the_block_comes_from_the_data(reference):
    """Change one measurement and its text changes: no number in the block is typed in."""
    changed = copy.deepcopy(reference)
    figures = changed.summary["notebooks"]["01-blocking-vs-deferred"]["figures"]
    before = report.findings_markdown(reference)
    assert f"blocking {report.number(figures['blocking_p50_ms'])} ms" in before
    figures["blocking_p50_ms"] = 123.4
    after = report.findings_markdown(changed)
    assert "blocking 123 ms" in after and after != before


def test_a_range_says_how_many_runs_it_spans_and_one_run_says_so(reference):
    one = report.Figures(reference)
    blocking = reference.summary["notebooks"]["01-blocking-vs-deferred"]["figures"]["blocking_p50_ms"]
    assert one("01-blocking-vs-deferred", "blocking_p50_ms", "ms") == f"{report.number(blocking)} ms"  # no range
    assert one.runs_note() == "One run."
    two = report.Figures(reference)  # the committed bench-browser run reports notebook 04's figures too
    ttfb = [reference.summary["notebooks"]["04-what-the-user-sees"]["figures"]["ttfb_blocking_ms"],
            *[run["ttfb_blocking_ms"] for run in reference.other_runs["04-what-the-user-sees"]]]
    assert len(ttfb) == 2
    text = two("04-what-the-user-sees", "ttfb_blocking_ms", "ms")
    low, high = report.number(min(ttfb)), report.number(max(ttfb))
    assert text == (f"{low} ms (2 runs)" if low == high else f"{low}-{high} ms (2 runs)")  # equal bounds: one number
    assert "2 runs" in two.runs_note()


def test_numbers_read_with_three_significant_figures_at_most():
    assert [report.number(v) for v in (309.361, 1.61, 21.8, 2516.99, 0, 40.0, 0.2)] == \
        ["309", "1.61", "21.8", "2,517", "0", "40", "0.2"]


def test_every_verdict_line_the_findings_name_is_one_the_notebook_checks(reference):
    """The findings name claims by key: each is one its notebook's verdict() returns on the reference's figures."""
    for finding in report.FINDINGS:
        for notebook, key in finding.claim_keys():
            assert verdicts.claim(notebook, key) in reference.verdicts.get(notebook, {}), (finding.title, notebook, key)


def test_the_reference_is_judged_by_todays_verdicts_and_a_run_without_their_figures_by_what_it_recorded(reference):
    """The report calls each notebook's verdict() on its figures; a run whose figures lack one the verdict reads
    keeps the verdict it recorded."""
    assert reference.verdicts.keys() == {*verdicts.MODULES, "10-your-own-site"}  # 10 judges the reader's own site
    entry = reference.summary["notebooks"]["01-blocking-vs-deferred"]
    assert report.judged("01-blocking-vs-deferred", entry) == verdicts.judge("01-blocking-vs-deferred",
                                                                             entry["figures"])
    older = {"figures": {k: v for k, v in entry["figures"].items() if k != "smtp_delay_ms"},
             "verdict": {"a claim of its time": True}}
    assert report.judged("01-blocking-vs-deferred", older) == {"a claim of its time": True}


def test_a_failed_check_replaces_the_answer(reference):
    changed = copy.deepcopy(reference)
    notebook, key = report.FINDINGS[0].claim_keys()[1]
    claim = verdicts.claim(notebook, key)
    changed.verdicts[notebook][claim] = False
    row = report.rows(changed)[0]
    assert row.verdict == f"Not confirmed: 1 of {len(row.checks)} checks failed."
    assert f"{claim}: FAIL" in report.findings_markdown(changed)
    assert report.FINDINGS[0].answer not in report.findings_markdown(changed).split("## 1.")[1]


def test_a_run_without_notebook_07_says_it_predates_the_queue_matrix(reference):
    assert "predates" not in report.findings_markdown(reference)
    older = copy.deepcopy(reference)
    del older.summary["notebooks"][report.QUEUE_NOTEBOOK]
    del older.verdicts[report.QUEUE_NOTEBOOK]
    block = report.findings_markdown(older)
    assert f"`{report.QUEUE_NOTEBOOK}`, which the committed reference run" in block
    assert "| Backend |" not in block.split("Which queue\n")[1].split("\n## ")[0]
    assert report.rows(older)[report.FINDINGS.index(_which_queue())].verdict == "Not measured in this run."


def _which_queue() -> report.Finding:
    return next(f for f in report.FINDINGS if f.title == "Which queue")


def _queue_table(block: str) -> list[str]:
    section = block.split("Which queue\n")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Backend")
            and not line.startswith("| ---")]


def test_the_which_queue_table_has_a_row_per_backend_and_its_numbers_from_the_reference(reference):
    """One row per backend notebook 07 measured, in its order, with the label its queue class declares; change one
    figure of a copied reference and that cell (and only the data-driven text) changes."""
    from helpers.stack import queues

    figures = reference.summary["notebooks"][report.QUEUE_NOTEBOOK]["figures"]
    before = report.findings_markdown(reference)
    table = _queue_table(before)
    assert [line.split(" | ")[0].removeprefix("| ") for line in table] == \
        [queues.backend_class(b).label for b in figures["backends"]]
    first = figures["backends"][0]
    assert f" | {report.number(figures[f'{first}_enqueue_cost_us'])} | " in table[0]
    changed = copy.deepcopy(reference)
    changed.summary["notebooks"][report.QUEUE_NOTEBOOK]["figures"][f"{first}_enqueue_cost_us"] = 98765.4
    after = _queue_table(report.findings_markdown(changed))
    assert " | 98,765 | " in after[0] and after[1:] == table[1:] and after[0] != table[0]


def test_the_which_queue_answer_is_read_from_the_figures(reference):
    """Which backends lost emails under kills and which ran a rolled-back task are counted from notebook 07's
    figures; a failed claim of 07 replaces the answer."""
    figures = reference.summary["notebooks"][report.QUEUE_NOTEBOOK]["figures"]
    workers = [b for b in figures["backends"] if figures[f"{b}_kills"]]
    lost = [b for b in workers if figures[f"{b}_lost_on_kill"]]
    index = report.FINDINGS.index(_which_queue())
    assert f"lost emails on {len(lost)} of the {len(workers)} backends" in report.rows(reference)[index].short
    changed = copy.deepcopy(reference)
    for b in workers:
        changed.summary["notebooks"][report.QUEUE_NOTEBOOK]["figures"][f"{b}_lost_on_kill"] = 1
    assert f"lost emails on {len(workers)} of the {len(workers)} backends" in report.rows(changed)[index].short
    claim = verdicts.claim(report.QUEUE_NOTEBOOK, "kills_kept_delivery")
    assert (report.QUEUE_NOTEBOOK, "kills_kept_delivery") in _which_queue().claim_keys()
    changed.verdicts[report.QUEUE_NOTEBOOK][claim] = False
    assert report.rows(changed)[index].short.startswith("Not confirmed: 1 of ")


def test_the_published_benchmarks_section_the_readme_points_to_is_in_notebook_07():
    cells = json.loads((REPO_ROOT / "notebooks" / f"{report.QUEUE_NOTEBOOK}.ipynb").read_text())["cells"]
    assert any(f"# {report.PUBLISHED}" in "".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")


def test_a_run_without_a_notebook_says_what_it_did_not_measure(reference):
    partial = copy.deepcopy(reference)
    del partial.summary["notebooks"]["05-faults"]
    del partial.verdicts["05-faults"]
    by_title = {row.finding.title: row for row in report.rows(partial)}
    assert by_title["What a crash loses"].verdict == "Not measured in this run."
    assert by_title["“Deferring cuts response time”"].verdict == report.FINDINGS[0].answer
    del partial.summary["notebooks"]["03-the-work-still-happens"]
    del partial.verdicts["03-the-work-still-happens"]
    assert report.rows(partial)[0].verdict == "Not measured in this run."
    partial.verdicts["01-blocking-vs-deferred"]["deferred p50 at least 10x below blocking p50"] = False
    assert report.rows(partial)[0].short == "Not confirmed: 1 of 5 checks failed."  # a partial rerun shows a failure


def fake_rerun(folder, reference):
    """A rerun folder as `python -m helpers run` leaves it: summary.json with verdicts, figures/, an HTML export."""
    folder.mkdir()
    (folder / "figures").mkdir()
    summary = copy.deepcopy(reference.summary)
    for name, entry in summary["notebooks"].items():
        entry["verdict"] = reference.verdicts[name]
        entry["html"] = f"{name}.html"
        (folder / entry["html"]).write_text(f"<!doctype html><title>{name}</title><p>executed</p>")
    for stem, path in reference.charts.items():
        shutil.copyfile(path, folder / "figures" / f"{stem}.png")
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_the_report_is_written_into_the_latest_rerun_else_beside_the_reference(tmp_path, monkeypatch, reference):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    measured, folder = report.latest()
    assert measured.label == reference.label and folder == tmp_path / "reference-report"
    fake_rerun(tmp_path / "20260101T000000-rerun", reference)
    measured, folder = report.latest()
    assert folder == tmp_path / "20260101T000000-rerun" and measured.label == "rerun 20260101T000000-rerun"
    assert sum(len(v) for v in measured.verdicts.values()) == sum(len(v) for v in reference.verdicts.values())


def opened_with_images(context, index):
    """A page of `context` showing `index` once every image finished loading, and each image's src, naturalWidth
    and alt text."""
    page = context.new_page()
    page.goto(index.as_uri(), wait_until="load")
    page.wait_for_function("[...document.images].every((img) => img.complete)")
    return page, page.evaluate("[...document.images].map((img) => [img.getAttribute('src'), img.naturalWidth,"
                               " img.alt])")


def test_the_html_report_renders_in_the_real_browser_with_its_images(tmp_path, reference):
    """index.html of a rerun in headless Chromium: the findings table has a row per finding, every image (the
    findings' charts and every notebook's) loaded (naturalWidth > 0), every notebook's HTML export linked and found,
    and a failed claim shows as FAIL."""
    from helpers.instruments import browser

    run = fake_rerun(tmp_path / "20260101T000000-rerun", reference)
    measured = report.rerun(run)
    notebook, key = report.FINDINGS[0].claim_keys()[0]
    claim = verdicts.claim(notebook, key)
    measured.verdicts[notebook][claim] = False
    index = report.write_html(measured, run)
    with browser.chromium() as context:
        page, images = opened_with_images(context, index)
        rows = page.locator("#findings > tbody > tr").count() - 1
        links = page.evaluate("[...document.querySelectorAll('a[href$=\".html\"]')].map((a) => a.href)")
        failed = page.locator("li.FAIL").all_inner_texts()
        exported = context.new_page()
        exported.goto(links[0])
        exported_title = exported.title()
    assert rows == len(report.FINDINGS)
    assert len(images) == len(reference.charts) + sum(1 for f in report.FINDINGS if f.chart)
    assert [src for src, width, _ in images if width <= 0] == []
    assert all(alt for *_, alt in images)
    assert len(links) == len(reference.notebooks) and exported_title == next(iter(reference.notebooks))
    assert f"{claim}: FAIL ({notebook.split('-')[0]})" in failed and f"{claim}: FAIL" in failed


def test_a_quick_run_leaves_its_full_mode_claims_unchecked_not_failed(reference, tmp_path):
    """Judged in quick mode, a full-mode claim is None: the finding reads "not measured", the totals leave it out,
    and the HTML report says it was not checked."""
    quick = copy.deepcopy(reference)
    notebook = "03-the-work-still-happens"
    entry = quick.summary["notebooks"][notebook]
    entry["parameters"]["quick"] = True
    quick.verdicts[notebook] = report.judged(notebook, entry)
    claim = verdicts.claim(notebook, "end_to_end_near_blocking")
    assert claim.endswith(verdicts.FULL_MODE_ONLY) and quick.verdicts[notebook][claim] is None
    passed, checked = quick.tally()
    assert passed == checked == reference.tally()[1] - 2  # 03's two full-mode claims
    row = next(row for row in report.rows(quick) if row.finding.title == "The work still has to happen")
    assert row.verdict == "Not measured in this run." and f"{claim}: not run (03)" in report.findings_markdown(quick)
    page = report.write_html(quick, tmp_path).read_text()
    assert f"{claim}: {verdicts.NOT_CHECKED}" in page


def test_a_count_of_one_reads_singular_and_any_other_plural(reference):
    """"lost 1 task", never "lost 1 tasks": a count's noun follows the count, in the helper and in the findings."""
    from helpers.charts.common import counted

    assert [counted(n, "task") for n in (0, 1, 2, 1500)] == ["0 tasks", "1 task", "2 tasks", "1,500 tasks"]
    assert counted(1, "copy", "copies") == "1 copy" and counted(3, "copy", "copies") == "3 copies"
    one = copy.deepcopy(reference)
    one.summary["notebooks"]["05-faults"]["figures"]["kill_lost_plain"] = 1
    assert "lost 1 task of the plain design" in report.findings_markdown(one)
    one.summary["notebooks"]["05-faults"]["figures"]["kill_lost_plain"] = 7
    assert "lost 7 tasks of the plain design" in report.findings_markdown(one)


ERROR_OUTPUTS = """[...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"], .output_error')]
  .map((el) => el.innerText).filter((text) => /Traceback|^\\w*(Error|Exception)\\b/m.test(text))"""


def test_the_committed_report_opens_with_every_image_and_no_error_output(tmp_path):
    """docs/report/index.html, as committed, in headless Chromium: every image loaded (naturalWidth > 0) and has alt
    text, every notebook has its executed HTML export or says it is not in the reference, and no export shows an
    error output (the check finds one in a page made to show it)."""
    from helpers.instruments import browser

    index = report.REPORT_DIR / "index.html"
    broken = tmp_path / "broken.html"
    broken.write_text('<div data-mime-type="application/vnd.jupyter.stderr"><pre>Traceback (most recent call last):\n'
                      'ZeroDivisionError: division by zero</pre></div>')
    with browser.chromium() as context:
        page, images = opened_with_images(context, index)
        text = page.inner_text("body")
        exports = page.evaluate("[...document.querySelectorAll('a')].filter((a) => a.innerText.startsWith("
                                "'Executed notebook')).map((a) => a.href)")
        errors = {}
        for url in [*exports, broken.as_uri()]:
            page.goto(url, wait_until="load")
            errors[url] = page.evaluate(ERROR_OUTPUTS)
    assert len(images) >= len(report.reference().charts)
    assert [src for src, width, _ in images if width <= 0] == []
    assert [src for src, _, alt in images if not alt.strip()] == []
    notebooks = report.reference().notebooks
    assert len(exports) + text.count("Executed notebook not in this reference") == len(notebooks)
    assert errors.pop(broken.as_uri()) and errors == {url: [] for url in exports}


def test_the_two_commands_say_how_long_make_test_took_from_timings_json(reference, tmp_path, monkeypatch):
    """The README's times come from `python -m helpers time-test` records, the busy-core one when there is one."""
    from helpers.runs import time_test

    monkeypatch.setattr(time_test, "TIMINGS", tmp_path / "timings.json")
    time_test.record({"seconds": 530, "passed": True, "commit": "abcdef2", "cores": 2, "busy_core": True})
    block = report.readme_block(reference, json.loads(time_test.TIMINGS.read_text()))
    assert ("`make test` took 8 min 50 s with one core kept busy (2 cores, commit `abcdef2`), on a fresh clone with "
            "its set-up.") in block
    time_test.record({"seconds": 455, "passed": True, "commit": "abcdef1", "cores": 2, "busy_core": False})
    block = report.readme_block(reference, json.loads(time_test.TIMINGS.read_text()))
    assert ("`make test` took 7 min 35 s on a quiet machine (2 cores, commit `abcdef1`) and 8 min 50 s with one "
            "core kept busy (2 cores, commit `abcdef2`), on a fresh clone with its set-up.") in block
    assert "is not timed" in report.readme_block(reference, {})


def test_promoting_a_full_run_copies_its_files_and_refuses_a_quick_or_failed_one(tmp_path, reference):
    """`report --promote RUN_DIR`: the run's summary, run.json files, charts and exports become the reference's; a
    quick-mode run or one with a failed claim is refused, and a run of one notebook replaces only that notebook's."""
    run = fake_rerun(tmp_path / "20260101T000000-rerun", reference)
    summary = json.loads((run / "summary.json").read_text())
    for name, entry in summary["notebooks"].items():
        entry.pop("run", None)
        entry["parameters"] = {"quick": False}
        entry["experiment_dir"] = f"experiments/{name}"
        (run / entry["experiment_dir"]).mkdir(parents=True)
        (run / entry["experiment_dir"] / "run.json").write_text(json.dumps({"notebook": name}))
        entry["figures_saved"] = [p.name for p in (run / "figures").glob(f"{name}-fig*.png")]
    (run / "summary.json").write_text(json.dumps(summary))
    target = tmp_path / "reference"
    target.mkdir()
    written = report.promote(run, target)
    name = next(iter(summary["notebooks"]))
    assert json.loads((target / "full-run" / f"{name}.run.json").read_text()) == {"notebook": name}
    assert (target / "full-run" / "html" / f"{name}.html").read_text().endswith("<p>executed</p>")
    assert sorted(p.name for p in (target / "full-run" / "figures").glob("*.png")) == sorted(
        f for entry in summary["notebooks"].values() for f in entry["figures_saved"])
    assert json.loads((target / "summary.json").read_text())["notebooks"].keys() == summary["notebooks"].keys()
    assert target / "summary.json" in written

    one = dict(summary, notebooks={name: summary["notebooks"][name]}, started_at=summary["started_at"] + 60)
    (run / "summary.json").write_text(json.dumps(one))
    report.promote(run, target)
    kept = json.loads((target / "summary.json").read_text())
    assert kept["notebooks"].keys() == summary["notebooks"].keys() and kept["started_at"] == one["started_at"]
    other = next(n for n in summary["notebooks"] if n != name)
    assert "run" not in kept["notebooks"][name]
    assert kept["notebooks"][other]["run"]["started_at"] == summary["started_at"]
    with pytest.raises(ValueError):  # not in that run: nothing to promote
        report.promote(run, target, only=[other])

    for spoil in ({"parameters": {"quick": True}}, {"verdict": {"a claim": False}}):
        (run / "summary.json").write_text(json.dumps(dict(summary, notebooks={name: {**one["notebooks"][name],
                                                                                   **spoil}})))
        with pytest.raises(ValueError):
            report.promote(run, target)


@pytest.mark.parametrize(("benchmark", "notebook"), [("browser", "04-what-the-user-sees"),
                                                     ("does_async_fix_it", "08-does-async-fix-it"),
                                                     ("async", "08-does-async-fix-it"), ("queues", "09-which-setup"),
                                                     ("hostile_input", None)])
def test_a_committed_benchmark_run_joins_the_notebook_its_module_serves(benchmark, notebook):
    """By the benchmark's name or an alias: a run of `bench does_async_fix_it` is one more run of notebook 08."""
    assert report.bench_notebook(benchmark) == notebook
