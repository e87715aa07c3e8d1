"""Testing tools for split graphs; Hypothesis (`pip install 'astgen[fuzz]'`) only where drawing needs it.

- `recipe`: the typed recipe of a random split graph and `build`, which makes it (no Hypothesis);
- `drawing`: Hypothesis strategies that draw recipes and graphs (`recipes`, `split_graphs`);
- `oracles`: exact result comparison and the liveness oracle, from the FX graph alone;
- `targets`: what a campaign fuzzs: astgen, FX's codegen, the interpreter, vLLM's API, your own;
- `checks`: the properties, by name, and the reproducers' entry point (no Hypothesis);
- `campaign`: worker processes, the example database and `python -m astgen.fuzz`.

`import astgen` imports none of these.
"""
