"""Lowering: how a model and its requests become work for the hardware. Mapping and capacity
(``mapping``), the :class:`~sim.serving.scheduler.Scheduler` protocol with fixed batches, batching
policies (``batching``) and decode-trace replay (``decode_trace``), per-layer work (``lowering``) and
decode-trace generation (``tracegen``)."""
