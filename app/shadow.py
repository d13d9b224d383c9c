"""`suppliers diff`: how the files OrderHub wrote for a supplier in shadow mode differ from the
sample files the supplier gave, so a seller can go live knowing the supplier will read them.

It compares shape, not content (order numbers and dates always differ): for XML the root element
and namespace, the element paths and attribute names each side uses, and the values of code-like
fields (`...Code`, `unitCode`, `currencyID`, `type`, `version`), where a difference means the
supplier will read something else; for CSV the header. Each sample is compared with the newest
shadow file of the same kind (same root element, or CSV).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from app.documents.common import XmlRefused, parse_hardened

CODE_ATTRIBUTES = frozenset({"unitCode", "currencyID", "type", "version", "listID",
                             "schemeID", "operation", "deploymentMode"})
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass
class Shape:
    kind: str                                   # "xml {ns}Root" or "csv"
    paths: set[str] = field(default_factory=set)
    codes: dict[str, str] = field(default_factory=dict)   # path -> value of code-like fields
    header: tuple[str, ...] = ()


@dataclass
class Comparison:
    sample: str
    ours: str | None
    differences: list[str]


def shape_of(data: bytes, name: str) -> Shape:
    """The shape of one file (raises ValueError when it can be read as neither)."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name}: larger than {MAX_FILE_BYTES} bytes")
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        try:
            root = parse_hardened(data)
        except (XmlRefused, etree.XMLSyntaxError) as exc:
            raise ValueError(f"{name}: not readable XML ({exc})") from None
        shape = Shape(kind=f"xml {root.tag}")
        _walk(root, "", shape)
        return shape
    text = data.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    header = next(csv.reader(io.StringIO(first), delimiter=delimiter), [])
    return Shape(kind="csv", header=tuple(h.strip() for h in header))


def _walk(element: etree._Element, parent: str, shape: Shape) -> None:
    if not isinstance(element.tag, str):
        return  # comments, processing instructions
    path = f"{parent}/{etree.QName(element).localname}"
    shape.paths.add(path)
    for attribute, value in element.attrib.items():
        local = etree.QName(attribute).localname
        shape.paths.add(f"{path}/@{local}")
        if local in CODE_ATTRIBUTES:
            shape.codes.setdefault(f"{path}/@{local}", value)
    text = (element.text or "").strip()
    if etree.QName(element).localname.endswith("Code") and text and len(element) == 0:
        shape.codes.setdefault(path, text)
    for child in element:
        _walk(child, path, shape)


def compare(ours: Shape, sample: Shape) -> list[str]:
    """What differs between our file's shape and the sample's (empty: nothing)."""
    if ours.kind != sample.kind:
        return [f"different document: ours is {ours.kind}, the sample is {sample.kind}"]
    if ours.kind == "csv":
        if [h.lower() for h in ours.header] == [h.lower() for h in sample.header]:
            return []
        return [f"CSV header differs: ours {', '.join(ours.header)}; "
                f"the sample's {', '.join(sample.header)}"]
    lines = [f"only in the sample (we never write it): {path}"
             for path in sorted(sample.paths - ours.paths)]
    lines += [f"only in ours (the sample never has it): {path}"
              for path in sorted(ours.paths - sample.paths)]
    lines += [f"value differs at {path}: ours {ours.codes[path]!r}, the sample "
              f"{sample.codes[path]!r}" for path in sorted(ours.codes.keys() & sample.codes)
              if ours.codes[path] != sample.codes[path]]
    return lines


def diff_folders(ours: Path, samples: Path) -> list[Comparison]:
    """Compare each sample file with the newest of our files of the same kind."""
    mine: dict[str, tuple[str, Shape]] = {}
    files = sorted((p for p in ours.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime) if ours.is_dir() else []
    for path in files:
        try:
            shape = shape_of(path.read_bytes(), path.name)
        except ValueError:
            continue
        mine[shape.kind] = (path.name, shape)   # the newest wins
    results = []
    for sample in sorted(p for p in samples.iterdir() if p.is_file()):
        try:
            wanted = shape_of(sample.read_bytes(), sample.name)
        except ValueError as exc:
            results.append(Comparison(sample.name, None, [str(exc)]))
            continue
        match = mine.get(wanted.kind)
        if match is None:
            kinds = ", ".join(sorted(mine)) or "none yet"
            results.append(Comparison(sample.name, None, [
                f"we wrote no file of its kind ({wanted.kind}); ours: {kinds}"]))
            continue
        results.append(Comparison(sample.name, match[0], compare(match[1], wanted)))
    return results
