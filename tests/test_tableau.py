"""The Tableau data sources: valid XML on the Athena connector, one per existing view, in sync."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from finsentry.analytics import VIEW_COLUMNS, load_views
from finsentry.layout import RESOURCES, glue_database_name, resource_name
from finsentry.tableau import tds_filename, write_data_sources

TABLEAU_DIR = Path(__file__).resolve().parents[1] / "docs" / "tableau"


def test_the_committed_files_are_what_the_generator_writes(tmp_path):
    for path in write_data_sources(tmp_path):
        committed = TABLEAU_DIR / path.name
        assert committed.is_file(), f"{committed} missing: run python -m finsentry.tableau docs/tableau"
        assert committed.read_text() == path.read_text(), f"{committed.name} is stale: regenerate it"


def test_every_tds_is_an_athena_source_on_an_existing_view():
    views = {v.name for v in load_views()}
    files = sorted(TABLEAU_DIR.glob("*.tds"))
    assert {f.name for f in files} == {tds_filename(v) for v in load_views()}
    assert (TABLEAU_DIR / "finsentry.tds").is_file()
    referenced = set()
    for path in files:
        root = ET.parse(path).getroot()  # noqa: S314 - our own committed files
        assert root.tag == "datasource"
        athena = root.find("./connection[@class='federated']/named-connections/named-connection/connection")
        assert athena is not None and athena.get("class") == "athena"
        assert athena.get("server") == "athena.eu-west-1.amazonaws.com" and athena.get("port") == "443"
        assert athena.get("schema") == glue_database_name("prod")
        assert athena.get("warehouse", "").startswith("s3://") and athena.get("warehouse").endswith("/athena-results/")
        relation = root.find("./connection/relation")
        schema, view = relation.get("table").strip("[]").split("].[")
        assert schema == athena.get("schema") and view in views
        assert relation.get("connection") == root.find(".//named-connection").get("name")
        names = [c.get("name").strip("[]") for c in root.findall("./column")]
        assert names == list(VIEW_COLUMNS[view])
        referenced.add(view)
    assert referenced == views


def test_the_workgroup_is_the_deployments():
    props = (TABLEAU_DIR / "athena.properties").read_text().splitlines()
    assert f"Workgroup={resource_name('prod', RESOURCES.athena_workgroup)}" in props
