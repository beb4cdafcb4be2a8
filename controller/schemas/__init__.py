"""The typed HTTP contract: request and response models of every /api/v1 route, one module per
feature. Routes declare them with `response_model=` so /docs and /openapi.json show what each
operation returns, and FastAPI checks every reply against them (a drifting serializer fails loudly
in the tests instead of silently changing the wire shape)."""
