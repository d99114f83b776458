"""Stage 1: read one patient's FHIR R4 data into plain dicts.

``load_bundle`` takes a path, bytes or an already parsed dict and returns a :class:`LoadedBundle`:
the bundle's one Patient and all its entry resources as plain dicts (orjson), plus data-quality
notes. ``iter_ndjson_patients`` does the same for a FHIR Bulk Data export (one NDJSON file per
resource type), grouping the resources by their patient reference, and ``iter_inputs`` walks a file
or a folder. The iterators never raise for bad input: every input ends as a ``LoadedBundle`` or as
an :class:`~mdtflag.errors.InputError` in the stream.

Limits (refused with an ``InputError`` that names the limit):

* :data:`MAX_BYTES` -- 50 MiB per bundle file, per byte string and per NDJSON line (``too-large``);
* :data:`MAX_DEPTH` -- JSON nesting depth 100 (``too-deep``); real FHIR bundles are about 12 deep.
* :data:`MAX_RESOURCES` -- 25,000 resources per bundle or NDJSON patient (``too-many-resources``); a
  lifetime synthetic record (Synthea) holds about 1,000, a long cancer history a few thousand.

Validation with ``fhir.resources`` (R4B models; they implement FHIR 4.3, whose resources read R4
data) runs one resource at a time. It is the slow part (about 0.2 ms per resource), so it can be
limited to the resource types facts are read from (``validate="facts"``, the default) or switched
off (``"none"``), and :mod:`mdtflag.fastvalid` answers for resources shaped like one fhir.resources
has already accepted (about 0.015 ms each), with the same verdicts and messages. A resource that fails becomes an
``invalid-resource`` note and is removed from ``resources`` into ``invalid`` -- the facts it would give
become unknown, never absent -- except the Patient, which is kept (with the note) so that the patient is
never lost.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import orjson

from mdtflag.errors import DataQualityNote, InputError
from mdtflag.fhir.names import resource_name
from mdtflag.fhir.validation import validate_resource

__all__ = [
    "FACT_RESOURCE_TYPES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_RESOURCES",
    "LoadedBundle",
    "ValidateMode",
    "iter_inputs",
    "iter_ndjson_patients",
    "load_bundle",
]

#: Largest accepted bundle / byte string / NDJSON line.
MAX_BYTES = 50 * 1024 * 1024
#: Deepest accepted JSON nesting (objects and arrays; the top-level object is depth 1).
MAX_DEPTH = 100
#: Most resources accepted for one patient (read when a bundle is loaded: a host may change it).
MAX_RESOURCES = 25_000
#: Safety cap on the number of JSON containers walked for a caller's dict (shared sub-objects).
_MAX_NODES = MAX_BYTES // 2

#: Resource types facts are read from; ``validate="facts"`` validates only these.
FACT_RESOURCE_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "DiagnosticReport",
        "MedicationStatement",
        "MedicationAdministration",
        "MedicationRequest",
        "ResearchSubject",
        "ResearchStudy",
        "ServiceRequest",
        "Encounter",
        "FamilyMemberHistory",
        "Procedure",
    }
)

ValidateMode = Literal["facts", "all", "none"]
#: A FHIR resource (or any JSON object) as a plain dict.
JsonObject = dict[str, Any]
Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, JsonObject]

#: Elements that tie a resource to its patient (Bulk Data grouping), in order of preference.
_PATIENT_LINKS = ("subject", "patient", "individual")


@dataclass(frozen=True)
class LoadedBundle:
    """One patient's bundle as plain dicts.

    ``resources`` holds every entry resource, the Patient included, in bundle order;
    ``full_urls`` holds each one's ``Bundle.entry.fullUrl`` (``None`` when absent) at the same
    index, so that ``urn:uuid:`` references can be resolved. ``invalid`` holds the resources removed
    because they fail validation (each with an ``invalid-resource`` note): present, and not to be
    trusted, so the facts they would give are unknown rather than absent.
    """

    source: str
    patient: JsonObject
    resources: tuple[JsonObject, ...]
    notes: tuple[DataQualityNote, ...] = ()
    full_urls: tuple[str | None, ...] = ()
    invalid: tuple[JsonObject, ...] = ()

    @property
    def patient_id(self) -> str | None:
        pid = self.patient.get("id")
        return pid if isinstance(pid, str) else None


# --------------------------------------------------------------------------------------------
# reading and parsing


def _read_file(path: str | os.PathLike[str], source: str) -> bytes:
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            raise InputError(
                "too-large", source, f"file is {size} bytes, above the limit of {MAX_BYTES} bytes (50 MiB)"
            )
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("not-found", source, "no such file") from None
    except IsADirectoryError:
        raise InputError("not-found", source, "is a folder, not a file") from None
    except OSError as exc:
        raise InputError("not-found", source, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise InputError("too-large", source, f"file is above the limit of {MAX_BYTES} bytes (50 MiB)")
    return data


def _parse_checked(data: bytes, source: str) -> tuple[object, dict[int, list[str]]]:
    """``_parse`` and a check for duplicate object keys (orjson keeps the last silently).

    Returns the object and ``{id(object): [duplicated keys]}``; the duplicated keys are removed from
    their object, so that no value is read from them. The check costs a byte count: the number of
    ``":`` in the text is at least the number of keys written, so when it equals the number of keys
    parsed (and no key is spaced from its colon) no key was written twice. Otherwise the text is parsed
    again with the standard library, which sees every key."""
    obj, parsed = _parse_counted(data, source)
    if data.count(b'":') == parsed and _SPACED_KEY.search(data) is None:
        return obj, {}
    pruned: dict[int, list[str]] = {}

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) != len(pairs):
            seen: set[str] = set()
            dup = sorted({k for k, _ in pairs if k in seen or seen.add(k)})  # type: ignore[func-returns-value]
            for k in dup:
                del d[k]
            pruned[id(d)] = dup
        return d

    text = data[3:] if data[:3] == b"\xef\xbb\xbf" else data
    again = json.loads(text, object_pairs_hook=pairs_hook)
    return (again, pruned) if pruned else (obj, {})


_SPACED_KEY = re.compile(rb'"[ \t\r\n]+:')


def _duplicate_notes(
    resources: list[JsonObject], urls: list[str | None], pruned: dict[int, list[str]]
) -> list[DataQualityNote]:
    """A note per resource that held an object with a key written twice (the key's values are dropped)."""
    notes = []
    for res, url in zip(resources, urls):
        stack: list[tuple[object, str]] = [(res, str(res.get("resourceType")))]
        while stack:
            x, path = stack.pop()
            if type(x) is dict:
                keys = pruned.get(id(x))
                if keys:
                    name = resource_name(res, url)
                    notes.append(
                        DataQualityNote(
                            "duplicate-key",
                            f"{name}: {path} holds the key {', '.join(keys)} more than once; no value of it is read",
                            name,
                            f"{path}.{keys[0]}",
                        )
                    )
                stack.extend((v, f"{path}.{k}") for k, v in x.items() if type(v) is dict or type(v) is list)
            elif type(x) is list:
                stack.extend((v, f"{path}[{j}]") for j, v in enumerate(x) if type(v) is dict or type(v) is list)
    return notes


def _parse(data: bytes, source: str, line: int | None = None) -> object:
    """orjson-parse ``data``; every failure is an ``InputError`` naming ``source`` (and ``line``)."""
    return _parse_counted(data, source, line)[0]


def _parse_counted(data: bytes, source: str, line: int | None = None) -> tuple[object, int]:
    """``_parse`` and the number of object keys parsed."""
    if len(data) > MAX_BYTES:
        raise InputError(
            "too-large", source, f"input is {len(data)} bytes, above the limit of {MAX_BYTES} bytes (50 MiB)", line
        )
    if data[:3] == b"\xef\xbb\xbf":  # a UTF-8 byte-order mark is legal but orjson rejects it
        data = data[3:]
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(data, exc, source, line) from None
    return obj, _check_depth(obj, source, line)


def _decode_error(data: bytes, exc: orjson.JSONDecodeError, source: str, line: int | None) -> InputError:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as uexc:
        if not (uexc.reason == "unexpected end of data" and uexc.end == len(data)):
            return InputError("not-utf8", source, f"not UTF-8 text (invalid byte at offset {uexc.start})", line)
        # cut in the middle of a multi-byte character: a truncated file, reported as such
    if "recursion" in exc.msg or "depth limit" in exc.msg:  # orjson before and after 3.9
        return InputError("too-deep", source, f"JSON nesting deeper than the limit of {MAX_DEPTH} levels", line)
    where = line if line is not None else (exc.lineno or None)
    detail = exc.msg
    if not data.strip():
        detail = "empty input"
    elif "end of data" in exc.msg or "EOF" in exc.msg.upper():
        detail = f"truncated JSON ({exc.msg})"
    return InputError("not-json", source, f"not valid JSON: {detail}", where)


def _check_depth(obj: object, source: str, line: int | None = None) -> int:
    """Refuse JSON nested deeper than ``MAX_DEPTH`` (level-by-level walk, no recursion); returns the
    number of object keys."""
    level = [obj] if type(obj) is dict or type(obj) is list else []
    depth = 0
    seen = 0
    keys = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise InputError("too-deep", source, f"JSON nesting deeper than the limit of {MAX_DEPTH} levels", line)
        seen += len(level)
        if seen > _MAX_NODES:
            raise InputError("too-large", source, f"more than {_MAX_NODES} JSON objects/arrays", line)
        keys += sum([len(x) for x in level if type(x) is dict])
        level = [v for x in level for v in (x.values() if type(x) is dict else x) if type(v) is dict or type(v) is list]
    return keys


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        rt = obj.get("resourceType")
        if isinstance(rt, str) and rt:
            return f"a single {rt} resource"
        return "a JSON object without resourceType"
    if isinstance(obj, list):
        return "a JSON array"
    return f"a JSON {type(obj).__name__}" if obj is not None else "JSON null"


# --------------------------------------------------------------------------------------------
# bundle -> LoadedBundle


def _collect_entries(
    bundle: JsonObject, source: str
) -> tuple[list[JsonObject], list[str | None], list[DataQualityNote]]:
    entries = bundle.get("entry")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise InputError("not-bundle", source, "malformed Bundle: Bundle.entry is not an array")
    if len(entries) > MAX_RESOURCES:  # refused before any entry is read
        raise InputError(
            "too-many-resources",
            source,
            f"{len(entries)} entries, above the limit of {MAX_RESOURCES} resources per patient",
        )
    resources: list[JsonObject] = []
    urls: list[str | None] = []
    notes: list[DataQualityNote] = []
    # a Bundle inside the bundle (a message Bundle carrying a collection, a collection of collections)
    # is unwrapped: its entries are read as if they were the outer bundle's
    todo: list[tuple[str, list[Any]]] = [("Bundle.entry", entries)]
    while todo:
        path, items = todo.pop(0)
        for i, entry in enumerate(items):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict):
                what = "is not an object" if not isinstance(entry, dict) else "has no resource object"
                notes.append(DataQualityNote("invalid-entry", f"{path}[{i}] {what}; ignored", None, f"{path}[{i}]"))
                continue
            rt = res.get("resourceType")
            if not isinstance(rt, str) or not rt:
                notes.append(
                    DataQualityNote(
                        "invalid-entry",
                        f"{path}[{i}].resource has no resourceType; ignored",
                        None,
                        f"{path}[{i}].resource",
                    )
                )
                continue
            if rt == "Bundle":
                inner = res.get("entry")
                if isinstance(inner, list):
                    todo.append((f"{path}[{i}].resource.entry", inner))
                continue
            url = entry.get("fullUrl")
            resources.append(res)
            urls.append(url if isinstance(url, str) else None)
    return resources, urls, notes


