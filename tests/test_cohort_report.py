"""The HTML cohort report, rendered in headless Chromium and checked for what a person sees.

Screenshots go to ``tests/artifacts/`` (not versioned). Chromium runs offline (every host name
resolves to nothing) and its network log shows that the page itself asks for nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.api import Evaluator
from mdtflag.cohort.report import summarise, write_report
from mdtflag.output.render import to_json

pytest.importorskip("matplotlib", reason="matplotlib draws the report's plots")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
AS_OF = "2026-11-01"
HOSTILE = "p<img src=x onerror=alert(1)>&amp;\"'<script>alert(2)</script"
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
PURPLE = (0x7A, 0x5C, 0xA8)  # the paediatric level's bars in the level plot

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")


# ----------------------------------------------------------------------------------------------- data


def _hostile_bundle() -> dict[str, Any]:
    raw = (ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json").read_bytes()
    text = raw.decode("utf-8").replace('"Patient/p01"', orjson.dumps(f"Patient/{HOSTILE}").decode())
    bundle: dict[str, Any] = orjson.loads(text)
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["id"] = HOSTILE
    return bundle


@dataclass
class Run:
    results: Path
    manifest: Path
    docs: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    d = tmp_path_factory.mktemp("run")
    ev = Evaluator(ROOT / "rules")
    bad = d / "broken <b>bundle<i>.json"
    bad.write_text("{ not json", encoding="utf-8")
    items = list(ev.evaluate_all(ROOT / "fhir_examples", as_of=AS_OF)) + [ev.evaluate(_hostile_bundle(), as_of=AS_OF)]
    items += list(ev.evaluate_all(bad, as_of=AS_OF))
    lines = [to_json(r, indent=False) for r in items]
    results = d / "results.ndjson"
    results.write_bytes(b"".join(lines))
    docs = [orjson.loads(x) for x in lines]
    ok = [x for x in docs if x["schema"] == "mdtflag.result/1"]
    rs = ok[0]["ruleset"]
    manifest = d / "manifest.json"
    manifest.write_bytes(
        orjson.dumps(
            {
                "inputs": [str(ROOT / "fhir_examples"), str(bad)],
                "as_of": AS_OF,
                "profile": rs["profile"],
                "ruleset": {"name": rs["name"], "version": rs["version"], "digest": rs["digest"]},
                "counts": {"inputs": len(docs), "results": len(ok), "errors": len(docs) - len(ok), "unassigned": 0},
            }
        )
    )
    return Run(results, manifest, docs)


# ----------------------------------------------------------------------------------------------- browser


class Dom(HTMLParser):
    """The rendered page: text per element, the elements seen, and the text of each ``article``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.elements: list[tuple[str, dict[str, str | None], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("img", "meta", "br", "link", "input"):
            self.elements.append((tag, dict(attrs), ""))
            return
        self.stack.append((tag, dict(attrs), []))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            t, attrs, text = self.stack.pop()
            joined = " ".join(" ".join(text).split())
            self.elements.append((t, attrs, joined))
            if self.stack:
                self.stack[-1][2].append(joined)
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)

    def texts(self, tag: str) -> list[str]:
        return [text for t, _, text in self.elements if t == tag]


@dataclass
class Rendered:
    dom: Dom
    page_requests: list[str]
    screenshot: Path


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        timeout=180,
        env={**os.environ, "LANG": "C.UTF-8"},
        check=True,
    )


def _page_requests(netlog: Path) -> list[str]:
    """URLs of network requests the page started (Chromium's own background requests have no origin)."""
    log = json.loads(netlog.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and "url" in e.get("params", {}) and e["params"].get("initiator") != "not an origin"
    ]


def render(page: Path, work: Path, name: str, height: int = 2400) -> Rendered:
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / f"{name}.netlog.json"
    out = _chromium(["--dump-dom", f"--log-net-log={netlog}", page.as_uri()], work / f"{name}-profile-dom")
    dom = Dom()
    dom.feed(out.stdout.decode("utf-8"))
    dom.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    _chromium([f"--screenshot={shot}", f"--window-size=1280,{height}", page.as_uri()], work / f"{name}-profile-shot")
    return Rendered(dom, _page_requests(netlog), shot)


def _pixels(png: Path, rgb: tuple[int, int, int]) -> int:
    from PIL import Image

    with Image.open(png) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(n for n, c in colours if c == rgb)


@pytest.fixture(scope="module")
def rendered(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Rendered]]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (.ci/run installs it)")
    d = tmp_path_factory.mktemp("html")
    got = {}
    for lang in ("sv", "en"):
        page = d / f"report-{lang}.html"
        write_report(run.results, run.manifest, page, lang=lang)
        got[lang] = render(page, d, f"cohort-report-{lang}")
    yield got


# ----------------------------------------------------------------------------------------------- tests


