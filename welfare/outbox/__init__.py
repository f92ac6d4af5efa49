"""The outbox: every outbound message is a durable row before it goes anywhere.

`enqueue` (welfare/outbox/queue.py) is the one way to add a row; `can_receive`
(welfare/outbox/reach.py) is the one rule for whether a contact may be sent a channel.
"""

from welfare.outbox.queue import enqueue
from welfare.outbox.reach import can_receive, refusal

__all__ = ["can_receive", "enqueue", "refusal"]
