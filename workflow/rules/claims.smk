# The claims table (notebooks/claims.ipynb): every claim of the paper with its measured
# evidence and a computed verdict. Its evidence is this profile's fresh runs (records, and the
# weights of the `reference_weights` methods) and the committed reference results of the
# other profiles (results/quick, results/fashion), each labelled with its profile and data.

CLAIMS_FILES: list[str] = [f"{TABLES}/claims.md", f"{TABLES}/claims.tex",
                           f"{TABLES}/claims_summary.md", f"{TABLES}/claims_summary.tex"]
BEYOND_FIGURE: str = "fig15_beyond_contraction"
BEYOND_FILES: list[str] = [str(p) for p in artifact_paths("figure", BEYOND_FIGURE, FIGURES)]
CLAIMS_PROFILES: tuple[str, ...] = ("quick", "fashion")  # the profiles with committed evidence


def claims_params() -> str:
    """Papermill parameters of notebooks/claims.ipynb (JSON for `-y`)."""
    sources = [{"profile": PROFILE, "dir": RUNS, "weights": weights(RUNS)}]
    sources += [{"profile": p, "dir": f"{REFERENCE_ROOT}/{p}"}
                for p in CLAIMS_PROFILES if p != PROFILE]
    return json.dumps({"sources": sources, "data_root": config["data_root"], "out_dir": TABLES},
                      sort_keys=True)


rule claims_table:
    """tables/claims.{md,tex} from the profile's fresh runs beside the other profiles'
    committed results."""
    input:
        notebook="notebooks/claims.ipynb",
        records=records(RUNS),
        weights=weights(RUNS),
        profile=PROFILE_RECORD,
        code=REPORT_CODE + ["pcdeq/claims.py", "pcdeq/beyond_contraction.py"],
    output:
        md=report(CLAIMS_FILES[0], caption=REPORT_CAPTION, category=REPORT_SECTIONS["claims"],
                  labels={"artifact": "The paper's claims, checked",
                          "provenance": "this profile's runs beside the committed results of "
                                        "the other profiles (named in the table)"}),
        tex=CLAIMS_FILES[1],
        summary_md=CLAIMS_FILES[2],
        summary_tex=CLAIMS_FILES[3],
    log:
        notebook=f"{LOGS}/notebooks/claims.ipynb",
        stderr=f"{LOGS}/notebooks/claims.log",
    params:
        nb=claims_params(),
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=10,
    shell:
        "{PY:q} -m papermill --kernel python3 --cwd . --no-progress-bar"
        " notebooks/claims.ipynb {log.notebook:q} -y {params.nb:q} 2> {log.stderr:q}"


rule claims:
    """`snakemake --cores 1 claims`: the claims table and Figure 15 (trains what they read)."""
    input:
        CLAIMS_FILES,
        BEYOND_FILES,
        records(RUNS),
        PROFILE_RECORD,
    localrule: True


rule beyond_contraction:
    """Figure 15 (notebooks/beyond_contraction.ipynb): the profile's trained pcDEQ models with W
    scaled by s in {1, 2, 5, 10, 100}: distinct limits, iterations, ℓ2 against Thompson
    one-step ratios, beside the negative controls (the unconstrained DEQ; tanh with x = 0)."""
    input:
        notebook="notebooks/beyond_contraction.ipynb",
        weights=weights(RUNS),
        profile=PROFILE_RECORD,
        code=REPORT_CODE + ["pcdeq/beyond_contraction.py", "pcdeq/claims.py", *THEORY_CODE],
    output:
        pdf=BEYOND_FILES[0],
        png=report(BEYOND_FILES[1], caption=REPORT_CAPTION, category=REPORT_SECTIONS["fig15"],
                   labels={"artifact": "Figure 15: the theorem beyond contraction",
                           "provenance": "this profile's trained pcDEQ and DEQ models"}),
    log:
        notebook=f"{LOGS}/notebooks/{BEYOND_FIGURE}.ipynb",
        stderr=f"{LOGS}/notebooks/{BEYOND_FIGURE}.log",
    params:
        nb=json.dumps({"profile": PROFILE, "weights_dir": RUNS, "weights": weights(RUNS),
                       "data_root": config["data_root"], "out_dir": FIGURES}, sort_keys=True),
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=15,
    shell:
        "{PY:q} -m papermill --kernel python3 --cwd . --no-progress-bar"
        " {input.notebook:q} {log.notebook:q} -y {params.nb:q} 2> {log.stderr:q}"
