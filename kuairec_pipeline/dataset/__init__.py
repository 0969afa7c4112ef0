"""KuaiRec 2.0 itself: file schema, loading real files, download, and the synthetic twin. No Dagster here."""
