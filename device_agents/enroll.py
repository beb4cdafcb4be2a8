"""`communecast agent enroll`: trade a one-time code for this station's configuration.

The controller answers POST /api/v1/enroll with the station's own broker account, the
controller's signing public key(s) and the rest of the agent config. They are written
to `<data dir>/config.json`, owner-only (file 0600 in a 0700 directory): the file holds
the station's broker password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from device_agents.common.config import AgentConfig

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


async def enroll(controller_url: str, code: str, data_dir: Path, *, lang: str = "vi",
                 timeout: float = 30.0) -> Enrolled:
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
    data_dir = data_dir.resolve()
    secure_dir(data_dir)
    config = AgentConfig(**body["agent_config"], data_dir=data_dir)
    path = config_path(data_dir)
    tmp = path.with_name(f".{CONFIG_NAME}.tmp")
    tmp.unlink(missing_ok=True)
    config.save(tmp)  # created 0600
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # a re-enroll replaces the old credentials in one step
    return Enrolled(config, path, str(body.get("device", {}).get("name", "")))


def load(data_dir: Path) -> AgentConfig:
    """The enrolled config of a data dir (what `agent run --data-dir` uses)."""
    return AgentConfig.load(config_path(data_dir), data_dir=str(data_dir.resolve()))
