"""CAP 1.2 input, parsing side (docs/cap.md): the OASIS specification's example alerts parse
into the right fields; malformed XML, XXE and billion-laughs payloads and schema violations
are refused with a clear Vietnamese message; the urgency/severity -> priority table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.core.errors import UserError
from controller.core.i18n import t
from controller.services.cap.parse import parse_alert
from controller.services.cap.service import pick_info, priority_for, spoken_text
from protocol.messages import Priority

DATA = Path(__file__).parents[1] / "data" / "cap"


def refused(raw: bytes) -> tuple[UserError, str]:
    with pytest.raises(UserError) as info:
        parse_alert(raw)
    return info.value, t(info.value.key, "vi", **info.value.params)


def vn_alert(**override: str) -> bytes:
    fields = {"identifier": "VN-KTTV-2026-0001", "status": "Actual", "msgType": "Alert",
              "scope": "Public", "urgency": "Immediate", "severity": "Extreme"} | override
    status = f"<status>{fields['status']}</status>" if fields["status"] else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{fields['identifier']}</identifier>
  <sender>canhbao@kttv.gov.vn</sender>
  <sent>2026-11-26T08:00:00+07:00</sent>
  {status}
  <msgType>{fields['msgType']}</msgType>
  <scope>{fields['scope']}</scope>
  <info>
    <language>vi-VN</language>
    <category>Met</category>
    <event>Lũ quét</event>
    <urgency>{fields['urgency']}</urgency>
    <severity>{fields['severity']}</severity>
    <certainty>Observed</certainty>
    <headline>Cảnh báo lũ quét trên sông Phó Đáy</headline>
    <instruction>Người dân di chuyển lên vùng cao ngay.</instruction>
    <area><areaDesc>Xã Hợp Hòa, huyện Tam Dương</areaDesc></area>
  </info>
</alert>""".encode()


def test_the_four_specification_examples_parse() -> None:
    a1 = parse_alert((DATA / "a1_homeland_security.xml").read_bytes())
    assert (a1.identifier, a1.sender, a1.status, a1.msg_type, a1.scope) == (
        "43b080713727", "hsas@dhs.gov", "Actual", "Alert", "Public")
    assert a1.sent_at == datetime(2003, 4, 2, 19, 39, 1, tzinfo=UTC)
    (info,) = a1.infos
    assert (info.language, info.categories, info.urgency, info.severity, info.certainty) == (
        "en-US", ["Security"], "Immediate", "Severe", "Likely")
    assert info.headline == "Homeland Security Sets Code ORANGE"
    assert info.instruction and info.instruction.startswith("A High Condition is declared")
    assert [a.desc for a in info.areas] == ["U.S. nationwide and interests worldwide"]

    a2 = parse_alert((DATA / "a2_thunderstorm.xml").read_bytes())
    (info,) = a2.infos
    assert info.event == "SEVERE THUNDERSTORM" and info.certainty == "Observed"
    assert info.expires == datetime(2003, 6, 17, 23, 0, tzinfo=UTC)
    (area,) = info.areas
    assert area.polygons == [[(38.47, -120.14), (38.34, -119.95), (38.52, -119.74), (38.62, -119.89),
                              (38.47, -120.14)]]
    assert area.geocodes == [("SAME", "006109"), ("SAME", "006009"), ("SAME", "006003")]

    a3 = parse_alert((DATA / "a3_earthquake_update.xml").read_bytes())
    assert a3.msg_type == "Update"
    assert [(r.sender, r.identifier, r.sent) for r in a3.references] == [
        ("trinet@caltech.edu", "TRI13970876.1", "2003-06-11T20:30:00-07:00")]
    assert a3.infos[0].areas[0].circles == [(32.9525, -115.5527, 0.0)]
    assert (a3.infos[0].urgency, a3.infos[0].severity) == ("Past", "Minor")

    a4 = parse_alert((DATA / "a4_amber.xml").read_bytes())
    assert a4.source == "SW"
    assert [i.language for i in a4.infos] == ["en-US", "es-US"]
    assert a4.infos[1].headline == "Alerta Amber en el condado de Los Ángeles"
    info, voice = pick_info(a4, "vi-north")  # no Vietnamese: the English one, English voice
    assert info is a4.infos[0] and voice == "en-us"


def test_vietnamese_alert_fields_and_spoken_text() -> None:
    alert = parse_alert(vn_alert())
    info, voice = pick_info(alert, "vi-north")
    assert voice == "vi-north" and info is not None
    assert spoken_text(info) == "Cảnh báo lũ quét trên sông Phó Đáy. Người dân di chuyển lên vùng cao ngay."
    assert alert.sent == "2026-11-26T08:00:00+07:00"  # as written: references quote it


