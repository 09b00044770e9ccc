"""The kernel's GPU catalog, from NVIDIA datasheets (SXM parts, dense Tensor Core
throughput, i.e. without 2:4 sparsity).

Conventions: NVLink and scale-out bandwidths are per GPU *per direction* (the
datasheet's NVLink figure is the bidirectional total, so it is halved here);
scale-out is the NIC per GPU of the usual HGX/DGX node (HDR 200 Gb/s for A100,
NDR 400 Gb/s for Hopper and Blackwell). Latencies are typical one-way figures
for NCCL over NVLink (~3 µs) and over InfiniBand/RoCE (~8 µs). Costs are
indicative on-demand USD per GPU-hour and only matter to planning; override
them per deployment.
"""

from __future__ import annotations

from frontier_core.catalog import HardwareSpec

T = 1e12
GB = 1e9

HARDWARE: list[HardwareSpec] = [
    HardwareSpec(
        name="a100-80g-sxm", description="NVIDIA A100 80GB SXM4",
        flops={"bf16": 312 * T, "fp16": 312 * T, "int8": 624 * T},
        mem_bytes=80 * GB, mem_bw=2039 * GB, nvlink_bw=300 * GB, scaleout_bw=25 * GB,
        pcie_bw=32 * GB, num_sms=108, cost_per_hour=1.8,
    ),
    HardwareSpec(
        name="a800", description="NVIDIA A800 80GB SXM4 (export variant: NVLink 400 GB/s)",
        flops={"bf16": 312 * T, "fp16": 312 * T, "int8": 624 * T},
        mem_bytes=80 * GB, mem_bw=2039 * GB, nvlink_bw=200 * GB, scaleout_bw=25 * GB,
        pcie_bw=32 * GB, num_sms=108, cost_per_hour=1.6,
    ),
    HardwareSpec(
        name="h100-sxm", description="NVIDIA H100 80GB SXM5",
        flops={"bf16": 989.4 * T, "fp16": 989.4 * T, "fp8": 1978.9 * T},
        mem_bytes=80 * GB, mem_bw=3350 * GB, nvlink_bw=450 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=132, cost_per_hour=3.0,
    ),
    HardwareSpec(
        name="h800", description="NVIDIA H800 80GB SXM5 (export variant: NVLink 400 GB/s)",
        flops={"bf16": 989.4 * T, "fp16": 989.4 * T, "fp8": 1978.9 * T},
        mem_bytes=80 * GB, mem_bw=3350 * GB, nvlink_bw=200 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=132, cost_per_hour=2.8,
    ),
    HardwareSpec(
        name="h200", description="NVIDIA H200 141GB SXM",
        flops={"bf16": 989.4 * T, "fp16": 989.4 * T, "fp8": 1978.9 * T},
        mem_bytes=141 * GB, mem_bw=4800 * GB, nvlink_bw=450 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=132, cost_per_hour=3.8,
    ),
    HardwareSpec(
        name="b200", description="NVIDIA B200 180GB (HGX B200)",
        flops={"bf16": 2250 * T, "fp16": 2250 * T, "fp8": 4500 * T, "fp4": 9000 * T},
        mem_bytes=180 * GB, mem_bw=7700 * GB, nvlink_bw=900 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=148, cost_per_hour=6.0,
    ),
]
