"""Testing tools for split graphs; Hypothesis (`pip install 'astgen[fuzz]'`) only where drawing needs it.

- `recipe`: the typed recipe of a random split graph and `build`, which makes it (no Hypothesis);
- `drawing`: Hypothesis strategies that draw recipes and graphs (`recipes`, `split_graphs`);
- `oracles`: exact result comparison and the liveness oracle, from the FX graph alone;
- `targets`: what a campaign fuzzs: astgen, FX's codegen, the interpreter, vLLM's API, your own;
- `checks`: the properties, by name, and the reproducers' entry point (no Hypothesis);
- `findings`: normalized signatures and the construct a minimal failing graph fails on;
- `minimize`: delta debugging over a recipe, after Hypothesis shrinks;
- `reproducers`: a minimal graph as a script of FX API calls that exits 1 while it fails;
- `campaign`: worker processes, the example database, root causes and `python -m astgen.fuzz`.

docs/fuzzing.md describes campaigns, their reports and exit codes, and the findings against vLLM 0.33.

`import astgen` imports none of these.
"""
