"""The paper's claims, by seam. Its overview, and every public name of these modules, is
:mod:`pcdeq.claims`; import from there.

* :mod:`.claim`: a row of the table, the verdicts, the thresholds;
* :mod:`.sources`: where the evidence comes from (a profile's records and weights);
* :mod:`.fixed_points`: a trained model's DEQ layers measured (limits, rates, invariants);
* :mod:`.from_models`: C1, C2, C7 from those measurements;
* :mod:`.from_records`: C3-C6 and C9 from the run records;
* :mod:`.multiscale`: C10, the Lipschitz multiscale DEQ's claim, from the multiscale runs;
* :mod:`.table`: the claims table and its one-line summary.
"""
