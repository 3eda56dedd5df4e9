"""The MLflow UI of the test server, driven by Debian's Chromium (headless) through Playwright:
a user finds the sweep's experiment, expands the parent run to its trials, compares two trials
(their AHSML parameters side by side) and opens the chart of their validation metric.

The browser and Playwright come from ``infra/local/install-test-deps.sh``; without them the
test fails (it is not skipped). Assertions are on visible text, checked against the values the
tracking server's REST API holds; the screenshots of each view go to a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from services.stack import ServiceStack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
    from services.conftest import StackSweep

pytestmark = [pytest.mark.services, pytest.mark.ray]

CHROMIUM = Path(os.environ.get("DMLSWEEP_CHROMIUM", "/usr/bin/chromium"))
VIEWPORT = {"width": 1440, "height": 900}
METRIC = "val/map_at_r"
COMPARED_PARAMS = ("curvature", "tau", "lr", "embedding_size")
TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class TrialView:
    """What the UI should show of one trial: its run, parameters and last validation metric."""

    run_id: str
    name: str
    params: dict[str, str]
    last_value: float  # of METRIC
    last_step: int


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system; install-test-deps.sh installs both halves."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run infra/local/install-test-deps.sh")
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: run infra/local/install-test-deps.sh")
    # Chromium's sandbox cannot start as root (CI containers); elsewhere it stays on.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield chromium
        chromium.close()


def trial_views(tracking_uri: str, *, experiment: str, sweep_name: str) -> list[TrialView]:
    """The sweep's trials as the tracking server's REST API reports them, best finished first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (parent,) = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`dmlsweep.role` = 'sweep' and attributes.run_name = '{sweep_name}'",
    )
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    views = []
    for run in children:
        last = max(client.get_metric_history(run.info.run_id, METRIC), key=lambda m: m.step)
        views.append(
            TrialView(
                run_id=run.info.run_id,
                name=run.info.run_name,
                params=dict(run.data.params),
                last_value=last.value,
                last_step=last.step,
            )
        )
    # Finished trials (the most epochs) first, then by the metric.
    return sorted(views, key=lambda v: (v.last_step, v.last_value), reverse=True)


def _shot(page: Page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def browse_sweep(
    page: Page,
    *,
    base_url: str,
    experiment: str,
    sweep_name: str,
    trials: list[TrialView],
    shots: Path,
) -> list[Path]:
    """Walk the UI as a user would, asserting what each view shows; returns the screenshots."""
    from playwright.sync_api import expect

    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    taken = []

    # The experiments list: the sweep's experiment is there.
    page.goto(f"{base_url}/#/experiments")
    experiment_link = page.get_by_role("link", name=experiment, exact=True)
    expect(experiment_link).to_be_visible()
    # MLflow 3.x opens its Assistant beside every page; closed, the screenshots show the runs.
    assistant_close = page.get_by_role("button", name="Close", exact=True)
    if assistant_close.count() == 1:
        assistant_close.click()
    taken.append(_shot(page, shots, "experiments"))

    # Its training runs (MLflow 3 opens experiments on the GenAI views by default).
    page.get_by_role("button", name="Model training").click()
    experiment_link.click()
    parent_link = page.get_by_role("link", name=sweep_name, exact=True)
    expect(parent_link).to_be_visible()
    # Trials are nested under the parent run, folded: its expander is the name cell's button.
    name_cell = page.get_by_role("gridcell").filter(has=parent_link)
    name_cell.get_by_role("button").click()
    for trial in trials:
        expect(page.get_by_role("link", name=trial.name, exact=True)).to_be_visible()
    taken.append(_shot(page, shots, "runs"))

    # Compare the two best trials, selected in the table as a user would.
    compared = trials[:2]
    for trial in compared:
        row = page.get_by_role("row").filter(
            has=page.get_by_role("link", name=trial.name, exact=True)
        )
        row.get_by_role("checkbox", name=re.compile("toggle row selection")).check(force=True)
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_text("Comparing 2 Runs")).to_be_visible()
    assert "#/compare-runs?runs=" in page.url
    assert all(t.run_id in page.url for t in compared)

    def row_cells(header: str) -> list[str]:
        row = page.get_by_role("row").filter(
            has=page.get_by_role("rowheader", name=header, exact=True)
        )
        return [text.strip() for text in row.get_by_role("cell").all_inner_texts()]

    # The columns are in the page's order of the runs; the parameters are the trials' own.
    by_name = {t.name: t for t in compared}
    columns = row_cells("Run Name:")
    assert sorted(columns) == sorted(by_name), columns
    for name in COMPARED_PARAMS:
        assert row_cells(name) == [by_name[c].params[name] for c in columns], name
    metric_link = page.get_by_role("link", name=METRIC, exact=True)
    expect(metric_link).to_be_visible()
    # The screenshot shows the compared parameters (the parallel-coordinates chart is above).
    page.get_by_role("rowheader", name=COMPARED_PARAMS[0], exact=True).scroll_into_view_if_needed()
    taken.append(_shot(page, shots, "compare"))

    # The metric's chart: one curve per trial, and its table ends at each trial's last epoch.
    href = metric_link.get_attribute("href")
    assert href is not None and href.startswith("#/metric?")
    page.goto(f"{base_url}/{href}")
    for trial in compared:
        expect(page.get_by_text(f"{trial.name} ({METRIC})", exact=True)).to_be_visible()
        latest = f"{trial.last_value!r} (step={trial.last_step})"
        expect(page.get_by_text(latest, exact=True).first).to_be_visible()
    taken.append(_shot(page, shots, "metric"))
    return taken


def check_screenshot(path: Path, *, size: tuple[int, int]) -> None:
    """A real rendering: a PNG of the viewport's size, not one flat colour, not a blank page."""
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size, (path, image.size)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100, (path, len(colours or ()))
    # Not almost all background: at least 2 % of the pixels differ from the commonest colour.
    pixels = size[0] * size[1]
    assert max(count for count, _ in colours) < 0.98 * pixels, path


def test_sweep_in_the_mlflow_ui(
    service_stack: ServiceStack,
    stack_sweep: StackSweep,
    browser: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    trials = trial_views(
        service_stack.tracking_uri, experiment=stack_sweep.experiment, sweep_name=stack_sweep.name
    )
    assert len(trials) == stack_sweep.num_samples
    shots = tmp_path_factory.mktemp("mlflow-ui")
    page = browser.new_page(viewport=VIEWPORT)
    try:
        taken = browse_sweep(
            page,
            base_url=service_stack.tracking_uri,
            experiment=stack_sweep.experiment,
            sweep_name=stack_sweep.name,
            trials=trials,
            shots=shots,
        )
    except Exception:
        with contextlib.suppress(Exception):
            _shot(page, shots, "failure")  # what the page showed, kept with the others
        print(f"MLflow UI screenshots in {shots}")
        raise
    finally:
        page.close()
    assert [p.name for p in taken] == ["experiments.png", "runs.png", "compare.png", "metric.png"]
    for path in taken:
        check_screenshot(path, size=(VIEWPORT["width"], VIEWPORT["height"]))
