"""bulkops: asynchronous bulk exports (Shopify-style ``bulkOperationRunQuery``) for the
platform's multi-tenant GraphQL API. See README.md for the architecture."""

import os as _os

# numpy arrives through ADBC's DB-API module (it probes for polars/pandas); bulkops does no
# linear algebra, yet OpenBLAS starts a thread per core that spins after start-up and took
# ~2% of an export's CPU on 2 cores (perf). Must be set before numpy is first imported.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
