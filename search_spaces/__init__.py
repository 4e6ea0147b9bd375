"""The search spaces shipped with dynsweep: YAML data, installed as package data so that
``dynsweep examples`` lists them and ``dynsweep launch NAME`` finds them after a plain
``pip install`` (see ``search/examples_cmd.py``)."""
