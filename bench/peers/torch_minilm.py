#!/usr/bin/env python3
"""PyTorch peer for `fanin bench --model minilm`: transformers' BertModel with
the all-MiniLM-L6-v2 architecture (random weights unless --model-dir), sdpa
attention, mean pooling + L2 normalisation, inputs already on the GPU (no
tokenization), timed with CUDA events. Prints one JSON object."""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,32,128,512")
    ap.add_argument("--seqs", default="16,128")
    ap.add_argument("--dtype", default="f16", choices=["f32", "f16", "bf16"])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--model-dir", default="")
    a = ap.parse_args()
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    dev = torch.device("cuda")
    if a.model_dir:
        model = BertModel.from_pretrained(a.model_dir, attn_implementation="sdpa")
        weights = a.model_dir
    else:
        cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                         num_attention_heads=12, intermediate_size=1536,
                         max_position_embeddings=512, attn_implementation="sdpa")
        torch.manual_seed(0)
        model = BertModel(cfg, add_pooling_layer=False)
        weights = "random (same architecture)"
    model = model.to(dev, dtype).eval()

    def embed(ids, mask):
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    rows = []
    with torch.inference_mode():
        for s in [int(x) for x in a.seqs.split(",")]:
            for b in [int(x) for x in a.batches.split(",")]:
                ids = torch.randint(1000, 30522, (b, s), device=dev)
                mask = torch.ones(b, s, dtype=torch.long, device=dev)
                for _ in range(3):
                    embed(ids, mask)
                torch.cuda.synchronize()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < a.seconds:
                    embed(ids, mask)
                    torch.cuda.synchronize()
                    n += 1
                el = time.perf_counter() - t0
                rows.append({"batch": b, "seq": s, "sentences_per_s": b * n / el, "iterations": n})
    print(json.dumps({"peer": "torch", "torch_version": torch.__version__,
                      "device": torch.cuda.get_device_name(0), "dtype": a.dtype,
                      "weights": weights, "batch_mode": rows,
                      "notes": ["BertModel (sdpa) + mean pooling + L2 norm; inputs on the GPU; "
                                "forward + torch.cuda.synchronize per iteration"]}, indent=2))


if __name__ == "__main__":
    main()