@needs_chromium
def test_headings_and_labels_follow_the_language(rendered: dict[str, Rendered]) -> None:
    sv, en = rendered["sv"].dom, rendered["en"].dom
    assert sv.texts("h1") == ["Kohortscreening – rapport"]
    assert en.texts("h1") == ["Cohort screening – report"]
    assert sv.texts("h2") == [
        "Körning och regelverk",
        "MDK-nivå och sjukvårdsregion",
        "Flaggor",
        "Obestämda patienter – vad som saknas",
        "Kohorter",
        "Fel",
    ]
    assert en.texts("h2") == [
        "Run and rule set",
        "MDK level and healthcare region",
        "Flags",
        "Undecided patients – what is missing",
        "Cohorts",
        "Errors",
    ]
    sv_th, en_th = set(sv.texts("th")), set(en.texts("th"))
    assert {"Sjukvårdsregion", "Nationell", "Kvar", "Ej uppfyllt", "Saknad uppgift"} <= sv_th
    assert {"Healthcare region", "National", "Remaining", "Not met", "Missing data"} <= en_th
    assert not {"Healthcare region", "Remaining", "Missing data"} & sv_th


@needs_chromium
def test_accounting_and_rule_set_identity(run: Run, rendered: dict[str, Rendered]) -> None:
    ok = [d for d in run.docs if d["schema"] == "mdtflag.result/1"]
    errors = [d for d in run.docs if d["schema"] == "mdtflag.error/1"]
    dom = rendered["en"].dom
    rows = dom.texts("tr")
    assert f"In the results file {len(ok)} {len(errors)} 0" in rows
    assert f"In the run's manifest {len(run.docs)} {len(ok)} {len(errors)} 0" in rows
    cards = dom.texts("div")
    assert f"{len(ok)} Results" in cards and f"{len(errors)} Errors" in cards
    dl = " ".join(dom.texts("dl"))
    rs = ok[0]["ruleset"]
    for value in (rs["name"], rs["version"], rs["digest"], rs["profile"], AS_OF):
        assert value in dl
    assert not [t for t in dom.texts("p") if "disagree" in t]
    # the error is listed with its code and its source, escaped
    assert any(t.startswith("not-json 1 ") and "broken <b>bundle<i>.json" in t for t in rows)


@needs_chromium
def test_levels_per_region_add_up(run: Run, rendered: dict[str, Rendered]) -> None:
    ok = [d for d in run.docs if d["schema"] == "mdtflag.result/1"]
    national = sum(1 for d in ok if d["decisions"]["mdk"]["level"] == "national")
    total_row = [t for t in rendered["en"].dom.texts("tr") if t.startswith("Total ")]
    assert total_row and total_row[0].split()[1] == str(national) and total_row[0].split()[-1] == str(len(ok))


@needs_chromium
def test_candidates_per_cohort_with_reasons(run: Run, rendered: dict[str, Rendered]) -> None:
    ok = [d for d in run.docs if d["schema"] == "mdtflag.result/1"]
    wanted = sorted(
        d["patient"]
        for d in ok
        for f in d["flags"]
        if f["rule"] == "TRIAL-FOCUSE"
        for c in f["cohorts"] or []
        if c["key"] == "K-BRAF-DT" and c["status"] == "flagged"
    )
    assert f"Patient/{HOSTILE}" in wanted and "Patient/p01" in wanted
    articles = [t for t, a, text in rendered["sv"].dom.elements if t == "article"]
    assert articles
    art = next(
        text
        for t, a, text in rendered["sv"].dom.elements
        if t == "article" and text.startswith("TRIAL-FOCUSE · K-BRAF-DT")
    )
    assert f"Kandidater ({len(wanted)})" in art
    for p in wanted:
        assert p in art
    # every screened patient is accounted for at the top of the funnel
    assert f"Bedömda {len(ok)}" in art
    # the reasons of a candidate are on the page (folded)
    p01 = next(d for d in ok if d["patient"] == "Patient/p01")
    focuse = next(f for f in p01["flags"] if f["rule"] == "TRIAL-FOCUSE")
    met = [r["text"]["sv"] for r in focuse["reasons"] if r["outcome"] == "met"]
    assert met and all(" ".join(m.split()) in art for m in met)


@needs_chromium
def test_undecided_patients_grouped_by_missing_data(run: Run, rendered: dict[str, Rendered]) -> None:
    ok = [d for d in run.docs if d["schema"] == "mdtflag.result/1"]
    no_ecog = sorted(
        d["patient"]
        for d in ok
        if any(
            f["status"] == "indeterminate"
            and f["kind"] != "derived"
            and any(m["text"]["en"] == "Cannot decide: ECOG missing" for m in f["missing"])
            for f in d["flags"]
        )
    )
    assert no_ecog
    row = next(t for t in rendered["en"].dom.texts("tr") if t.startswith("ECOG missing "))
    assert row.split()[2] == str(len(no_ecog))
    assert all(p in row for p in no_ecog)
    assert "'age_days'" not in " ".join(rendered["en"].dom.texts("td"))


