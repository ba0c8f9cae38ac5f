"""The parts of `drr_agent.offline.train.train_dm`, one concept a module, in recipe order.

- `recipe`: `DMRecipe`, what makes a DM, and the named `DM_RECIPES`; `config`:
  `TrainConfig`, a recipe plus every setting of one run; `result`: `TrainResult`, what it
  produced.
- `data`: the checks on the rows and the by-question split, before anything loads.
- `backbone`: which base model, loaded as a 2-label classifier, tuned full / LoRA / head.
- `encoding`: steps as the tokenised inputs `HFScorer` will serve (the same window rule).
- `objective`: the class-weighted soft BCE and the early-stopping metrics.
- `fit`: one `~transformers.Trainer` run (`trainer`: `DMTrainer`, its pairwise loss).
- `export`: the DM folder on disk: staged, moved into place, reloaded and verified.
- `card`: ``drr_dm.json`` and the model card; `quiet`: transformers' chatter off.

Import the public names from `drr_agent.offline.train` (or `drr_agent.offline`); these
modules are its internals.
"""