def test_malformed_xml_is_400_in_vietnamese() -> None:
    err, msg = refused(b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</alert>")
    assert err.status == 400 and err.key == "cap.malformed"
    assert msg.startswith("Nội dung không phải XML hợp lệ (dòng 1")
    assert refused(b"not xml at all")[0].status == 400


def test_external_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-42")
    for target in (secret.as_uri(), "file:///etc/passwd"):
        payload = f"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "{target}">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>""".encode()
        err, msg = refused(payload)
        assert err.status == 400 and err.key == "cap.unsafe_xml"
        assert "DTD" in msg and "TOP-SECRET" not in msg and "root:" not in msg
        assert "TOP-SECRET" not in repr(err.params) and "root:" not in repr(err.params)


def test_billion_laughs_is_refused() -> None:
    lol = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    payload = f"""<?xml version="1.0"?><!DOCTYPE alert [{lol}]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>""".encode()
    err, _ = refused(payload)
    assert err.status == 400 and err.key == "cap.unsafe_xml"


def test_schema_violations_name_the_problem() -> None:
    err, msg = refused(vn_alert(status=""))
    assert err.status == 422 and err.key == "cap.schema"
    assert "msgType" in msg and "status" in msg  # "msgType: not expected. Expected is ( status )"
    assert "urn:oasis" not in msg

    err, msg = refused(vn_alert(severity="Catastrophic"))
    assert err.status == 422 and "severity" in msg and "Catastrophic" in msg

    err, msg = refused(vn_alert(msgType="Replace"))
    assert err.status == 422 and "msgType" in msg

    # Not CAP 1.2 (a CAP 1.1 namespace): said so, not a schema dump.
    err, _ = refused(vn_alert().replace(b"cap:1.2", b"cap:1.1"))
    assert (err.status, err.key) == (422, "cap.not_cap12")


def test_bad_geometry_and_references_are_422() -> None:
    bad_poly = vn_alert().replace(
        "<areaDesc>Xã Hợp Hòa, huyện Tam Dương</areaDesc>".encode(),
        "<areaDesc>Xã Hợp Hòa</areaDesc><polygon>21.3,105.5 21.4,105.6</polygon>".encode())
    assert refused(bad_poly)[0].key == "cap.bad_polygon"
    bad_circle = vn_alert().replace(
        "<areaDesc>Xã Hợp Hòa, huyện Tam Dương</areaDesc>".encode(),
        "<areaDesc>Xã Hợp Hòa</areaDesc><circle>21.3,105.5</circle>".encode())
    assert refused(bad_circle)[0].key == "cap.bad_circle"
    bad_refs = vn_alert(msgType="Update").replace(
        b"<scope>Public</scope>", b"<scope>Public</scope><references>only-an-id</references>")
    assert refused(bad_refs)[0].key == "cap.bad_references"


@pytest.mark.parametrize(("urgency", "severity", "certainty", "expected"), [
    ("Immediate", "Extreme", "Observed", Priority.EMERGENCY),
    ("Expected", "Severe", "Likely", Priority.EMERGENCY),
    ("Future", "Severe", "Likely", Priority.PRIORITY),
    ("Immediate", "Moderate", "Observed", Priority.PRIORITY),
    ("Immediate", "Minor", "Observed", Priority.NORMAL),
    ("Immediate", "Unknown", "Observed", Priority.NORMAL),
    ("Past", "Extreme", "Observed", Priority.NORMAL),
    ("Immediate", "Extreme", "Unlikely", Priority.NORMAL),
])  # fmt: skip
def test_priority_table(urgency: str, severity: str, certainty: str, expected: Priority) -> None:
    assert priority_for(urgency, severity, certainty) is expected


def test_english_alert_is_read_by_an_english_voice(tmp_path: Path) -> None:
    """en-US alerts (the spec's examples) get espeak-ng's English voice, text as written."""
    from controller.core.config import Settings
    from controller.services.tts import TtsService

    a2 = parse_alert((DATA / "a2_thunderstorm.xml").read_bytes())
    info, voice = pick_info(a2, "vi-north")
    assert info is not None and voice == "en-us"
    text = spoken_text(info)
    assert text == "SEVERE THUNDERSTORM WARNING. TAKE COVER IN A SUBSTANTIAL SHELTER UNTIL THE STORM PASSES."
    speech = TtsService.from_settings(Settings(data_dir=tmp_path)).synthesize(text, voice, 1.0, tmp_path)
    assert speech.engine == "espeak-ng" and speech.spoken_text == text  # no Vietnamese rewriting
    assert speech.wav.stat().st_size > 48000  # well over a second of 48 kHz speech
