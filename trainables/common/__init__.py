"""What several model families share: errors, the Parquet store, reporters."""