def _finish(
    resources: list[JsonObject], urls: list[str | None], notes: list[DataQualityNote], source: str, validate: str
) -> LoadedBundle:
    if len(resources) > MAX_RESOURCES:
        raise InputError(
            "too-many-resources", source, f"{len(resources)} resources, above the limit of {MAX_RESOURCES} per patient"
        )
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    if not patients:
        raise InputError("no-patient", source, "the bundle holds no Patient resource")
    if len(patients) > 1:
        ids = ", ".join(resource_name(p) for p in patients[:5])
        raise InputError(
            "several-patients",
            source,
            f"the bundle holds {len(patients)} Patient resources ({ids}); exactly one is required",
        )
    patient = patients[0]
    invalid: list[JsonObject] = []
    if validate != "none":
        kept_res: list[JsonObject] = []
        kept_urls: list[str | None] = []
        for res, url in zip(resources, urls):
            if validate == "all" or res["resourceType"] in FACT_RESOURCE_TYPES:
                note = validate_resource(res, url)
                if note is not None:
                    notes.append(note)
                    if res is not patient and note.code == "invalid-resource":
                        invalid.append(res)
                        continue
            kept_res.append(res)
            kept_urls.append(url)
        resources, urls = kept_res, kept_urls
    notes.sort(key=lambda n: (n.resource or "", n.element or "", n.code, n.message))  # not in entry order
    return LoadedBundle(
        source=source,
        patient=patient,
        resources=tuple(resources),
        notes=tuple(notes),
        full_urls=tuple(urls),
        invalid=tuple(invalid),
    )


