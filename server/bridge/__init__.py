"""The Bridge: the tenants' GraphQL API (Sanic + Strawberry), generated from the catalog."""
