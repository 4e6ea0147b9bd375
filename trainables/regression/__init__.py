"""The residual regression MLP family (docs/domain.md, section 3): columns of a Parquet table to
other columns, with robust losses (:mod:`.losses`), normalisation inside the model
(:mod:`.model`), the demo dataset and tables (:mod:`.data`), HDF5 rollouts (:mod:`.hdf5`)."""
