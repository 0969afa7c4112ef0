"""Models behind one contract (:class:`kuairec_pipeline.models.base.Recommender`). No Dagster here."""
