"""The double-pendulum sequence family (docs/domain.md, section 2).

Simulations (:mod:`.physics`, :mod:`.dataset`) are streamed from Parquet into windows that never
cross two simulations (:mod:`.windows`) to train a stacked LSTM / GRU / RNN (:mod:`.model`,
:mod:`.train`), evaluated with chaos-aware metrics read in Lyapunov times (:mod:`.metrics`,
:mod:`.lyapunov`).
"""
