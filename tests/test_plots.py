"""Report figures on real campaign tables (with and without stability columns, NaN, nothing
evaluated) and the self-contained `snakemake --report` HTML."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import jinja2
import numpy as np
import pandas as pd
import pytest
from docutils.core import publish_parts

from conftest import REPO, Campaign, run_with_imported_examples
from crystal_campaign import io, metrics, plots
from crystal_campaign.config import validate_config

pytestmark = pytest.mark.workflow

CONFIG = {
    "campaign": "plots",
    "generators": [
        {"name": "empty", "backend": "random", "n_batches": 0, "batch_size": 3, "chemical_systems": ["Mg-O"]},
        {
            "name": "rss",
            "backend": "random",
            "n_batches": 1,
            "batch_size": 3,
            "chemical_systems": ["Na-Cl"],
            "min_atoms": 4,
            "max_atoms": 6,
        },
        {"name": "known", "backend": "import", "paths": ["imported"]},
    ],
    "relax": {"backend": "chgnet", "fmax": 0.1, "max_steps": 15},
}
SETTINGS = {"dpi": 60, "max_categories": 20}
FIGURES = ["rates", "e_hull", "atoms_per_cell", "space_groups", "elements", "relaxation_steps"]
CAPTIONS = REPO / "workflow" / "report"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return run_with_imported_examples(tmp_path_factory.mktemp("plots"), CONFIG)


@pytest.fixture
def tables(campaign):
    structures, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    return structures, summary, settings


def texts(figure) -> list[str]:
    return [text.get_text() for axes in figure.axes for text in axes.texts]


def legend(figure) -> list[str]:
    legends = [*figure.legends, figure.axes[0].get_legend()]
    return [text.get_text() for legend in legends if legend for text in legend.get_texts()]


def vertical_lines(figure) -> list[float]:
    return [line.get_xdata()[0] for line in figure.axes[0].get_lines()]


def ticks(figure, axis: str = "x") -> list[str]:
    labels = figure.axes[0].get_xticklabels() if axis == "x" else figure.axes[0].get_yticklabels()
    return [label.get_text() for label in labels]


def with_stability(structures: pd.DataFrame, summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real tables plus stability columns as the contract names them: a spread of E_hull values
    (one beyond the clip, one NaN with a reason) and fractions derived from them."""
    structures = structures.copy()
    evaluated = structures.index[structures["evaluated"]]
    values = np.linspace(-0.05, 1.6, len(evaluated))
    values[-1] = np.nan
    structures["e_above_hull"] = np.nan
    structures.loc[evaluated, "e_above_hull"] = values
    structures["e_above_hull_reason"] = None
    structures.loc[evaluated[-1], "e_above_hull_reason"] = "missing end-member: Ti"
    structures["stable"] = structures["e_above_hull"] <= 0.1
    structures["metastable"] = structures["e_above_hull"] <= 0.2
    structures["sun"] = structures["stable"] & structures["unique_all"] & structures["novel"]
    structures["msun"] = structures["metastable"] & structures["unique_all"] & structures["novel"]
    summary = summary.copy()
    for flag in ("stable", "metastable", "sun", "msun"):
        counts = structures.groupby("generator")[flag].sum()
        summary[f"n_{flag}"] = summary["generator"].map(counts).fillna(structures[flag].sum()).astype(int)
    for flag in ("stable", "sun", "msun"):
        summary[f"frac_{flag}"] = summary[f"n_{flag}"] / summary["n_requested"].replace(0, np.nan)
    summary["stability_threshold"] = 0.1
    summary["metastable_threshold"] = 0.2
    return structures, summary


def test_generator_without_batches_gets_a_summary_row_in_config_order(campaign):
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert summary["generator"].tolist() == ["empty", "rss", "known", "all"]
    rows = summary.set_index("generator")
    assert rows.loc["empty", ["n_requested", "n_evaluated", "n_valid", "n_unique"]].tolist() == [0, 0, 0, 0]
    assert rows.loc["empty", ["frac_valid", "frac_unique", "frac_novel", "mean_rmsd"]].isna().all()
    assert (
        rows.loc["all", "n_requested"]
        == rows.loc["rss", "n_requested"] + rows.loc["known", "n_requested"]
        == 7
    )


