"""KuaiRec 2.0 watch-ratio prediction and video recommendation, as a Dagster asset graph.

Sub-packages: ``dataset`` (files, loader, download, synthetic twin), ``features`` (polars transforms),
``models`` (one module per model behind one contract), ``evaluation`` (metrics, baselines) hold the logic and
know nothing of Dagster; ``orchestration`` only wires them into assets.
"""

__version__ = "0.1.0"
