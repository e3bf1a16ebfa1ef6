"""Observation: what a run's results mean and how they are written. Latency figures and percentiles
(``metrics``), the run summary (``summary``), energy, TCO and CO2e (``cost``), output files
(``writers``), progress display (``progress``), the Perfetto timeline (``timeline``) and the plots of
``memwall report`` (``report``)."""