def test_campaign_writes_every_plot_and_the_summary_page(campaign):
    plots_dir = campaign.results / "plots"
    for name in FIGURES:
        assert (plots_dir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (plots_dir / "summary.html").read_text()
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert "<th>empty</th><th>rss</th><th>known</th><th>all</th>" in page
    requested = "".join(f"<td>{n}</td>" for n in summary["n_requested"])
    assert f"<tr><td>n_requested</td>{requested}<td>" in page
    valid = "".join("<td>n/a</td>" if np.isnan(v) else f"<td>{v:.3f}</td>" for v in summary["frac_valid"])
    assert f"<tr><td>frac_valid</td>{valid}<td>" in page and valid.count("n/a") == 1
    sun = "".join("<td>n/a</td>" if np.isnan(v) else f"<td>{v:.3f}</td>" for v in summary["frac_sun"])
    assert f"<tr><td>frac_sun</td>{sun}<td>" in page
    assert "relaxer: chgnet 0.3.0" in page


def without_stability(structures: pd.DataFrame, summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real tables as tables written before the stability step existed."""
    structure_columns = ["e_above_hull", "e_above_hull_reason", "decomposition", "stable", "metastable"]
    summary_columns = [*plots.STABILITY_SUMMARY, "stability_threshold", "metastable_threshold"]
    return (
        structures.drop(columns=[*structure_columns, "sun", "msun"], errors="ignore"),
        summary.drop(columns=summary_columns, errors="ignore"),
    )


def test_figures_from_the_real_tables_without_stability(tables):
    structures, summary = without_stability(*tables[:2])
    settings = tables[2]
    figures = plots.figures(structures, summary, settings, SETTINGS)
    assert list(figures) == FIGURES

    rates = figures["rates"]
    assert rates.axes[0].get_title() == "Rates per generator (stability, S.U.N.: not computed)"
    assert ticks(rates) == ["valid", "unique", "novel", "unique & novel"]
    assert legend(rates) == ["empty", "rss", "known", "all"]
    assert texts(rates).count("n/a") == 4  # the generator without batches, once per rate

    assert texts(figures["e_hull"]) == ["E_hull not computed: no stability step ran for this campaign"]

    assert "Fm-3m (225)" in ticks(figures["space_groups"], "y")
    assert {"Na", "Cl", "Mg", "O", "Ti"} <= set(ticks(figures["elements"]))

    steps = figures["relaxation_steps"]
    assert vertical_lines(steps) == [15]
    relaxed = structures[structures["status"].isin(["converged", "unconverged"])]
    # Steps are recorded per structure: an unconverged relaxation stopped at the cap.
    assert len(relaxed) >= 5 and relaxed["n_steps"].between(0, 15).all()
    assert (relaxed.loc[relaxed["status"] == "unconverged", "n_steps"] == 15).all()
    for name, group in relaxed.groupby("generator"):
        converged = (group["status"] == "converged").sum()
        assert f"{name} ({converged} of {len(group)} converged)" in legend(steps)


def test_figures_with_stability_columns(tables):
    structures, summary = with_stability(*tables[:2])
    figures = plots.figures(structures, summary, tables[2], SETTINGS)

    rates = figures["rates"]
    assert rates.axes[0].get_title() == "Rates per generator"
    assert ticks(rates)[-3:] == ["stable", "S.U.N.", "metastable S.U.N."]

    e_hull = figures["e_hull"]
    assert sorted(vertical_lines(e_hull)) == [0.1, 0.2]
    has_value = structures[structures["e_above_hull"].notna()]
    for name, group in has_value.groupby("generator"):
        assert f"{name} ({len(group)})" in legend(e_hull)
    assert "1 without a value" in e_hull.axes[0].get_xlabel()
    assert e_hull.axes[0].get_xlim()[1] < 1.2  # the 1.6 eV/atom outlier is drawn in the last bin

    page = plots.summary_html(summary, {"frac_sun": "S.U.N. over requested"}, "plots")
    assert "not computed" not in page
    rss_sun = summary.set_index("generator").loc["rss", "frac_sun"]
    assert f"<tr><td>frac_sun</td><td>n/a</td><td>{rss_sun:.3f}</td>" in page  # empty, then rss
    assert "<td>S.U.N. over requested</td>" in page


def test_e_hull_all_missing_shows_the_reasons(tables):
    structures, summary = with_stability(*tables[:2])
    structures["e_above_hull"] = np.nan
    structures.loc[structures["evaluated"], "e_above_hull_reason"] = "no reference entries for Na-Cl"
    figure = plots.e_hull_figure(structures, summary)
    n_evaluated = int(structures["evaluated"].sum())
    assert texts(figure) == [f"no E_hull value\n{n_evaluated} x no reference entries for Na-Cl"]


def test_figures_without_any_structure_say_so():
    """The frames of a campaign without batches, built by the metrics code itself."""
    dedup = pd.DataFrame(
        columns=["id", "class_generator", "unique_generator", "class_all", "unique_all", "shared"]
    )
    empty = metrics.concat_tables([])
    structures = metrics.structures_table(empty, empty, empty, dedup)
    summary = metrics.summary_table(structures, {"a": 0, "b": 0})
    figures = plots.figures(structures, summary, {}, SETTINGS)
    for name in ("atoms_per_cell", "space_groups", "elements"):
        assert texts(figures[name]) == ["no evaluated structures"]
    assert texts(figures["relaxation_steps"]) == ["no relaxations (none requested, or relax backend: none)"]
    assert texts(figures["rates"]).count("n/a") == 3 * 4
    for figure in figures.values():
        figure.savefig(BytesIO(), format="png")  # renders without error
    no_hull = plots.e_hull_figure(
        structures.assign(e_above_hull=np.nan), summary.assign(stability_threshold=0.1)
    )
    assert texts(no_hull) == ["no E_hull value"]


def test_campaign_with_nothing_evaluated_still_plots(tmp_path):
    (tmp_path / "imported").mkdir()
    (tmp_path / "imported" / "broken.cif").write_text("data_broken\n_cell_length_a x\n")
    config = {
        "campaign": "broken",
        "generators": [{"name": "junk", "backend": "import", "paths": ["imported"]}],
        "relax": {"backend": "none"},
    }
    campaign = Campaign(tmp_path, config)
    campaign.snakemake()
    structures, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert len(structures) == 1 and not structures["evaluated"].any()
    figures = plots.figures(structures, summary, settings, SETTINGS)
    assert texts(figures["space_groups"]) == ["no evaluated structures"]
    assert texts(figures["rates"]).count("n/a") == 2 * 4
    assert (campaign.results / "plots" / "relaxation_steps.png").stat().st_size > 0


class ExternalAssets(HTMLParser):
    """Every src/href of the page that is not inline (data: URIs, anchors, javascript:)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href") and value and not value.startswith(("data:", "#", "javascript:")):
                self.found.append(f"<{tag} {key}={value}>")


def report_variable(page: str, name: str):
    match = re.search(rf"<script id=\"[^\"]*\">\s*var {name} = (.*?);\s*</script>", page, re.DOTALL)
    return json.loads(match.group(1))


def rendered_caption(path: Path, config: dict, **wildcards: str) -> str:
    """A caption as Snakemake renders it: Jinja2 with the `snakemake` object, then reStructuredText."""
    text = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(path.read_text())
    snakemake = SimpleNamespace(config=config, wildcards=SimpleNamespace(**wildcards))
    return publish_parts(text.render(snakemake=snakemake), writer="html")["body"]


def hull_systems(campaign: Campaign) -> list[str]:
    return sorted(path.stem for path in (campaign.results / "plots" / "hulls").glob("*.png"))


def test_snakemake_report_is_self_contained_with_every_caption_and_the_summary(campaign, monkeypatch):
    campaign.snakemake("--report", "report.html")
    page = (campaign.root / "report.html").read_text()

    parser = ExternalAssets()
    parser.feed(page)
    assert parser.found == []

    results = report_variable(page, "results")
    prefix = f"results/{CONFIG['campaign']}/plots"
    tables = {f"{prefix}/summary.html", f"{prefix}/candidates.html", f"{prefix}/hulls.html"}
    systems = hull_systems(campaign)
    assert systems  # Cl-Na at least: the embedded reference has both end-members and NaCl
    hull_figures = {f"{prefix}/hulls/{system}.png": system for system in systems}
    assert set(results) == {f"{prefix}/{name}.png" for name in FIGURES} | tables | set(hull_figures)
    monkeypatch.chdir(campaign.root)  # import paths are relative to it
    config = validate_config(CONFIG)  # captions see the config with its defaults, as Snakemake's report does
    captions = {"hulls": "hull_systems"}
    for path, result in results.items():
        assert result["data_uri"].startswith(f"data:{result['mime_type']};")
        if path in hull_figures:
            expected = rendered_caption(CAPTIONS / "hull.rst", config, system=hull_figures[path])
            assert hull_figures[path] in expected and "self_consistent" in expected
        else:
            name = Path(path).stem
            expected = rendered_caption(CAPTIONS / f"{captions.get(name, name)}.rst", config)
        assert result["caption"] == expected, path
        assert "<img" not in result["caption"] and "http" not in result["caption"]
    categories = report_variable(page, "categories")
    categories["5. Chemical systems"]["phase diagrams"].sort()  # in the order the folder lists them
    assert categories == {
        "1. Summary": {"table": [f"{prefix}/summary.html"], "candidates": [f"{prefix}/candidates.html"]},
        "2. Metrics": {"rates": [f"{prefix}/rates.png"], "stability": [f"{prefix}/e_hull.png"]},
        "3. Structures": {
            "cells": [f"{prefix}/atoms_per_cell.png"],
            "symmetry": [f"{prefix}/space_groups.png"],
            "composition": [f"{prefix}/elements.png"],
        },
        "4. Relaxation": {"steps": [f"{prefix}/relaxation_steps.png"]},
        "5. Chemical systems": {"phase diagrams": sorted(hull_figures), "table": [f"{prefix}/hulls.html"]},
    }

    summary_uri = results[f"{prefix}/summary.html"]["data_uri"]
    embedded = base64.b64decode(summary_uri.split("base64,", 1)[1]).decode()
    assert embedded == (campaign.results / "plots" / "summary.html").read_text()
    png_uri = results[f"{prefix}/rates.png"]["data_uri"]
    assert (
        base64.b64decode(png_uri.split("base64,", 1)[1])
        == (campaign.results / "plots" / "rates.png").read_bytes()
    )
    assert "Campaign <strong>plots</strong>" in report_variable(page, "workflow_desc")


def test_hull_table_of_the_campaign_agrees_with_its_per_structure_table(campaign, tables):
    structures, _, settings = tables
    systems, recorded = io.read_table(campaign.results / "hulls" / "systems.parquet")
    assert recorded["stability"] == settings["stability"] and recorded["plots"]["hull_systems"] == 12
    assert sorted(recorded["systems"]) == sorted(set(systems["system"]))
    assert hull_systems(campaign) == sorted(set(systems.loc[systems["hull_reason"].isna(), "system"]))
    evaluated = structures[structures["evaluated"]]
    for (system, formula), row in systems.set_index(["system", "formula"]).iterrows():
        elements = set(system.split("-"))
        inside = evaluated[[set(c.split("-")) <= elements for c in evaluated["chemsys"]]]
        mine = inside[inside["formula"] == formula]
        assert row["n_generated"] == len(mine), (system, formula)
        assert row["n_on_or_below_hull"] == int((mine["e_above_hull"] <= 1e-6).sum())
        if mine["e_above_hull"].notna().any():
            best = mine.loc[mine["e_above_hull"].idxmin()]
            assert (row["best_id"], row["best_e_above_hull"]) == (best["id"], best["e_above_hull"])
    # Formation energies are the stability step's points on the same diagram.
    placed = evaluated[evaluated["formation_energy_per_atom"].notna()]
    assert len(placed) and placed["e_above_hull"].notna().all()


CHROMIUM = "/usr/bin/chromium"
# As root, in a closed network: no sandbox, and none of Chromium's own background connections.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def show_result(page, url: str, category: str, subcategory: str, label: str) -> None:
    """Open the report and click through its menu to one result, as a reader would."""
    page.goto(url)
    page.get_by_role("link", name=category, exact=True).click()
    page.get_by_role("link", name=subcategory, exact=True).click()
    row = page.locator("tr", has=page.get_by_text(label, exact=True))
    row.locator("a[iconname=eye]").click()


def test_report_renders_summary_candidates_and_hull_figures_in_a_real_browser(campaign, tmp_path):
    """Debian's Chromium, headless (make test-fast installs it), through Playwright."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: make test-fast installs it"
    report = tmp_path / "report.html"
    campaign.snakemake("--report", str(report))
    url = report.as_uri()
    system = hull_systems(campaign)[0]
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda error: errors.append(str(error)))

        show_result(page, url, "1. Summary", "table", "summary")
        summary = page.frame_locator("iframe")
        assert summary.locator("h3").inner_text() == f"Campaign {CONFIG['campaign']}: summary"
        assert summary.locator("tbody tr").filter(has_text="frac_sun").count() == 1

        show_result(page, url, "1. Summary", "candidates", "candidates")
        candidates = page.frame_locator("iframe")
        headings = candidates.locator("thead th").all_inner_texts()
        assert headings[:5] == ["rank", "id", "formula", "space group", "E_hull (eV/atom)"]
        index = pd.read_csv(campaign.results / "candidates" / "index.csv")
        assert candidates.locator("tbody tr").count() == len(index)

        show_result(page, url, "5. Chemical systems", "table", "chemical systems")
        assert page.frame_locator("iframe").locator("tbody tr").filter(has_text=system).count() >= 1

        show_result(page, url, "5. Chemical systems", "phase diagrams", system)
        figure = page.locator("img[src^='data:image/png']")
        figure.wait_for()
        decoded = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        assert decoded and all(complete and width > 0 for complete, width, _ in decoded)
        shown = figure.evaluate("image => [image.naturalWidth, image.naturalHeight]")
        assert shown == png_size(campaign.results / "plots" / "hulls" / f"{system}.png")
        page.screenshot(path=tmp_path / "hull.png")
        browser.close()
    assert errors == []
    assert (tmp_path / "hull.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> list[int]:
    """Width and height from a PNG's header."""
    header = path.read_bytes()[16:24]
    return [int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")]
