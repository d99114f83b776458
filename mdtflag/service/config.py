"""Service settings, passed from ``mdtflag serve`` to each worker process through the environment."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

__all__ = ["ENV_CONFIG", "ServiceConfig"]

#: Environment variable holding the settings as JSON (set by ``mdtflag serve`` for its workers).
ENV_CONFIG = "MDTFLAG_SERVICE_CONFIG"


@dataclass(frozen=True)
class ServiceConfig:
    rules: str | None = None
    profile: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    max_body: int = 10 * 1024 * 1024
    queue: int = 64
    insecure_no_auth: bool = False
    trust: str | None = None
    replay_dir: str | None = None
    system_actions: bool = False
    fetch_timeout_s: float = 10.0
    fetch_max_bytes: int = 20 * 1024 * 1024

    def to_env(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceConfig:
        raw = (environ if environ is not None else dict(os.environ)).get(ENV_CONFIG)
        if not raw:
            return cls()
        data = json.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
