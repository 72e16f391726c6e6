"""The uploader client: queue messages for a habitat_http gateway and upload them
in batches, never losing one and never retrying a rejection (issue 14)."""

from .backoff import Backoff
from .spool import MemoryQueue, MessageQueue, Queued, SpoolLocked, SQLiteSpool
from .uploader import Uploader, UploadStats, log_rejection, sentence_of

__all__ = [
    "Backoff",
    "MemoryQueue",
    "MessageQueue",
    "Queued",
    "SQLiteSpool",
    "SpoolLocked",
    "UploadStats",
    "Uploader",
    "log_rejection",
    "sentence_of",
]
