"""The controller keys this station trusts, following rotations and revocations (protocol/keychain.py).

Seeded from the config's `controller_public_keys` (what enrollment handed over) and kept in the
station's store, so a restart remembers every rotation and revocation learnt from `cc/v1/keys`.
A new enrollment (other keys in the config) starts again from the config's keys; revocations
already learnt are kept unless the config names the key again (an explicit decision on the Pi).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from device_agents.common.store import AgentStore
from protocol.keychain import ChainOutcome, KeyChain, TrustedKeys
from protocol.signing import key_id, public_key_from_text

log = logging.getLogger(__name__)

STORE_KEY = "trusted_keys"
ANCHOR_KEY = "trusted_keys_anchor"
CHAIN_SHA_KEY = "keychain_sha256"


class StationTrust:
    """A `SignatureVerifier` for the gate and the updater, and the one place that learns the chain."""

    def __init__(self, config_keys: list[str], store: AgentStore | None) -> None:
        self._store = store
        anchor = ",".join(sorted(k.strip() for k in config_keys))
        saved = store.get(STORE_KEY) if store is not None else None
        if saved and store is not None and store.get(ANCHOR_KEY) == anchor:
            self.keys = TrustedKeys.from_json(saved)
        else:
            self.keys = TrustedKeys.from_public_keys(config_keys)
            if saved:  # re-enrolled: keep what was revoked, unless the new config trusts it again
                named = {key_id(public_key_from_text(k)) for k in config_keys}
                old = TrustedKeys.from_json(saved).revoked
                self.keys.revoked = {kid: at for kid, at in old.items() if kid not in named}
            if store is not None:
                store.put(ANCHOR_KEY, anchor)
                store.put(CHAIN_SHA_KEY, "")
                self._save()

    def verify(self, kid: str, payload: bytes, signature: str) -> None:
        self.keys.verify(kid, payload, signature, now=datetime.now(UTC))

    def apply_chain(self, payload: bytes) -> ChainOutcome | None:
        """Learn from a `cc/v1/keys` message; None when it is the very chain already applied
        (each reconnect delivers the retained copy again). ValueError if it is not a chain."""
        digest = hashlib.sha256(payload).hexdigest()
        if self._store is not None and self._store.get(CHAIN_SHA_KEY) == digest:
            return None
        try:
            chain = KeyChain.model_validate_json(payload)
        except ValidationError as exc:
            raise ValueError(f"not a key chain: {str(exc)[:200]}") from exc
        outcome = self.keys.apply(chain)
        if outcome.changed:
            log.warning("controller keys changed: learnt %s, revoked %s", outcome.learned, outcome.revoked)
            self._save()
        if self._store is not None:
            self._store.put(CHAIN_SHA_KEY, digest)
        return outcome

    def _save(self) -> None:
        if self._store is not None:
            self._store.put(STORE_KEY, self.keys.to_json())
