"""Observation: what a run's results mean and how they are written. The run summary (``summary``:
token figures, utilisation, queueing, energy), energy, TCO and CO2e (``cost``), output files
(``writers``), progress display (``progress``), the Perfetto timeline (``timeline``) and the plots of
``memwall report`` (``report``). Latency definitions live with the request (:mod:`sim.requests.timing`)
and percentiles with the stats (:mod:`sim.stats.percentiles`), so every layer uses the same ones."""
