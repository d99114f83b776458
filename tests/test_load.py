"""Loading (mdtflag.load): sources, every InputError code, validation, Bulk NDJSON, folders,
and property tests that only InputError escapes."""

from __future__ import annotations

import dataclasses
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mdtflag.fhir.load as load_mod
from mdtflag.errors import INPUT_ERROR_CODES, NOTE_CODES, DataQualityNote, InputError
from mdtflag.fhir.load import (
    FACT_RESOURCE_TYPES,
    MAX_DEPTH,
    LoadedBundle,
    iter_inputs,
    iter_ndjson_patients,
    load_bundle,
)

PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01", "gender": "male"}
ECOG = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]},
    "subject": {"reference": "Patient/p1"},
    "valueInteger": 1,
}


def bundle(*resources, btype="collection"):
    return {
        "resourceType": "Bundle",
        "type": btype,
        "entry": [{"fullUrl": f"urn:uuid:{r.get('id')}", "resource": r} for r in resources],
    }


def raises(code, fn, *args, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args, **kw)
    assert info.value.code == code, info.value
    return info.value


# ---------------------------------------------------------------------------------------------
# sources


def test_load_from_dict_bytes_and_path(tmp_path):
    b = bundle(PATIENT, ECOG)
    f = tmp_path / "patient.json"
    f.write_bytes(orjson.dumps(b))
    for source, name in (
        (b, "<dict>"),
        (orjson.dumps(b), "<bytes>"),
        (f, str(f)),
        (str(f), str(f)),
        (bytearray(orjson.dumps(b)), "<bytes>"),
    ):
        loaded = load_bundle(source)
        assert isinstance(loaded, LoadedBundle)
        assert loaded.source == name
        assert loaded.patient["id"] == "p1"
        assert [r["resourceType"] for r in loaded.resources] == ["Patient", "Observation"]
        assert loaded.full_urls == ("urn:uuid:p1", "urn:uuid:o1")
        assert loaded.notes == ()
    assert load_bundle(b, name="x.json").source == "x.json"


@pytest.mark.parametrize(
    "btype", ["collection", "transaction", "searchset", "document", "batch", "transaction-response", "history"]
)
def test_bundle_types_accepted(btype):
    assert load_bundle(bundle(PATIENT, btype=btype)).patient["id"] == "p1"


def test_bom_is_accepted():
    assert load_bundle(b"\xef\xbb\xbf" + orjson.dumps(bundle(PATIENT))).patient["id"] == "p1"


def test_resources_keep_bundle_order_and_patient_identity():
    obs2 = dict(ECOG, id="o2")
    loaded = load_bundle(bundle(ECOG, PATIENT, obs2), validate="none")
    assert [r["id"] for r in loaded.resources] == ["o1", "p1", "o2"]
    assert loaded.patient is loaded.resources[1]


def test_bad_entries_are_notes():
    b = bundle(PATIENT)
    b["entry"] += [{"fullUrl": "x"}, "junk", {"resource": {"id": "no-type"}}, {"resource": []}]
    loaded = load_bundle(b)
    assert [n.code for n in loaded.notes] == ["invalid-entry"] * 4
    assert [n.element for n in loaded.notes] == [
        "Bundle.entry[1]",
        "Bundle.entry[2]",
        "Bundle.entry[3].resource",
        "Bundle.entry[4]",
    ]


