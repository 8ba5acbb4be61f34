"""``perplexity``: perplexity of a causal language model on a local text, with a sliding window.

Extra ``[hf]`` (torch, transformers, safetensors). The model is a Hugging Face-format folder
(``config.json``, ``*.safetensors``, tokenizer files) handed over file by file as artifacts and
staged as described in :mod:`workers.runners.hf_folder`: pickle weights are refused before
anything is read, every file's sha256 is verified, remote code is never trusted, nothing is
downloaded.

Dataset: a UTF-8 text (``txt``), or ``jsonl`` with a ``"text"`` field per line (lines joined by a
blank line).

The text is tokenized once (the tokenizer's BOS token first, when it has one and ``add_bos``, so
that the first word is scored too) and evaluated in windows of ``max_length`` tokens that advance
by ``stride``: each window scores only the tokens the previous one did not, with up to
``max_length - stride`` tokens of context before them (the method of the Hugging Face perplexity
guide). Windows of equal length are batched, ``batch_size`` at a time; ``progress(done, total)``
counts windows, after every batch.

Metrics: ``perplexity`` (exp of the mean token NLL), ``nll`` (mean negative log-likelihood in nats
per token), ``bits_per_byte`` (total NLL in bits over the UTF-8 bytes of the scored text: comparable
across tokenizers), ``tokens`` (scored tokens) and ``windows``. ``stderr`` of ``nll`` is the standard
error of the mean of the per-token NLLs (tokens treated as independent, so it is optimistic), and
those of ``perplexity`` and ``bits_per_byte`` follow from it by the delta method.

Memory: the sandbox's ``memory_mb`` is an address-space limit and must hold torch and transformers
themselves. Measured on the tiny LM (torch 2.13 CPU, transformers 5.24): peak 0.99 GiB of address
space, 0.53 GiB resident; runs in ``run_in_child`` passed at ``memory_mb=1024`` (3 of 3) and failed
(``out_of_memory``) at 832. Give it at least 1536 plus twice the model's weights. Just above the
threshold (896), scipy's OpenBLAS was once seen to hang while loading under the limit instead of
failing; the job's wall-clock timeout ends such a run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

from workers.runners.base import ProgressCallback, RunnerError, RunResult, RunSpec
from workers.runners.hf_folder import FolderRunner, check_dataset, load_causal_lm, out_of_memory_during, require_extra

require_extra("hf", "torch", "transformers", "safetensors")

#: Packages recorded in the environment fingerprint.
PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "numpy")


def read_text(path: str, fmt: str) -> str:
    """The evaluation text of a ``txt`` or ``jsonl`` dataset."""
    try:
        with open(path, encoding="utf-8") as fh:
            if fmt == "txt":
                return fh.read()
            parts = []
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    parts.append(str(json.loads(line)["text"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise RunnerError(
                        "runner_error", f'JSONL dataset line {lineno}: expected {{"text": "..."}} ({exc})'
                    ) from exc
            return "\n\n".join(parts)
    except UnicodeDecodeError as exc:
        raise RunnerError("runner_error", f"the dataset is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise RunnerError("artifact_unavailable", f"cannot read the dataset: {exc}") from exc


def sliding_windows(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """``[(begin, end, target_len)]``: windows over ``n_tokens`` tokens; the last ``target_len`` of each are scored.

    Every token but the first is scored exactly once (the first has no context to be predicted from).
    """
    windows = []
    prev_end = 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + max_length, n_tokens)
        windows.append((begin, end, end - prev_end))
        prev_end = end
        if end == n_tokens:
            break
    return windows


class PerplexityRunner(FolderRunner):
    """Sliding-window perplexity of a causal LM (safetensors, Hugging Face folder) on CPU."""

    key: ClassVar[str] = "perplexity"
    version: ClassVar[str] = "1.0.0"
    packages: ClassVar[tuple[str, ...]] = PACKAGES
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "perplexity config",
        "type": "object",
        "properties": {
            "max_length": {
                "type": "integer",
                "minimum": 2,
                "maximum": 32768,
                "description": "window length in tokens; default: the model's context size, at most 1024",
            },
            "stride": {
                "type": "integer",
                "minimum": 1,
                "maximum": 32768,
                "description": "tokens the window advances by; default max_length // 2; must be < max_length",
            },
            "limit_tokens": {"type": "integer", "minimum": 2, "description": "evaluate the first N tokens only"},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 256, "default": 4},
            "add_bos": {
                "type": "boolean",
                "default": True,
                "description": "start with the tokenizer's BOS token (when it has one)",
            },
            "threads": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1},
            "seed": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": False,
    }

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        run_log, config = self.begin(spec)
        note = run_log.note
        files = self.check_folder(spec)
        dataset_path, dataset_format = check_dataset(spec, runner_key=self.key, formats=("txt", "jsonl"))
        text = read_text(dataset_path, dataset_format)
        if not text.strip():
            raise RunnerError("runner_error", "the dataset text is empty")

        torch = self.start_torch(config)
        torch.manual_seed(spec.seed)
        tokenizer, model = load_causal_lm(files, torch)
        parameters = sum(p.numel() for p in model.parameters())
        note(
            f"loaded {type(model).__name__} ({parameters} parameters) from {len(files)} verified files; "
            f"tokenizer {type(tokenizer).__name__} with {len(tokenizer)} entries"
        )

        ids: list[int] = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        bos = tokenizer.bos_token_id
        if config["add_bos"] and bos is not None:
            ids = [int(bos), *ids]
        if "limit_tokens" in config:
            ids = ids[: int(config["limit_tokens"])]
        if len(ids) < 2:
            raise RunnerError("runner_error", "the dataset has fewer than two tokens")

        model_max = _model_context(model, tokenizer)
        max_length = int(config.get("max_length") or min(model_max or 1024, 1024))
        if model_max and max_length > model_max:
            raise RunnerError(
                "invalid_config", f"max_length {max_length} exceeds the model's context of {model_max} tokens"
            )
        stride = int(config.get("stride") or max(1, max_length // 2))
        if stride >= max_length and max_length < len(ids):
            raise RunnerError("invalid_config", f"stride ({stride}) must be smaller than max_length ({max_length})")
        batch_size = int(config["batch_size"])
        windows = sliding_windows(len(ids), max_length, stride)
        total = len(windows)
        note(
            f"dataset {Path(dataset_path).name}: {len(text.encode('utf-8'))} bytes, {len(ids)} tokens; "
            f"max_length {max_length}, stride {stride}, {total} windows, batch_size {batch_size}"
        )
        progress(0, total)

        input_ids = torch.tensor(ids, dtype=torch.long)
        token_nll: list[Any] = []
        done = 0
        i = 0
        while i < total:
            # Windows of one length go together (all but the last are max_length long).
            length = windows[i][1] - windows[i][0]
            batch = [windows[i]]
            while (
                len(batch) < batch_size
                and i + len(batch) < total
                and windows[i + len(batch)][1] - windows[i + len(batch)][0] == length
            ):
                batch.append(windows[i + len(batch)])
            with out_of_memory_during("the forward pass"), torch.inference_mode():
                token_nll.extend(_score_batch(torch, model, input_ids, batch))
            i += len(batch)
            done += len(batch)
            progress(done, total)

        nll = torch.cat(token_nll).double()
        n = int(nll.numel())
        mean_nll = float(nll.mean())
        se_nll = float(nll.std(unbiased=True)) / math.sqrt(n) if n > 1 else 0.0
        first_scored = len(ids) - n
        scored_bytes = len(str(tokenizer.decode(ids[first_scored:], skip_special_tokens=True)).encode("utf-8"))
        perplexity = math.exp(mean_nll)
        metrics = {
            "perplexity": perplexity,
            "nll": mean_nll,
            "bits_per_byte": (mean_nll * n / math.log(2) / scored_bytes) if scored_bytes else float("nan"),
            "tokens": float(n),
            "windows": float(total),
        }
        stderr = {
            "nll": se_nll,
            "perplexity": perplexity * se_nll,
        }
        if scored_bytes:
            stderr["bits_per_byte"] = se_nll * n / math.log(2) / scored_bytes
        note(
            "metrics: "
            + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items())
            + f" (nll stderr {se_nll:.4g}, {scored_bytes} bytes scored)"
        )
        environment = self.torch_environment(config, seed=spec.seed, dtype="float32")
        return self.result(run_log, metrics=metrics, stderr=stderr, samples=n, environment=environment)


def _model_context(model: Any, tokenizer: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return None


def _score_batch(torch: Any, model: Any, input_ids: Any, batch: list[tuple[int, int, int]]) -> list[Any]:
    """Per-token NLLs (nats) of the scored tokens of equally long windows, one tensor per window."""
    x = torch.stack([input_ids[begin:end] for begin, end, _ in batch])
    logits = model(input_ids=x).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1, :], dim=-1)
    targets = x[:, 1:]
    nll = -logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [B, L-1]: NLL of token j+1
    out = []
    length = x.shape[1]
    for row, (_begin, _end, target_len) in enumerate(batch):
        # Token positions length-target_len .. length-1 are scored; token 0 never is.
        first = max(1, length - target_len)
        out.append(nll[row, first - 1 :])
    return out


__all__ = ["PerplexityRunner", "read_text", "sliding_windows"]
