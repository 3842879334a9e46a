"""A local Hugging Face transformers model folder as a backend (the user's own weights; nothing downloaded).

Greedy decoding, the folder's chat template when it has one; answers validated against the task's schema with
re-asks like the HTTP client. Token counts come from the tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

from fbrec.errors import ConfigError
from fbrec.llm.client import Completion, LLMAnswerError, Task, Usage, parse_answer


class HFBackend:
    name, is_language_model = "hf", True

    def __init__(self, model_dir: str | Path | None, max_new_tokens: int = 128, reasks: int = 1,
                 device: str = "cpu"):
        if model_dir is None:
            raise ConfigError("the hf backend needs a model folder", rule="it reads a local transformers model "
                              "(nothing is downloaded)", fix="pass --model-dir DIR")
        self.path = Path(model_dir)
        if not (self.path / "config.json").is_file():
            raise ConfigError(f"--model-dir {str(self.path)!r} has no config.json",
                              rule="the hf backend reads a local transformers model folder (nothing is downloaded)",
                              fix="pass the folder of a saved causal language model")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.lm = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True).to(device).eval()
        self.model = self.path.name
        self.max_new_tokens, self.reasks, self.device = max_new_tokens, reasks, device
        self.usage = Usage()

    def _prompt(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"

    def _generate(self, messages: list[dict]) -> tuple[str, int, int]:
        import torch

        ids = self.tokenizer(self._prompt(messages), return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.lm.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                   pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        new = out[0, ids["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True), int(ids["input_ids"].shape[1]), int(len(new))

    def run(self, tasks: list[Task]) -> list[Completion]:
        out = []
        for task in tasks:
            messages, prompt_tokens, completion_tokens = task.messages(), 0, 0
            for attempt in range(1, self.reasks + 2):
                text, p, c = self._generate(messages)
                prompt_tokens, completion_tokens = prompt_tokens + p, completion_tokens + c
                answer, problems = parse_answer(text, task.schema)
                if not problems:
                    out.append(Completion(answer, text, f"hf:{self.model}", prompt_tokens, completion_tokens,
                                          attempts=attempt))
                    self.usage.add(out[-1])
                    break
                messages = [*messages, {"role": "assistant", "content": text},
                            {"role": "user", "content": f"That answer was not usable: {'; '.join(problems)}. "
                                                        f"Answer with one JSON object only: {task.schema.describe()}"}]
            else:
                raise LLMAnswerError(f"task {task.name!r}: the local model's answer stayed invalid after "
                                     f"{self.reasks} re-asks ({'; '.join(problems)}); last answer {text[:120]!r}",
                                     rule=f"answers are JSON objects with keys {task.schema.describe()}",
                                     fix="use an instruction-tuned model folder, or the offline backend")
        return out
