"""Batch data preparation (the Glue jobs): raw bank files -> canonical transactions -> features.

The per-partition work is plain pandas in ``transforms`` (it calls the Czech loader, the
validator and the feature kernel of the core library: no second parser, validator or feature
implementation). Two engines run it: ``spark`` (PySpark, the Glue jobs and ``--engine spark``)
and ``pandas_engine`` (one process, the default of the local demo). ``quality`` builds the
data-quality report; the Glue tables are kept by ``finsentry.lake`` (awswrangler). A mapped
source (a PostgreSQL table: ``jdbc``; the bank's own CSV/Parquet files: ``files``) is mapped and
validated by the pandas path's own ``mapping.map_table`` through ``mapped``.
"""