def _check_mode(validate: str) -> None:
    if validate not in ("facts", "all", "none"):
        raise ValueError(f"validate must be 'facts', 'all' or 'none', not {validate!r}")


def _from_object(obj: object, source: str, validate: str, pruned: dict[int, list[str]] | None = None) -> LoadedBundle:
    if not isinstance(obj, dict) or obj.get("resourceType") != "Bundle":
        raise InputError("not-bundle", source, f"expected a FHIR Bundle, found {_describe(obj)}")
    resources, urls, notes = _collect_entries(obj, source)
    if pruned:
        notes.extend(_duplicate_notes(resources, urls, pruned))
    return _finish(resources, urls, notes, source, validate)


def load_bundle(source: Source, *, validate: ValidateMode = "facts", name: str | None = None) -> LoadedBundle:
    """Read one patient bundle from a path, bytes or a parsed dict.

    A dict must hold plain JSON types (dict, list, str, int, float, bool, None), as produced by
    a JSON parser; it is used as is, not copied.

    Raises :class:`InputError` (and nothing else) for input that cannot be read as one patient:
    ``not-found``, ``not-json``, ``not-utf8``, ``not-bundle``, ``no-patient``, ``several-patients``,
    ``too-large``, ``too-deep``. ``name`` overrides the source name used in errors and notes
    (default: the path as given, ``<bytes>`` or ``<dict>``).
    """
    _check_mode(validate)
    if isinstance(source, dict):
        src = name or "<dict>"
        _check_depth(source, src)
        return _from_object(source, src, validate)
    if isinstance(source, (bytes, bytearray, memoryview)):
        src = name or "<bytes>"
        obj, pruned = _parse_checked(bytes(source), src)
        return _from_object(obj, src, validate, pruned)
    if isinstance(source, (str, os.PathLike)):
        src = name or os.fspath(source)
        obj, pruned = _parse_checked(_read_file(source, src), src)
        return _from_object(obj, src, validate, pruned)
    raise TypeError(f"load_bundle() takes a path, bytes or a dict, not {type(source).__name__}")


