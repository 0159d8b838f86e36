"""Local differential privacy for fleet metrics, so that devices and the cloud agree on every probability.

One module per seam: `catalogue` (the metrics and their categories), `mechanisms` (p and q, randomness and the
device-side encoders), `wire` (the report format and `encode_report`) and `estimators` (the cloud side). This
package re-exports each module's `__all__` (the httpx layout), so callers import from `service.common.ldp`
without knowing the split.
"""

from service.common.ldp import catalogue, estimators, mechanisms, wire
from service.common.ldp.catalogue import *  # noqa: F403
from service.common.ldp.estimators import *  # noqa: F403
from service.common.ldp.mechanisms import *  # noqa: F403
from service.common.ldp.wire import *  # noqa: F403

__all__: list[str] = []
__all__ += catalogue.__all__
__all__ += mechanisms.__all__
__all__ += wire.__all__
__all__ += estimators.__all__
