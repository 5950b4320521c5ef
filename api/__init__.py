"""REST API of ikev2d; filled in by the API issue."""
