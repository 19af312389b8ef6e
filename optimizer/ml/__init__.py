"""The optimiser's models, as pure functions over numpy arrays and pandas frames.

Nothing here imports Django: ``optimizer.features`` builds the frames from the database,
``optimizer.registry`` stores what these functions return, and the jobs in
``optimizer.services`` apply it. One module per model type:

- ``conversion``: will a customer convert in the next window (propensity classifier)
- ``engagement``: will a customer open a notification in the next window
- ``send_time``: each customer's best local hour (Dirichlet-shrunk open histograms)
- ``affinity``: customer x merchant scores (time-decayed interactions, item-item neighbours, popularity prior)
- ``offer_response``: conversion probability by segment and offer value, and the shared ``expected_profit``

Every ``fit`` returns ``(artifact, metrics)``: the artifact is a plain dict of numpy arrays,
numbers, strings and scikit-learn estimators (so skops can store it without custom types), and
the metrics are computed on a time-based holdout the fit never saw.
"""
