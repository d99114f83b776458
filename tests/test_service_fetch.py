"""Fetching missing prefetch data from a (mock, real HTTP) FHIR server: paging, bounds, refusals, no token leaks."""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator, Sequence
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from service_fetch_server import FhirServer

from mdtflag.service.fhirfetch import (
    MAX_PAGES,
    PREFETCH_QUERIES,
    FetchError,
    fetch_missing,
    query_url,
    same_origin,
)

PER_TYPE = 5
PAGE_SIZE = 2
SEARCH_KEYS = [k for k, q in PREFETCH_QUERIES.items() if "?" in q]


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    with FhirServer(per_type=PER_TYPE, page_size=PAGE_SIZE, slow_s=30) as server:
        yield server


def fetch(
    server: FhirServer,
    patient_id: str,
    missing: Sequence[str],
    *,
    token: str | None = None,
    timeout_s: float = 20.0,
    max_bytes: int = 10_000_000,
    base: str | None = None,
) -> list[dict[str, object]]:
    return asyncio.run(
        fetch_missing(
            base or server.base,
            server.token if token is None else token,
            patient_id,
            missing,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
        )
    )


def failure(server: FhirServer, patient_id: str, missing: Sequence[str], **kw: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(server, patient_id, missing, **kw)  # type: ignore[arg-type]
    return caught.value


def test_every_key_is_fetched_across_all_pages(fhir: FhirServer) -> None:
    got = fetch(fhir, "p1", list(PREFETCH_QUERIES))
    assert got[0] == {"resourceType": "Patient", "id": "p1", "gender": "female"}
    by_type: dict[str, list[str]] = {}
    for resource in got[1:]:
        by_type.setdefault(str(resource["resourceType"]), []).append(str(resource["id"]))
    searched = {PREFETCH_QUERIES[k].split("?")[0] for k in SEARCH_KEYS}
    assert set(by_type) == searched | {"ResearchStudy"}
    for rtype in searched:
        # every resource of every page, in page order, none twice
        assert by_type[rtype] == [f"{rtype.lower()}-p1-{i}" for i in range(PER_TYPE)]
    assert by_type["ResearchStudy"] == ["study-1"]
    # resources come in the order of the keys asked for
    order = [r["resourceType"] for r in got]
    firsts = [order.index(PREFETCH_QUERIES[k].split("?")[0].split("/")[0]) for k in PREFETCH_QUERIES]
    assert firsts == sorted(firsts)


def test_only_the_missing_keys_are_fetched(fhir: FhirServer) -> None:
    got = fetch(fhir, "p2", ["conditions", "conditions"])
    assert [r["id"] for r in got] == [f"condition-p2-{i}" for i in range(PER_TYPE)]
    assert fetch(fhir, "p2", []) == []


def test_relative_next_links_are_followed(fhir: FhirServer) -> None:
    got = fetch(fhir, "relative", ["observations"])
    assert [r["id"] for r in got] == [f"observation-relative-{i}" for i in range(PER_TYPE)]


def test_next_link_to_another_host_is_refused(fhir: FhirServer) -> None:
    err = failure(fhir, "crosshost", ["conditions"])
    assert err.reason == "cross-host-next-link" and err.key == "conditions"


def test_paging_is_bounded(fhir: FhirServer) -> None:
    err = failure(fhir, "endless", ["conditions"])
    assert err.reason == "too-many-pages"
    assert str(MAX_PAGES) in err.message


def test_total_size_is_bounded(fhir: FhirServer) -> None:
    assert failure(fhir, "big", ["observations"], max_bytes=1_000_000).reason == "too-large"
    # without a Content-Length the bytes are counted as they arrive
    assert failure(fhir, "chunkedbig", ["observations"], max_bytes=1_000_000).reason == "too-large"
    assert len(fetch(fhir, "chunkedbig", ["observations"], max_bytes=10_000_000)) == 1
    # the budget is shared by all queries: each small answer fits, all together do not
    assert len(fetch(fhir, "p3", SEARCH_KEYS, max_bytes=1_000_000)) > 0
    assert failure(fhir, "p3", SEARCH_KEYS, max_bytes=3_000).reason == "too-large"
    # with room for it, the large answer arrives whole
    big = fetch(fhir, "big", ["observations"], max_bytes=10_000_000)
    assert len(big) == 1 and len(str(big[0]["note"])) > 3_000_000


def test_slow_server_times_out(fhir: FhirServer) -> None:
    err = failure(fhir, "slow", ["patient", "conditions"], timeout_s=0.5)
    assert err.reason == "timeout"


@pytest.mark.parametrize(
    ("patient_id", "key", "reason", "status"),
    [
        ("notfound", "patient", "http-error", 404),
        ("redirect", "conditions", "http-error", 302),
        ("html", "conditions", "bad-response", None),
        ("outcome", "conditions", "operation-outcome", None),
        ("wrongpatient", "conditions", "wrong-patient", None),
        ("wrongpatient", "familyMemberHistories", "wrong-patient", None),
        ("wrongpatient", "researchSubjects", "wrong-patient", None),
    ],
)
def test_server_answers_that_are_not_data(
    fhir: FhirServer, patient_id: str, key: str, reason: str, status: int | None
) -> None:
    err = failure(fhir, patient_id, [key])
    assert (err.reason, err.status, err.key) == (reason, status, key)


def test_wrong_token_is_an_http_error(fhir: FhirServer) -> None:
    err = failure(fhir, "p1", ["patient"], token="another-token")
    assert (err.reason, err.status) == ("http-error", 401)


def test_warnings_in_a_search_are_not_data(fhir: FhirServer) -> None:
    got = fetch(fhir, "warning", ["conditions"])
    assert [r["resourceType"] for r in got] == ["Condition"] * PER_TYPE


def test_one_failing_key_fails_the_whole_fetch(fhir: FhirServer) -> None:
    err = failure(fhir, "crosshost", ["patient", "conditions", "observations"])
    assert err.reason == "cross-host-next-link"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server(fhir: FhirServer) -> None:
    err = failure(fhir, "p1", ["patient"], base=f"http://127.0.0.1:{_closed_port()}/fhir")
    assert err.reason == "unreachable"


@pytest.mark.parametrize(
    ("base", "token", "patient_id", "keys", "reason"),
    [
        ("http://fhir.example.org/r4", "t", "p1", ["patient"], "bad-fhir-server"),
        ("ftp://fhir.example.org/r4", "t", "p1", ["patient"], "bad-fhir-server"),
        ("https://fhir.example.org/r4?x=1", "t", "p1", ["patient"], "bad-fhir-server"),
        ("https://user:pw@fhir.example.org/r4", "t", "p1", ["patient"], "bad-fhir-server"),
        ("https://fhir.example.org/r4", "a b", "p1", ["patient"], "bad-token"),
        ("https://fhir.example.org/r4", "t\r\nX-Evil: 1", "p1", ["patient"], "bad-token"),
        ("https://fhir.example.org/r4", "", "p1", ["patient"], "bad-token"),
        ("https://fhir.example.org/r4", "t", "../Practitioner/1", ["patient"], "bad-patient-id"),
        ("https://fhir.example.org/r4", "t", "p1&_include=*", ["conditions"], "bad-patient-id"),
        ("https://fhir.example.org/r4", "t", "p1", ["procedures", "labs"], "unknown-key"),
    ],
)
def test_refused_before_any_request(base: str, token: str, patient_id: str, keys: list[str], reason: str) -> None:
    with pytest.raises(FetchError) as caught:
        asyncio.run(fetch_missing(base, token, patient_id, keys, timeout_s=1, max_bytes=1000))
    assert caught.value.reason == reason


def test_the_access_token_is_never_logged_nor_in_errors(fhir: FhirServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fetch(fhir, "p4", list(PREFETCH_QUERIES))
    errors = [
        failure(fhir, "crosshost", ["conditions"]),
        failure(fhir, "notfound", ["patient"]),
        failure(fhir, "slow", ["patient"], timeout_s=0.3),
    ]
    assert "HTTP Request" in caplog.text  # the client's own logging was captured
    assert fhir.token not in caplog.text
    for err in errors:
        assert fhir.token not in str(err) and fhir.token not in repr(err.args)


_ids = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(patient_id=_ids, key=st.sampled_from(sorted(PREFETCH_QUERIES)))
def test_query_urls_stay_on_the_server_and_name_the_patient(patient_id: str, key: str) -> None:
    base = "https://fhir.example.org/r4/"
    url = query_url(base, key, patient_id)
    assert same_origin(url, base)
    parts = urlsplit(url)
    assert parts.path.startswith("/r4/")
    if "?" in PREFETCH_QUERIES[key]:
        params = parse_qs(parts.query)
        assert params.get("patient", params.get("individual")) == [patient_id]
    else:
        assert parts.path == f"/r4/Patient/{patient_id}"


@settings(max_examples=200, deadline=None)
@given(patient_id=st.text(max_size=80).filter(lambda s: not all(c.isascii() and (c.isalnum() or c in "-.") for c in s) or not s or len(s) > 64))
def test_anything_but_a_fhir_id_is_refused(patient_id: str) -> None:
    with pytest.raises(FetchError) as caught:
        query_url("https://fhir.example.org/r4", "conditions", patient_id)
    assert caught.value.reason == "bad-patient-id"


_hosts = st.sampled_from(["fhir.example.org", "127.0.0.1", "other.example", "FHIR.example.org"])


@settings(max_examples=200)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_hosts,
    port=st.one_of(st.none(), st.sampled_from([80, 443, 8080])),
    other_scheme=st.sampled_from(["http", "https"]),
    other_host=_hosts,
    other_port=st.one_of(st.none(), st.sampled_from([80, 443, 8080])),
    path=st.sampled_from(["/r4", "/fhir/Condition", "/"]),
)
def test_same_origin_compares_scheme_host_and_effective_port(
    scheme: str, host: str, port: int | None, other_scheme: str, other_host: str, other_port: int | None, path: str
) -> None:
    def url(s: str, h: str, p: int | None) -> str:
        return f"{s}://{h}{'' if p is None else f':{p}'}{path}"

    def effective(s: str, p: int | None) -> int:
        return p if p is not None else (443 if s == "https" else 80)

    a, b = url(scheme, host, port), url(other_scheme, other_host, other_port)
    expected = (
        scheme == other_scheme
        and host.lower() == other_host.lower()
        and effective(scheme, port) == effective(other_scheme, other_port)
    )
    assert same_origin(a, b) is expected
    assert same_origin(a, a)
    assert not same_origin(f"{scheme}://user@{host}{path}", a)
