# pcdeq-repro: retrain the models and regenerate every table and figure of the paper.
#
#   snakemake --cores 1 all                                 # quick profile (config/quick.yaml)
#   snakemake --cores 1 all --configfile config/paper.yaml  # the paper's protocol
#   snakemake --cores 1 fig4                                 # one artifact by its paper name, only its runs
#   snakemake --cores 1 tables/claims.md                    # the paper's claims, checked
#   snakemake --cores 1 reference                           # refresh results/<profile>/
#
# Fresh runs go to runs/<profile>/, logs (and the executed notebooks) to logs/<profile>/,
# artifacts to the profile's figures_dir / tables_dir. See workflow/common.smk.

configfile: "config/quick.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/common.smk"


rule all:
    """Every training run and every table and figure of the profile (the registry's artifacts
    it makes: workflow/common.smk, in_profile). The runs and the profile record are named here,
    not only as inputs of the artifacts: in a fresh clone they are missing, so every committed
    artifact is regenerated from fresh runs."""
    input:
        records(RUNS),
        PROFILE_RECORD,
        artifact_files(),
    default_target: True


rule runs:
    """Only the training runs of the profile."""
    input:
        records(RUNS),


rule l_runs:
    """Only the training runs of the L models (e.g. the fashion profile's 40 L runs, ~1 core-hour)."""
    input:
        records(RUNS, archs=("L",)),


rule conv_runs:
    """Only the training runs of the conv models (SC, MC, MC*; the fashion profile's long part, ~61 core-hours)."""
    input:
        records(RUNS, archs=("SC", "MC", "MC*")),


rule ms_runs:
    """Only the training runs of the multiscale models (MS: Table 10, Figure 16)."""
    input:
        records(RUNS, archs=("MS",)),


rule reference:
    """Copy the profile's fresh runs to results/<profile>/, the committed reference records
    that the notebooks read by default, with the weights of the `reference_weights` methods
    and their measurements (model_evidence; then re-execute the notebooks; see the README)."""
    input:
        records(REFERENCE),
        weights(REFERENCE),
        f"{REFERENCE}/{EVIDENCE_FILE}",


localrules:
    all,
    runs,
    l_runs,
    conv_runs,
    reference,
    profile_record,


include: "workflow/rules/train.smk"
include: "workflow/rules/artifacts.smk"
include: "workflow/rules/check.smk"
include: "workflow/rules/targets.smk"
