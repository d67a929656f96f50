# Named targets: every artifact by its short paper name (`snakemake --cores 1 fig4`, `table8`,
# `fig13`, ...; `snakemake --list-target-rules` lists them). Each names the runs its artifact
# reads and the profile record, like `all`: in a fresh clone, where the committed artifact
# looks up to date, the missing profile record makes it outdated, so it is regenerated
# (training only those runs) without --force.

SHORT_TARGETS: dict[str, list[str]] = {
    **{a.name.split("_")[0]: [str(p) for p in a.paths(TABLES if a.kind == "table" else FIGURES)]
       for a in ARTIFACTS.values()},
    **{name.split("_")[0]: [f for f in THEORY_FILES if Path(f).stem == name]
       for name in (THEORY_GEOMETRY_FIGURE, THEORY_GEOMETRY_TABLE, THEORY_DYNAMICS_FIGURE)},
    "fig15": BEYOND_FILES,
}


def short_target_records(short: str) -> list[str]:
    """The run records a named target's artifact reads (none for the theory notebooks; for
    Figure 15 the runs whose weights it studies)."""
    name = Path(SHORT_TARGETS[short][0]).stem
    if name == BEYOND_FIGURE:
        return [w[: -len(".pt")] + ".json" for w in weights(RUNS)]
    return records(RUNS, name) if name in ARTIFACTS else []


for _short in SHORT_TARGETS:

    rule:
        name:
            _short
        input:
            records=short_target_records(_short),
            profile=PROFILE_RECORD,
            files=SHORT_TARGETS[_short],
        localrule: True
