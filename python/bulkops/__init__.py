"""bulkops: asynchronous bulk exports (Shopify-style ``bulkOperationRunQuery``) for the
platform's multi-tenant GraphQL API. See README.md for the architecture."""

__version__ = "0.1.0"
