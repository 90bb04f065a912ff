"""The service layer: Queuey's use cases (:class:`QueueService`) and what they are made of.

- ``queue_service``: the use cases, one method per API operation;
- ``rights``: who may do what to which queue;
- ``params`` and ``posts``: typed parsing of request parameters and of posted messages;
- ``claim_ids``: the opaque claim handles;
- ``waiting``: long polling; ``settle``: the settle window of multi-node stores;
- ``sweeper``: the background reclaiming of dead messages.
"""

from queuey.service.claim_ids import claim_id
from queuey.service.queue_service import Posted, QueueService
from queuey.service.settle import settle_window_ms, settled

__all__ = ["Posted", "QueueService", "claim_id", "settle_window_ms", "settled"]