@needs_chromium
def test_hostile_text_stays_text(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        assert [t for t, _, _ in r.dom.elements if t == "script"] == []
        imgs = [a for t, a, _ in r.dom.elements if t == "img"]
        assert imgs and all((a.get("src") or "").startswith("data:image/svg+xml;base64,") for a in imgs)
        assert not any("onerror" in a for _, a, _ in r.dom.elements)
        assert any(HOSTILE in text for t, _, text in r.dom.elements if t == "span")


@needs_chromium
def test_opens_offline_and_asks_the_network_for_nothing(rendered: dict[str, Rendered]) -> None:
    for lang, r in rendered.items():
        assert r.page_requests == [], f"{lang}: the page requested {r.page_requests}"
        # host names resolve to nothing, yet the plots are drawn: the paediatric level's bars are on screen
        assert _pixels(r.screenshot, PURPLE) > 300, f"{lang}: the level plot is not drawn in {r.screenshot}"


@needs_chromium
def test_the_network_check_sees_a_page_request(tmp_path: Path) -> None:
    page = tmp_path / "control.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="http://example.invalid/x.png"></body></html>', encoding="utf-8"
    )
    assert render(page, tmp_path, "control-page", height=200).page_requests == ["http://example.invalid/x.png"]


def test_no_manifest_and_unreadable_manifest(run: Run, tmp_path: Path) -> None:
    write_report(run.results, None, tmp_path / "a.html", lang="en")
    assert "No manifest was given" in (tmp_path / "a.html").read_text(encoding="utf-8")
    bad = tmp_path / "m.json"
    bad.write_text("[1, 2", encoding="utf-8")
    write_report(run.results, bad, tmp_path / "b.html", lang="en")
    assert "The manifest could not be read: not valid JSON" in (tmp_path / "b.html").read_text(encoding="utf-8")
    other = tmp_path / "other.json"
    other.write_bytes(orjson.dumps({"as_of": "2020-01-01", "state": "running", "counts": {"results": 3}}))
    write_report(run.results, other, tmp_path / "c.html", lang="en")
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "The manifest and the results file disagree: Evaluated as of 2020-01-01 ≠ " + AS_OF in page
    assert "The manifest and the results file disagree: Results 3 / " in page
    assert "The run is not complete according to its manifest (state: running)" in page


def test_funnel_accounts_for_every_screened_patient(run: Run) -> None:
    from mdtflag.cohort.report import drop_points

    s = summarise(run.results, "en")
    ok = [d for d in run.docs if d["schema"] == "mdtflag.result/1"]
    assert s.units
    for unit in s.units.values():
        with_rule = sum(1 for d in ok for f in d["flags"] if f["rule"] == unit.rule)
        counts = s.screened(unit)
        assert sum(counts.values()) == with_rule, unit.name
        drops = drop_points(unit, s.criteria.get(unit.rule, []))
        out = counts.get("not_applicable", 0) + counts.get("not_listed", 0) + sum(drops.values())
        assert with_rule - out == counts.get("flagged", 0), unit.name


def test_an_empty_run_still_gives_a_page(tmp_path: Path) -> None:
    empty = tmp_path / "results.ndjson"
    empty.write_bytes(b"")
    write_report(empty, None, tmp_path / "r.html", lang="sv")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Kohortscreening – rapport" in page and "Inga fel." in page and "Inga obestämda patienter." in page
    assert not (tmp_path / "r.html.part").exists()


ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "h4",
    "p",
    "nav",
    "a",
    "main",
    "section",
    "article",
    "div",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "code",
    "b",
    "br",
    "details",
    "summary",
    "ul",
    "li",
    "img",
    "footer",
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mix_of_lines_is_accounted_and_escaped(
    run: Run, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
    error = st.builds(
        lambda src, code, msg: orjson.dumps(
            {"schema": "mdtflag.error/1", "source": src, "error": {"code": code, "message": msg, "line": None}}
        ),
        text,
        text.filter(bool),
        text,
    )
    good = st.sampled_from([orjson.dumps(d) for d in run.docs if d["schema"] == "mdtflag.result/1"])
    junk = st.binary(max_size=20).filter(lambda b: b"\n" not in b and b.strip() != b"")
    lines = data.draw(st.lists(good | error | junk, max_size=10))
    d = tmp_path_factory.mktemp("mix")
    (d / "r.ndjson").write_bytes(b"".join(x + b"\n" for x in lines))
    lang = data.draw(st.sampled_from(["sv", "en"]))
    s = summarise(d / "r.ndjson", lang)
    assert s.results + s.errors_total + len(s.unreadable) == len(lines)
    write_report(d / "r.ndjson", None, d / "r.html", lang=lang)
    dom = Dom()
    dom.feed((d / "r.html").read_text(encoding="utf-8"))
    dom.close()
    assert {t for t, _, _ in dom.elements} <= ALLOWED_TAGS
    assert not any(k.startswith("on") for _, a, _ in dom.elements for k in a)
    page_text = " ".join(text for t, _, text in dom.elements if t == "td")
    shown: dict[str, int] = {}  # the page names up to five sources per error code
    for x in lines:
        try:
            doc = orjson.loads(x)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("schema") == "mdtflag.error/1":
            code = doc["error"]["code"]
            shown[code] = shown.get(code, 0) + 1
            if shown[code] <= 5 and doc["source"].strip():
                assert " ".join(doc["source"].split()) in page_text
