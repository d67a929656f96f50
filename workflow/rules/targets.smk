# Named targets: every artifact of the registry by its short paper name (`snakemake --cores 1
# fig4`, `table8`, `fig13`, `claims`, ...; `snakemake --list-target-rules` lists them). Each
# names the runs its artifact reads and the profile record, like `all`: in a fresh clone, where
# the committed artifact looks up to date, the missing profile record makes it outdated, so it
# is regenerated (training only those runs) without --force.

for _artifact in ARTIFACTS.values():
    # `claims` makes Figure 15 too (target_also)
    _made = [_artifact, *(ARTIFACTS[n] for n in _artifact.target_also)]

    rule:
        name:
            _artifact.short
        input:
            records=list(dict.fromkeys(r for a in _made for r in artifact_runs(a))),
            profile=PROFILE_RECORD,
            files=[str(p) for a in _made for p in a.paths(folder(a))],
        localrule: True

    workflow.get_rule(_artifact.short).docstring = "; ".join(a.title for a in _made)
