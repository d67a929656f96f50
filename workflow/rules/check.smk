# Reproducibility check: the profile's fresh run records against the committed reference
# records (results/<profile>), by pcdeq/compare.py. `snakemake --cores 1 check` trains what is
# missing, then compares; the report is logs/<profile>/check.md. The default tolerances are
# prediction bounds for a new draw from the reference's seed distribution (another machine; see
# pcdeq/compare.py); for a rerun on the same CPU machine,
# where every record must be bit-identical: python -m pcdeq.compare results/quick runs/quick --exact


rule check:
    """Compare the fresh runs with the reference records. Exit 1 (a difference beyond
    tolerance) or 2 (a missing, partial or not comparable record) fails the job: Snakemake then
    removes the report, the log keeps the summary and problems (also shown on stderr). The
    reference records are not inputs, on purpose: as inputs, Snakemake could "update" them from
    the fresh runs by the `reference_record` rule before comparing. After changing them, rerun
    with --forcerun check."""
    input:
        records=records(RUNS),
        code=["pcdeq/compare.py", *sorted(glob.glob("pcdeq/reproducibility/*.py"))],
    output:
        f"{LOGS}/check.md",
    log:
        f"{LOGS}/check.log",
    params:
        reference=REFERENCE,
        runs=RUNS,
    localrule: True
    shell:
        # with runs_from=committed RUNS is the reference itself: a comparison would be empty
        """
        if [ "{params.runs}" = "{params.reference}" ]; then
            echo "check compares this profile's fresh runs (runs/<profile>/) with the committed" \
                 "ones ({params.reference}/): drop --config runs_from=committed" >&2
            exit 2
        fi
        rc=0
        {PY:q} -m pcdeq.compare {params.reference:q} {params.runs:q} --out {output:q} \
            > {log:q} 2>&1 || rc=$?
        if [ $rc -ne 0 ]; then
            cat {log:q} >&2  # the verdict and every problem, right in Snakemake's output
            exit $rc
        fi
        """