def test_wrong_source_type_is_type_error():
    with pytest.raises(TypeError):
        load_bundle(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        load_bundle(bundle(PATIENT), validate="strict")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# every InputError code


def test_not_json_with_line_and_truncated():
    err = raises("not-json", load_bundle, b'{\n  "resourceType": "Bundle",\n  "entry": [x]\n}')
    assert err.line == 3 and err.source == "<bytes>"
    err = raises("not-json", load_bundle, orjson.dumps(bundle(PATIENT))[:-7], name="cut.json")
    assert "truncated" in err.message and str(err).startswith("cut.json:")
    assert str(err).endswith("[not-json]")
    raises("not-json", load_bundle, b"")
    raises("not-json", load_bundle, '{"resourceType": "Bundle", "id": "Å'.encode()[:-1])


def test_not_utf8():
    raises("not-utf8", load_bundle, b'{"resourceType": "Bundle", "id": "\xff\xfe"}')
    raises("not-utf8", load_bundle, '{"resourceType": "Bundle"}'.encode("utf-16"))


@pytest.mark.parametrize(
    "obj,what",
    [(PATIENT, "single Patient"), ([PATIENT], "array"), ("text", "str"), (None, "null"), ({"entry": []}, "without")],
)
def test_not_bundle(obj, what):
    err = raises("not-bundle", load_bundle, orjson.dumps(obj))
    assert what in err.message


def test_malformed_entry_array_is_not_bundle():
    raises("not-bundle", load_bundle, {"resourceType": "Bundle", "entry": {"resource": PATIENT}})


def test_no_patient_and_several_patients():
    raises("no-patient", load_bundle, bundle(ECOG))
    raises("no-patient", load_bundle, {"resourceType": "Bundle", "type": "collection"})
    err = raises("several-patients", load_bundle, bundle(PATIENT, dict(PATIENT, id="p2")))
    assert "Patient/p1" in err.message and "Patient/p2" in err.message


def test_too_large(tmp_path, monkeypatch):
    monkeypatch.setattr(load_mod, "MAX_BYTES", 100)
    data = orjson.dumps(bundle(PATIENT, ECOG))
    err = raises("too-large", load_bundle, data)
    assert "100" in err.message
    f = tmp_path / "big.json"
    f.write_bytes(data)
    err = raises("too-large", load_bundle, f)
    assert err.source == str(f)


def test_too_deep_bytes_and_dict():
    deep = b'{"resourceType": "Bundle", "x": ' + b"[" * 150 + b"]" * 150 + b"}"
    err = raises("too-deep", load_bundle, deep)
    assert str(MAX_DEPTH) in err.message
    raises("too-deep", load_bundle, b"[" * 5000 + b"]" * 5000)  # beyond orjson's own limit
    nested: dict = {"resourceType": "Bundle"}
    node = nested
    for _ in range(MAX_DEPTH + 5):
        node["x"] = {}
        node = node["x"]
    raises("too-deep", load_bundle, nested)
    ok = b'{"resourceType": "Bundle", "x": ' + b"[" * 90 + b"]" * 90 + b"}"
    raises("no-patient", load_bundle, ok)


def test_cyclic_dict_is_refused_not_hung():
    b = bundle(PATIENT)
    b["self"] = b
    raises("too-deep", load_bundle, b)


def test_not_found(tmp_path):
    err = raises("not-found", load_bundle, tmp_path / "missing.json")
    assert err.source.endswith("missing.json")
    raises("not-found", load_bundle, tmp_path)


def test_input_error_codes_and_str():
    assert set(INPUT_ERROR_CODES) == {
        "not-json",
        "not-utf8",
        "not-bundle",
        "no-patient",
        "several-patients",
        "too-large",
        "too-deep",
        "too-many-resources",
        "not-found",
    }
    e = InputError("not-json", "Observation.ndjson", "bad", 17)
    assert str(e) == "Observation.ndjson:17: bad [not-json]"
    assert str(InputError("no-patient", "<dict>", "none")) == "<dict>: none [no-patient]"
    assert e.to_dict() == {"code": "not-json", "source": "Observation.ndjson", "message": "bad", "line": 17}
    import pickle

    assert pickle.loads(pickle.dumps(e)) == e
    with pytest.raises(ValueError):
        InputError("bogus", "x", "y")


def test_data_quality_note():
    n = DataQualityNote("unknown-unit", "unit x", "Observation/1", "Observation.valueQuantity")
    assert n.to_dict() == {
        "code": "unknown-unit",
        "message": "unit x",
        "resource": "Observation/1",
        "element": "Observation.valueQuantity",
    }
    assert DataQualityNote("invalid-entry", "m").to_dict() == {"code": "invalid-entry", "message": "m"}
    assert "unknown-unit" in NOTE_CODES and "invalid-resource" in NOTE_CODES
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.code = "x"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# validation


def test_invalid_fact_resource_removed_with_note():
    bad = dict(ECOG, valueInteger="one")
    loaded = load_bundle(bundle(PATIENT, bad))
    assert [r["resourceType"] for r in loaded.resources] == ["Patient"]
    assert loaded.full_urls == ("urn:uuid:p1",)
    (note,) = loaded.notes
    assert (note.code, note.resource, note.element) == (
        "invalid-resource",
        "Observation/o1",
        "Observation.valueInteger",
    )
    assert "Observation/o1" in note.message
    kept = load_bundle(bundle(PATIENT, bad), validate="none")
    assert len(kept.resources) == 2 and kept.notes == ()


def test_invalid_patient_is_kept_with_note():
    loaded = load_bundle(bundle(dict(PATIENT, gender=5), ECOG))
    assert loaded.patient["id"] == "p1" and len(loaded.resources) == 2
    assert [(n.code, n.resource, n.element) for n in loaded.notes] == [
        ("invalid-resource", "Patient/p1", "Patient.gender")
    ]


def test_validate_facts_only_checks_fact_types():
    bad_practitioner = {"resourceType": "Practitioner", "id": "dr", "name": "Dr X"}
    loaded = load_bundle(bundle(PATIENT, bad_practitioner), validate="facts")
    assert len(loaded.resources) == 2 and loaded.notes == ()
    loaded = load_bundle(bundle(PATIENT, bad_practitioner), validate="all")
    assert len(loaded.resources) == 1 and loaded.notes[0].resource == "Practitioner/dr"
    assert "Procedure" in FACT_RESOURCE_TYPES and "Practitioner" not in FACT_RESOURCE_TYPES


def test_unknown_resource_type():
    weird = {"resourceType": "MadeUp", "id": "m"}
    assert len(load_bundle(bundle(PATIENT, weird)).resources) == 2  # facts: not validated
    loaded = load_bundle(bundle(PATIENT, weird), validate="all")
    assert len(loaded.resources) == 1 and "unknown FHIR resource type" in loaded.notes[0].message


def test_r4_shapes_validate_with_r4b_models():
    ms = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01EA01"}]},
        "subject": {"reference": "Patient/p1"},
    }
    rs = {
        "resourceType": "ResearchSubject",
        "id": "rs",
        "status": "candidate",
        "study": {"reference": "ResearchStudy/s"},
        "individual": {"reference": "Patient/p1"},
    }
    loaded = load_bundle(bundle(PATIENT, ms, rs), validate="all")
    assert loaded.notes == () and len(loaded.resources) == 3