# --------------------------------------------------------------------------------------------
# FHIR Bulk Data (NDJSON)


def _patient_key(reference: object) -> str | None:
    """``"Patient/123"`` for a reference to a Patient (relative or absolute), else ``None``."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return f"Patient/{parts[-1]}"
    return None


def collect_references(obj: object, out: set[str]) -> None:
    """Add every ``Type/id`` reference found anywhere in ``obj`` (iterative walk)."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if type(x) is dict:
            ref = x.get("reference")
            if type(ref) is str:
                parts = ref.split("/_history/")[0].rstrip("/").split("/")
                if len(parts) >= 2:
                    out.add(f"{parts[-2]}/{parts[-1]}")
            stack.extend(v for v in x.values() if type(v) is dict or type(v) is list)
        elif type(x) is list:
            stack.extend(v for v in x if type(v) is dict or type(v) is list)


def iter_ndjson_patients(
    paths: Iterable[str | os.PathLike[str]], *, validate: ValidateMode = "facts"
) -> Iterator[LoadedBundle | InputError]:
    """Group a FHIR Bulk Data export (one NDJSON file per resource type) into patients.

    A resource belongs to the patient its ``subject`` / ``patient`` / ``individual`` refers to
    (a Patient to itself); a line holding a whole Bundle is read as one patient bundle
    (``source`` ``"<file>:<line>"``). Resources that belong to no patient (Medication, ResearchStudy,
    Organization, ...) are added to every patient whose resources refer to them. Yields one
    ``LoadedBundle`` per patient (in order of first appearance) whose ``source`` is
    ``"<file>#Patient/<id>"``; a bad line is yielded as an ``InputError`` with its file and line
    number and the other lines go on. Resources referring to a patient absent from the export are
    yielded as one ``no-patient`` error for that patient. The export is held in memory.
    """
    _check_mode(validate)
    groups: dict[str, list[JsonObject]] = {}
    group_file: dict[str, str] = {}
    shared: dict[str, JsonObject] = {}
    for path in paths:
        fname = os.fspath(path)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the with-block below; open errors are reported apart
        except OSError as exc:
            yield InputError("not-found", fname, f"cannot be read: {exc.strerror or exc}")
            continue
        with fh:
            lineno = 0
            while True:
                try:
                    raw = fh.readline(MAX_BYTES + 2)
                except OSError as exc:
                    yield InputError("not-found", fname, f"read failed: {exc.strerror or exc}", lineno + 1)
                    break
                if not raw:
                    break
                lineno += 1
                if len(raw) > MAX_BYTES + 1:
                    yield InputError(
                        "too-large", fname, f"line is longer than the limit of {MAX_BYTES} bytes (50 MiB)", lineno
                    )
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                        raw = fh.readline(MAX_BYTES)
                    continue
                if not raw.strip():
                    continue
                try:
                    res = _parse(raw, fname, lineno)
                except InputError as err:
                    yield err
                    continue
                rt = res.get("resourceType") if isinstance(res, dict) else None
                if not isinstance(res, dict) or not isinstance(rt, str) or not rt:
                    yield InputError(
                        "not-bundle", fname, f"expected one FHIR resource per line, found {_describe(res)}", lineno
                    )
                    continue
                if rt == "Bundle":  # one patient bundle per line
                    try:
                        yield _from_object(res, f"{fname}:{lineno}", validate)
                    except InputError as err:
                        err.line = lineno
                        err.source = fname
                        yield err
                    continue
                if rt == "Patient":
                    pid = res.get("id")
                    key = f"Patient/{pid}" if isinstance(pid, str) and pid else None
                    if key is None:
                        yield InputError("no-patient", fname, "Patient resource without an id", lineno)
                        continue
                else:
                    key = next((k for k in (_patient_key(res.get(f)) for f in _PATIENT_LINKS) if k), None)
                if key is None:
                    rid = res.get("id")
                    if isinstance(rid, str):
                        shared[f"{rt}/{rid}"] = res
                    continue
                groups.setdefault(key, []).append(res)
                if rt == "Patient" or key not in group_file:
                    group_file[key] = fname
    for key, members in groups.items():
        source = f"{group_file[key]}#{key}"
        if not any(r["resourceType"] == "Patient" for r in members):
            yield InputError(
                "no-patient", source, f"{len(members)} resources refer to {key}, which is not in the export"
            )
            continue
        refs: set[str] = set()
        collect_references(members, refs)
        extra = [shared[r] for r in sorted(refs) if r in shared]
        resources = members + extra
        try:
            yield _finish(resources, [None] * len(resources), [], source, validate)
        except InputError as err:
            yield err


