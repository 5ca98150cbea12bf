"""The tracking components, moved to :mod:`flconfig.tracking` (senders and receivers);
this module re-exports them under their old paths, which configs may name, for one
release."""

from ..tracking.receivers import AnalyticsReceiver
from ..tracking.receivers.jsonl import JsonLinesReceiver
from ..tracking.receivers.mlflow import MLflowReceiver
from ..tracking.receivers.tensorboard import TBAnalyticsReceiver
from ..tracking.senders import ANALYTICS_EVENT, AnalyticsSender, ConvertToFedEvent, TBWriter

__all__ = [
    "ANALYTICS_EVENT",
    "AnalyticsReceiver",
    "AnalyticsSender",
    "ConvertToFedEvent",
    "JsonLinesReceiver",
    "MLflowReceiver",
    "TBAnalyticsReceiver",
    "TBWriter",
]