def test_validation_cost_is_measured():
    resources = [PATIENT] + [dict(ECOG, id=f"o{i}") for i in range(40)]
    data = orjson.dumps(bundle(*resources))
    timings = {}
    for mode in ("none", "facts"):
        t = time.process_time()
        for _ in range(5):
            load_bundle(data, validate=mode)
        timings[mode] = (time.process_time() - t) / 5
    print(f"\nload 41 resources: none {timings['none'] * 1e3:.2f} ms, facts {timings['facts'] * 1e3:.2f} ms")
    assert timings["none"] < timings["facts"]


# ---------------------------------------------------------------------------------------------
# Bulk NDJSON and folders


def write_ndjson(path, *lines):
    path.write_bytes(b"\n".join(ln if isinstance(ln, bytes) else orjson.dumps(ln) for ln in lines) + b"\n")
    return path


def test_ndjson_groups_by_patient(tmp_path):
    pats = write_ndjson(tmp_path / "Patient.ndjson", PATIENT, dict(PATIENT, id="p2"))
    obs = write_ndjson(
        tmp_path / "Observation.ndjson",
        ECOG,
        dict(ECOG, id="o2", subject={"reference": "http://x/fhir/Patient/p2"}),
        dict(ECOG, id="o3"),
    )
    meds = write_ndjson(
        tmp_path / "MedicationRequest.ndjson",
        {
            "resourceType": "MedicationRequest",
            "id": "mr",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p2"},
            "medicationReference": {"reference": "Medication/m1"},
        },
    )
    shared = write_ndjson(
        tmp_path / "Medication.ndjson",
        {"resourceType": "Medication", "id": "m1"},
        {"resourceType": "Medication", "id": "unused"},
    )
    fmh = write_ndjson(
        tmp_path / "FamilyMemberHistory.ndjson",
        {
            "resourceType": "FamilyMemberHistory",
            "id": "f",
            "status": "completed",
            "patient": {"reference": "Patient/p1"},
            "relationship": {"coding": [{"code": "MTH"}]},
        },
    )
    out = list(iter_ndjson_patients([pats, obs, meds, shared, fmh]))
    assert all(isinstance(o, LoadedBundle) for o in out)
    by_id = {o.patient["id"]: o for o in out}
    assert [r["id"] for r in by_id["p1"].resources] == ["p1", "o1", "o3", "f"]
    assert [r["id"] for r in by_id["p2"].resources] == ["p2", "o2", "mr", "m1"]
    assert by_id["p1"].source == f"{pats}#Patient/p1"