def iter_inputs(
    path: str | os.PathLike[str], *, validate: ValidateMode = "facts"
) -> Iterator[LoadedBundle | InputError]:
    """Every patient in a file or a folder; never raises for bad input.

    A ``.ndjson`` file is a Bulk Data export; any other file is one JSON bundle. In a folder, all
    ``*.json`` and ``*.ndjson`` files are read in name order (not recursively); the NDJSON files
    together form one export, read at the position of the first of them.
    """
    _check_mode(validate)
    p = Path(path)
    if p.is_dir():
        files = sorted(
            (f for f in p.iterdir() if f.is_file() and f.suffix.lower() in (".json", ".ndjson")), key=lambda f: f.name
        )
        ndjson = [f for f in files if f.suffix.lower() == ".ndjson"]
        for f in files:
            if f.suffix.lower() == ".ndjson":
                if f is ndjson[0]:
                    yield from iter_ndjson_patients(ndjson, validate=validate)
                continue
            yield _load_or_error(f, validate)
    elif p.is_file() and p.suffix.lower() == ".ndjson":
        yield from iter_ndjson_patients([p], validate=validate)
    elif p.exists():
        yield _load_or_error(p, validate)
    else:
        yield InputError("not-found", os.fspath(path), "no such file or folder")


def _load_or_error(path: Path, validate: ValidateMode) -> LoadedBundle | InputError:
    try:
        return load_bundle(path, validate=validate)
    except InputError as err:
        return err
