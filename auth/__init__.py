"""Identity: OIDC login, server-side sessions, the route gate, network rules and API tokens."""
