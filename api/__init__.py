"""The REST API of ikev2d (docs/api.md): an aiohttp server in the daemon's event loop
(`api.server`), its OpenAPI contract (`api.openapi`), the event stream, metrics, and the
client `ikev2ctl` and `mobility/` share (`api.client`)."""
