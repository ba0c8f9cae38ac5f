"""Does a likelihood model know what the Reasoner gets wrong?

A DM's likelihood features (`drr_agent.scorers.likelihood`) can veto a Reasoner's mistake only
if their LM would not have made it. This probe asks each LM, on the train + dev questions of a
quickstart run (never its test questions), in the same few-shot prompt (``k`` worked examples
"Calculate a + b.\\nAnswer: c", then the question): its own greedy answer (accuracy), and the
teacher-forced log-prob of two candidates per question — the *Reasoner's* greedy answer in that
prompt and the gold one — whose AUROC against correctness says how well the LM judges the
Reasoner's own answers (0.5: no better than chance; below: it believes the Reasoner's errors).

    .venv/bin/python -m evals.benchmarks.verifier_knowledge --run runs/quickstart \\
        --models embedded-smollm2,embedded-qwen2.5-0.5b
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from drr_agent.offline.dm_eval import auroc
from drr_agent.offline.run_folder import RunFolder
from drr_agent.quickstart import QuickstartPlan
from drr_agent.scorers.likelihood import EMBEDDED_LIKELIHOOD_MODEL, embedded_likelihood_folder
from drr_agent.tasks.splits import TaskSplit

_NUMBER = re.compile(r"-?\d+")


class _LM:
    def __init__(self, name: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = embedded_likelihood_folder(name) or Path(name)
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.lm = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()

    def answer(self, prompt: str) -> str:
        ids = self.tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        out = self.lm.generate(ids, max_new_tokens=5, do_sample=False)
        found = _NUMBER.search(self.tok.decode(out[0, ids.shape[1] :]))
        return found.group() if found else ""

    def logprob(self, prompt: str, answer: str) -> float:
        import torch

        head = self.tok(prompt, add_special_tokens=False).input_ids
        tail = self.tok(f"{prompt} {answer}\n", add_special_tokens=False).input_ids[len(head) :]
        logits = self.lm(torch.tensor([head + tail])).logits[0, len(head) - 1 : -1]
        lp = torch.log_softmax(logits.float(), -1)[torch.arange(len(tail)), torch.tensor(tail)]
        return float(lp.sum())


def measure(run: Path, models: list[str], shots: int) -> dict:
    import torch

    folder = RunFolder(run)
    plan = QuickstartPlan.load(folder.plan)
    task = plan.task.load()
    split = TaskSplit.load(folder.split)
    seen: dict[str, str] = {}
    for part in ("train", "dev"):
        for item in split.subtask(task, part).items:
            seen.setdefault(item.question, str(item.gold))
    pairs = list(seen.items())
    demos, probe = pairs[:shots], pairs[shots:]
    context = "".join(f"{q}\nAnswer: {g}\n\n" for q, g in demos)
    lms = {name: _LM(name) for name in models}
    reasoner = lms.get(EMBEDDED_LIKELIHOOD_MODEL) or _LM(EMBEDDED_LIKELIHOOD_MODEL)
    result: dict = {"run": str(run), "questions": len(probe), "shots": shots, "models": {}}
    with torch.inference_mode():
        written = [reasoner.answer(f"{context}{q}\nAnswer:") for q, _ in probe]
        for name, lm in lms.items():
            start = time.perf_counter()
            right, scores, labels = 0, [], []
            for (question, gold), theirs in zip(probe, written, strict=True):
                prompt = f"{context}{question}\nAnswer:"
                right += lm.answer(prompt) == gold
                for candidate in {theirs, gold} - {""}:
                    scores.append(lm.logprob(prompt, candidate))
                    labels.append(int(candidate == gold))
            result["models"][name] = {
                "greedy_accuracy": right / len(probe),
                "judges_reasoner_auroc": auroc(np.array(scores), np.array(labels)),
                "candidates": len(labels),
                "seconds": round(time.perf_counter() - start, 1),
            }
    result["reasoner_accuracy"] = sum(
        w == g for w, (_, g) in zip(written, probe, strict=True)
    ) / len(probe)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="A quickstart folder (split).")
    parser.add_argument(
        "--models", default="embedded-smollm2,embedded-qwen2.5-0.5b", help="Comma-separated."
    )
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.run, [m for m in args.models.split(",") if m], args.shots)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "verifier_knowledge.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
