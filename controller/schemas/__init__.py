"""The typed HTTP contract: request and response models of every /api/v1 route, one module per
feature. Routes declare them with `response_model=` so /docs and /openapi.json show what each
operation returns, and FastAPI checks every reply against them (a drifting serializer fails loudly
in the tests instead of silently changing the wire shape).

Conventions: response models derive from `common.Out`; a model that a route builds from a row
has a `body(...)` class method giving the JSON dict (routes may add keys before returning it);
request models are plain pydantic models with `extra="forbid"`. The services import the request
models they take (so `services.broadcasts.BroadcastCreate` and the like still name them); the
schemas import no service at module level (services import schemas, never the other way round).
"""
