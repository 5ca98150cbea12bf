"""FLARE's ``create_analytic_dxo`` and ``send_analytic_dxo``: a record sent as an event.

The record takes flconfig's lossless path: ``send_analytic_dxo`` fires the event with
the record as flconfig's record batch, which ConvertToFedEvent forwards and every
receiver (TensorBoard, MLflow, JSON lines) reads; a bad value raises at the call.
"""

from __future__ import annotations

from typing import Any

from flconfig.tracking.flare_log import log_flare_record
from flconfig.tracking.senders import AnalyticsSender

from ..analytix import AnalyticsDataType
from ..dxo import DXO, DataKind
from ..fl_component import FLComponent
from ..fl_context import FLContext

#: The event a record is fired as unless told otherwise (FLARE's ANALYTIC_EVENT_TYPE).
ANALYTIC_EVENT_TYPE = "analytix_log_stats"
#: FLARE's keys of an analytic DXO's data and meta.
TRACK_KEY, TRACK_VALUE = "track_key", "track_value"
DATA_TYPE_KEY, KWARGS_KEY, WRITER_KEY = "analytics_data_type", "analytics_kwargs", "tracker_key"


def create_analytic_dxo(tag: str, value: Any, data_type: AnalyticsDataType, writer: Any = "TORCH_TB",
                        **kwargs: Any) -> DXO:
    """An ``ANALYTIC`` DXO holding one record (``global_step``, ``dataformats`` ... in kwargs)."""
    if not isinstance(tag, str):
        raise TypeError(f"expect tag to be an instance of str, but got {type(tag)}")
    if not isinstance(data_type, AnalyticsDataType):
        raise TypeError(f"expect data_type to be an instance of AnalyticsDataType, but got {type(data_type)}")
    dxo = DXO(DataKind.ANALYTIC, data={TRACK_KEY: tag, TRACK_VALUE: value})
    dxo.set_meta_prop(DATA_TYPE_KEY, data_type)
    dxo.set_meta_prop(KWARGS_KEY, dict(kwargs))
    dxo.set_meta_prop(WRITER_KEY, getattr(writer, "value", writer))
    return dxo


def send_analytic_dxo(comp: FLComponent, dxo: DXO, fl_ctx: FLContext, event_type: str = ANALYTIC_EVENT_TYPE,
                      fire_fed_event: bool = False) -> None:
    """Fire ``event_type`` (locally, or as a federated event) carrying the DXO's record."""

    if not isinstance(comp, FLComponent):
        raise TypeError(f"expect comp to be an instance of FLComponent, but got {type(comp)}")
    if not isinstance(dxo, DXO):
        raise TypeError(f"expect dxo to be an instance of DXO, but got {type(dxo)}")
    if not isinstance(fl_ctx, FLContext):
        raise TypeError(f"expect fl_ctx to be an instance of FLContext, but got {type(fl_ctx)}")
    if dxo.data_kind != DataKind.ANALYTIC or not isinstance(dxo.data, dict) or TRACK_KEY not in dxo.data:
        raise ValueError("expect an analytic DXO made by create_analytic_dxo")
    builder = AnalyticsSender(event_type=event_type)  # checks and shapes the record; never started
    log_flare_record(builder, dxo.data[TRACK_KEY], dxo.data.get(TRACK_VALUE),
                     dxo.get_meta_prop(DATA_TYPE_KEY), **dict(dxo.get_meta_prop(KWARGS_KEY) or {}))
    batch = builder.take_batch()
    site = fl_ctx.site
    if site is None:
        raise RuntimeError("send_analytic_dxo needs the FLContext of a running site")
    if fire_fed_event:
        site.fire_fed_event(event_type, batch)
    else:
        site.fire_event(event_type, batch)
