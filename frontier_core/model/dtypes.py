"""Number formats: bytes per value, and the tensor-core type each weight format computes in."""

from __future__ import annotations

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp8_block": 1, "int8": 1,
               "int4": 0.5, "w4afp8": 0.5, "nvfp4": 0.5 + 1 / 16, "mxfp4": 0.5 + 1 / 32}
#: Scaled formats and the tensor-core type they compute in. ``fp8_block`` is fp8 with one
#: scale per 128×128 block of weights (and per 1×128 of activations), the format of
#: DeepSeek-V3's checkpoints (config.json quantization_config weight_block_size). Its
#: scales (one fp32 per 16,384 weights) add 1/4,096 of the weight bytes, left out.
#: Measured kernel tables keep it apart from per-tensor ``fp8``: other kernels run it
#: (DeepGEMM, block-scaled CUTLASS).
#:
#: The 4-bit formats carry their scales in their bytes: ``nvfp4`` (NVIDIA's NVFP4: E2M1
#: values with one FP8 E4M3 scale per 16, plus one fp32 scale per tensor, left out)
#: and ``mxfp4`` (OCP Microscaling Formats v1.0: E2M1 with one E8M0 scale per 32; the
#: experts of gpt-oss). Both compute on the fp4 tensor cores where a GPU has them
#: (Blackwell: ``flops["fp4"]``); elsewhere the weights are dequantised and the GEMM runs
#: at the bf16 rate (HardwareSpec.peak_flops), as Hopper's W4A16 kernels do.
#: ``int4`` is weight-only (W4A16: AWQ, GPTQ, Kimi K2's int4 experts): 4-bit weights
#: dequantised in the kernel, the math at the bf16 rate; its group scales (2 B per 32 to
#: 128 weights) are left out. ``w4afp8`` is W4A8: int4 weights with fp8 activations, the
#: math on the fp8 tensor cores (TensorRT-LLM's W4A8 AWQ and its DeepSeek MoE path,
#: AIConfigurator's ``w4afp8`` mode); its scales are left out too.
COMPUTE_DTYPE = {"fp8_block": "fp8", "nvfp4": "fp4", "mxfp4": "fp4", "int4": "bf16",
                 "w4afp8": "fp8"}
#: Weight formats whose GEMMs are priced in that format (others compute in bf16).
GEMM_DTYPES = ("bf16", "fp16", "fp8", "fp8_block", "nvfp4", "mxfp4", "int4", "w4afp8")


def gemm_dtype(weight_dtype: str) -> str:
    """The dtype a model's GEMMs (and expert GEMMs) are priced in."""
    return weight_dtype if weight_dtype in GEMM_DTYPES else "bf16"
