"""The Python example of docs/cost-model.md runs and builds what its comments say: the gpt-oss-120b preset,
with the parameter count of the model card's 116.8 B (tests/test_cost_hf_parity.py checks the preset against
the model Transformers builds from the same config.json)."""

import re
from pathlib import Path

import costmodel as cm

COST_MODEL_MD = Path(__file__).resolve().parent.parent / "docs" / "cost-model.md"


def test_cost_model_example_builds_the_gpt_oss_preset():
    (block,) = re.findall(r"```python\n(.*?)```", COST_MODEL_MD.read_text(encoding="utf-8"), flags=re.S)
    namespace: dict = {}
    exec(compile(block, str(COST_MODEL_MD), "exec"), namespace)
    cfg = namespace["cfg"]
    assert cfg == cm.MODELS["gpt-oss-120b"]
    assert cm.param_count(cfg) == 116_829_156_672  # gpt-oss-120b's card: 116.8 B
    shown = {"cm.param_count(cfg)": str(cm.param_count(cfg)), "cfg.layer_pattern": repr(cfg.layer_pattern)}
    for line, value in shown.items():  # the comment beside each line is what it evaluates to
        assert re.search(rf"^{re.escape(line)}\s+# {re.escape(value)}$", block, flags=re.M), (line, value)
