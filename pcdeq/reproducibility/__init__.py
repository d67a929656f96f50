"""The reproducibility check, by seam. Its overview, and every public name of these modules,
is :mod:`pcdeq.compare` (``python -m pcdeq.compare``); import from there.

* :mod:`.rules`: what is compared and how (the quantities, the difference of two values, the
  epoch keys compared exactly or as invariants, how values are written);
* :mod:`.tolerances`: the cross-machine tolerances, measured on the reference's seeds;
* :mod:`.record_check`: one record against its reference;
* :mod:`.verdict`: the records of two folders compared, the verdict as data
  (:class:`~.verdict.Comparison`);
* :mod:`.render`: the Markdown report, a function of the verdict;
* :mod:`.cli`: the command line.
"""
