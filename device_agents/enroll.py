"""`communecast agent enroll`: trade a one-time code for this station's configuration.

The controller answers POST /api/v1/enroll with the station's own broker account, the
controller's signing public key(s) and the rest of the agent config. They are written
to `<data dir>/config.json`, owner-only (file 0600 in a 0700 directory): the file holds
the station's broker password. When the controller runs the stations' MQTT over TLS the
answer also carries the broker's CA certificate, stored as `<data dir>/broker-ca.pem`
(0644: it is public) and named in the config, so the agent verifies the broker it talks to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from device_agents.common.config import AgentConfig
from device_agents.common.tls import CA_FILE_NAME

CONFIG_NAME = "config.json"

LOCAL_MESSAGES: dict[str, tuple[str, str]] = {
    "unreachable": (
        "Không kết nối được tới máy chủ điều khiển {url}: {error}. Kiểm tra mạng và địa chỉ.",
        "Cannot reach the controller at {url}: {error}. Check the network and the address.",
    ),
    "bad_answer": (
        "Máy chủ điều khiển trả lời không hợp lệ (mã {status}).",
        "The controller gave an unexpected answer (status {status}).",
    ),
    "bad_ca": (
        "Máy chủ điều khiển gửi chứng chỉ CA của máy chủ MQTT không đọc được: {error}.",
        "The controller sent an unreadable CA certificate for the MQTT broker: {error}.",
    ),
    "no_fingerprint": (
        "Thiếu dấu vân tay khóa của máy chủ điều khiển (--key-fingerprint, có trong lệnh/mã QR "
        "kích hoạt). Không có nó, ai chặn được kết nối có thể giả mạo khóa ký và chạy mã trên trạm. "
        "Chỉ khi chắc chắn đường truyền an toàn mới dùng --trust-on-first-use.",
        "The controller's key fingerprint is missing (--key-fingerprint, part of the enrollment "
        "command / QR code). Without it, whoever intercepts the connection could substitute the "
        "signing key and run code on this station. Use --trust-on-first-use only on a link you trust.",
    ),
    "key_mismatch": (
        "Khóa ký của máy chủ điều khiển không khớp dấu vân tay trong mã kích hoạt "
        "(mong đợi {expected}, nhận {got}): có thể có kẻ đứng giữa (man in the middle). "
        "Không lưu gì. Dùng https:// hoặc kiểm tra mạng.",
        "The controller's signing key does not match the fingerprint in the enrollment code "
        "(expected {expected}, got {got}): possibly a man in the middle. Nothing was stored. "
        "Use https:// or check the network.",
    ),
    "saved": (
        "Đã kích hoạt trạm {uid} ({name}). Cấu hình lưu tại {path}.\n"
        "Chạy trạm: communecast agent run --data-dir {dir}",
        "Station {uid} ({name}) is enrolled. Configuration saved in {path}.\n"
        "Run it: communecast agent run --data-dir {dir}",
    ),
}


def local_text(key: str, lang: str, **params: object) -> str:
    vi, en = LOCAL_MESSAGES[key]
    return (en if lang == "en" else vi).format(**params)


class EnrollError(Exception):
    """Enrollment refused or impossible; the message is for the technician."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Enrolled:
    config: AgentConfig
    path: Path
    name: str


def config_path(data_dir: Path) -> Path:
    return data_dir / CONFIG_NAME


def secure_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def check_keys(keys: object, expected: str, lang: str) -> None:
    """Every key handed to us must be the one the code's fingerprint names (an extra key from
    a man in the middle would be trusted as much as the real one)."""
    from protocol.signing import key_fingerprint, public_key_from_text

    got = []
    for text in keys if isinstance(keys, list) else []:
        try:
            got.append(key_fingerprint(public_key_from_text(str(text))))
        except ValueError:
            got.append("?")
    if not got or any(g != expected for g in got):
        raise EnrollError(local_text("key_mismatch", lang, expected=expected, got=", ".join(got) or "-"),
                          "enroll.key_mismatch")


async def enroll(controller_url: str, code: str, data_dir: Path, *, lang: str = "vi",
                 timeout: float = 30.0, key_fingerprint: str | None = None,
                 trust_on_first_use: bool = False) -> Enrolled:
    """Redeem the code; with `key_fingerprint` (from the code's command / QR) the controller's
    key must match it, before anything is stored. Without one, only `trust_on_first_use`."""
    from protocol.signing import normalize_fingerprint

    expected = normalize_fingerprint(key_fingerprint) if key_fingerprint else None
    if expected is None and not trust_on_first_use:
        raise EnrollError(local_text("no_fingerprint", lang), "enroll.no_fingerprint")
    url = controller_url.rstrip("/")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
            r = await http.post("/api/v1/enroll", json={"code": code},
                                headers={"Accept-Language": lang})
    except httpx.HTTPError as exc:
        raise EnrollError(local_text("unreachable", lang, url=url, error=exc.__class__.__name__)) from exc
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code != 200 or not isinstance(body, dict):
        if isinstance(body, dict) and "detail" in body and isinstance(body["detail"], str):
            raise EnrollError(body["detail"], body.get("code"))
        raise EnrollError(local_text("bad_answer", lang, status=r.status_code))
    agent = dict(body["agent_config"])
    if expected is not None:
        check_keys(agent.get("controller_public_keys"), expected, lang)
    data_dir = data_dir.resolve()
    secure_dir(data_dir)
    ca_pem = agent.pop("mqtt_ca_pem", None)
    if ca_pem:
        agent["mqtt_ca_file"] = str(store_ca(data_dir, str(ca_pem), lang))
    config = AgentConfig(**agent, data_dir=data_dir)
    path = config_path(data_dir)
    tmp = path.with_name(f".{CONFIG_NAME}.tmp")
    tmp.unlink(missing_ok=True)
    config.save(tmp)  # created 0600
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # a re-enroll replaces the old credentials in one step
    return Enrolled(config, path, str(body.get("device", {}).get("name", "")))


def store_ca(data_dir: Path, pem: str, lang: str) -> Path:
    """Check it is a certificate, then write it 0644 next to config.json (atomically)."""
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise EnrollError(local_text("bad_ca", lang, error=exc)) from exc
    if not certs:
        raise EnrollError(local_text("bad_ca", lang, error="no certificate"))
    path = data_dir / CA_FILE_NAME
    tmp = path.with_name(f".{CA_FILE_NAME}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def load(data_dir: Path) -> AgentConfig:
    """The enrolled config of a data dir (what `agent run --data-dir` uses)."""
    return AgentConfig.load(config_path(data_dir), data_dir=str(data_dir.resolve()))