def test_ndjson_bad_lines_are_yielded_and_others_continue(tmp_path):
    pats = write_ndjson(
        tmp_path / "Patient.ndjson",
        PATIENT,
        b'{"resourceType": "Patient", "id":',
        b"\xff\xfe",
        b"[1, 2]",
        b"",
        dict(PATIENT, id="p2"),
    )
    out = list(iter_ndjson_patients([pats]))
    errors = [o for o in out if isinstance(o, InputError)]
    assert [(e.code, e.line) for e in errors] == [("not-json", 2), ("not-utf8", 3), ("not-bundle", 4)]
    assert all(e.source == str(pats) for e in errors)
    assert sorted(o.patient["id"] for o in out if isinstance(o, LoadedBundle)) == ["p1", "p2"]


def test_ndjson_resources_without_their_patient(tmp_path):
    obs = write_ndjson(tmp_path / "Observation.ndjson", dict(ECOG, subject={"reference": "Patient/ghost"}))
    (err,) = list(iter_ndjson_patients([obs]))
    assert err.code == "no-patient" and "Patient/ghost" in err.source


def test_ndjson_bundle_per_line(tmp_path):
    f = write_ndjson(tmp_path / "bundles.ndjson", bundle(PATIENT, ECOG), bundle(ECOG))
    good, bad = list(iter_ndjson_patients([f]))
    assert good.source == f"{f}:1" and len(good.resources) == 2
    assert (bad.code, bad.source, bad.line) == ("no-patient", str(f), 2)


def test_ndjson_missing_file(tmp_path):
    (err,) = list(iter_ndjson_patients([tmp_path / "nope.ndjson"]))
    assert err.code == "not-found"


def test_iter_inputs_file_folder_and_missing(tmp_path):
    (tmp_path / "b.json").write_bytes(orjson.dumps(bundle(PATIENT)))
    (tmp_path / "a.json").write_bytes(b"not json")
    (tmp_path / "c.json").write_bytes(orjson.dumps(ECOG))
    write_ndjson(tmp_path / "Patient.ndjson", dict(PATIENT, id="bulk"))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    out = list(iter_inputs(tmp_path))
    assert [(type(o).__name__, getattr(o, "code", None)) for o in out] == [
        ("LoadedBundle", None),  # Patient.ndjson sorts first ("P" < "a")
        ("InputError", "not-json"),
        ("LoadedBundle", None),
        ("InputError", "not-bundle"),
    ]
    assert out[0].patient["id"] == "bulk"
    assert [o.patient["id"] for o in iter_inputs(tmp_path / "b.json")] == ["p1"]
    (err,) = list(iter_inputs(tmp_path / "missing"))
    assert err.code == "not-found"
    assert [o.code for o in iter_inputs(tmp_path / "a.json")] == ["not-json"]


# ---------------------------------------------------------------------------------------------
# property tests: only InputError escapes

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["Bundle", "Patient", "collection"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["resourceType", "entry", "resource", "id", "fullUrl", "type", "gender", "birthDate"])
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(json_values, st.sampled_from(["none", "facts", "all"]))
def test_random_json_raises_only_input_error(value, mode):
    for source in (orjson.dumps(value), value if isinstance(value, dict) else None):
        if source is None:
            continue
        try:
            loaded = load_bundle(source, validate=mode)
        except InputError as err:
            assert err.code in INPUT_ERROR_CODES
        else:
            assert loaded.patient.get("resourceType") == "Patient"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_input_error(data):
    try:
        load_bundle(data)
    except InputError as err:
        assert err.code in INPUT_ERROR_CODES


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=5), st.sampled_from(["none", "facts"]))
def test_random_bundle_entries_raise_only_input_error(resources, mode):
    entries = [{"resource": r} for r in resources] + [{"resource": dict(PATIENT)}]
    try:
        load_bundle({"resourceType": "Bundle", "type": "collection", "entry": entries}, validate=mode)
    except InputError as err:
        assert err.code in ("several-patients",)
