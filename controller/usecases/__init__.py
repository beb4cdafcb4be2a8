"""What a user can do, once, for every front end (docs/architecture.md).

The API routes (controller/api/routes) and the panel routes (controller/web) parse their
input, call the same use-case function and shape its answer; the function takes the
caller and checks permission and area scope itself (reads included), so the two front
ends cannot drift apart. The services underneath know no caller conventions.
"""
