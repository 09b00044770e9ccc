"""The kernel's GPU catalog, from NVIDIA datasheets (SXM parts, dense Tensor Core
throughput, i.e. without 2:4 sparsity).

Conventions: NVLink and scale-out bandwidths are per GPU *per direction* (the
datasheet's NVLink figure is the bidirectional total, so it is halved here);
scale-out is the NIC per GPU of the usual HGX/DGX node (HDR 200 Gb/s for A100,
NDR 400 Gb/s for Hopper and B200, ConnectX-8 XDR 800 Gb/s for B300 and the NVL72
racks). ``aliases`` are the names AIConfigurator and benchmark files give the same
GPU; ``nvlink_domain`` the GPUs one NVLink fabric joins where it is wider than a
server (72 in an NVL72 rack of 4-GPU trays). Latencies are typical one-way figures
for NCCL over NVLink (~3 µs) and over InfiniBand/RoCE (~8 µs). Costs are
indicative on-demand USD per GPU-hour and only matter to planning; override
them per deployment.
"""

from __future__ import annotations

from frontier_core.catalog import HardwareSpec

T = 1e12
GB = 1e9
#: (compute, HBM) fraction of the datasheet peaks for the Blackwell parts without a
#: measurement here: B200's assumption in the roofline's efficiency table
#: (frontier_predictors.roofline.EFFICIENCY: 0.65 MFU, Hopper's 0.85 of HBM).
BLACKWELL_EFFICIENCY = (0.65, 0.85)

HARDWARE: list[HardwareSpec] = [
    HardwareSpec(
        name="a100-80g-sxm", description="NVIDIA A100 80GB SXM4",
        flops={"bf16": 312 * T, "fp16": 312 * T, "int8": 624 * T},
        mem_bytes=80 * GB, mem_bw=2039 * GB, nvlink_bw=300 * GB, scaleout_bw=25 * GB,
        pcie_bw=32 * GB, num_sms=108, cost_per_hour=1.8, aliases=("a100_sxm",),
    ),
    HardwareSpec(
        name="a800", description="NVIDIA A800 80GB SXM4 (export variant: NVLink 400 GB/s)",
        flops={"bf16": 312 * T, "fp16": 312 * T, "int8": 624 * T},
        mem_bytes=80 * GB, mem_bw=2039 * GB, nvlink_bw=200 * GB, scaleout_bw=25 * GB,
        pcie_bw=32 * GB, num_sms=108, cost_per_hour=1.6, aliases=("a800_sxm",),
    ),
    HardwareSpec(
        name="h100-sxm", description="NVIDIA H100 80GB SXM5",
        flops={"bf16": 989.4 * T, "fp16": 989.4 * T, "fp8": 1978.9 * T},
        mem_bytes=80 * GB, mem_bw=3350 * GB, nvlink_bw=450 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=132, cost_per_hour=3.0, aliases=("h100_sxm",),
    ),
    HardwareSpec(
        name="h800", description="NVIDIA H800 80GB SXM5 (export variant: NVLink 400 GB/s)",
        flops={"bf16": 989.4 * T, "fp16": 989.4 * T, "fp8": 1978.9 * T},
        mem_bytes=80 * GB, mem_bw=3350 * GB, nvlink_bw=200 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=132, cost_per_hour=2.8, aliases=("h800_sxm",),
    ),
    HardwareSpec(
        name="h200", description="NVIDIA H200 141GB SXM",
        flops={"bf16": 989.4 * T, "fp16": 989.4 * T, "fp8": 1978.9 * T},
        mem_bytes=141 * GB, mem_bw=4800 * GB, nvlink_bw=450 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=132, cost_per_hour=3.8, aliases=("h200_sxm",),
    ),
    HardwareSpec(
        name="b200", description="NVIDIA B200 180GB (HGX B200)",
        flops={"bf16": 2250 * T, "fp16": 2250 * T, "fp8": 4500 * T, "fp4": 9000 * T},
        mem_bytes=180 * GB, mem_bw=7700 * GB, nvlink_bw=900 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=148, cost_per_hour=6.0, aliases=("b200_sxm",),
    ),
    # Blackwell Ultra, 8 per HGX B300 server: NVIDIA's HGX B300 figures per GPU (dense:
    # half the sparse ones), 288 GB HBM3e (275,040 MiB as nvidia-smi reports it), ConnectX-8
    # at 800 Gb/s per GPU; AIConfigurator's systems/b300_sxm.yaml holds the same figures.
    # Its int8 tensor-core rate is cut to 1/30 of B200's (153.5 TOPS dense), so int8 is
    # not listed: int8 GEMMs would run through another path.
    HardwareSpec(
        name="b300", description="NVIDIA B300 288GB (HGX B300, Blackwell Ultra)",
        flops={"bf16": 2250 * T, "fp16": 2250 * T, "fp8": 4500 * T, "fp4": 14000 * T},
        mem_bytes=288.4 * GB, mem_bw=7750 * GB, nvlink_bw=900 * GB, scaleout_bw=100 * GB,
        pcie_bw=128 * GB, num_sms=160, cost_per_hour=8.0, aliases=("b300_sxm",),
        efficiency=BLACKWELL_EFFICIENCY,
    ),
    # GB200 NVL72: 72 B200-class GPUs (at the rack's higher power: 2.5 PFLOP/s dense bf16,
    # 5 fp8, 10 fp4; 186 GB HBM3e of the rack's 13.4 TB, 8 TB/s) in 18 trays of 4, all
    # 72 on one NVLink 5 switch fabric (1.8 TB/s per GPU, 900 GB/s per direction); racks
    # joined by ConnectX-8 at 800 Gb/s per GPU. NVIDIA's GB200 NVL72 datasheet;
    # AIConfigurator's systems/gb200.yaml (189,471 MiB usable per GPU).
    HardwareSpec(
        name="gb200", description="NVIDIA GB200 NVL72 (B200 GPU, 72 per NVLink domain)",
        flops={"bf16": 2500 * T, "fp16": 2500 * T, "fp8": 5000 * T, "int8": 5000 * T,
               "fp4": 10000 * T},
        mem_bytes=198.7 * GB, mem_bw=8000 * GB, nvlink_bw=900 * GB, scaleout_bw=100 * GB,
        pcie_bw=64 * GB, gpus_per_node=4, nvlink_domain=72, num_sms=148, cost_per_hour=7.0,
        aliases=("gb200_nvl72",), efficiency=BLACKWELL_EFFICIENCY,
    ),
    # GB300 NVL72: Blackwell Ultra at 15 PFLOP/s dense fp4 (2.5 bf16, 5 fp8), 288 GB HBM3e
    # (284,208 MiB usable) at 8 TB/s, the same 72-GPU NVLink fabric. NVIDIA's GB300 NVL72
    # datasheet (1.1 EFLOP/s dense fp4 and 576 TB/s HBM per rack); AIConfigurator's
    # systems/gb300.yaml.
    HardwareSpec(
        name="gb300", description="NVIDIA GB300 NVL72 (B300 GPU, 72 per NVLink domain)",
        flops={"bf16": 2500 * T, "fp16": 2500 * T, "fp8": 5000 * T, "fp4": 15000 * T},
        mem_bytes=298.0 * GB, mem_bw=8000 * GB, nvlink_bw=900 * GB, scaleout_bw=100 * GB,
        pcie_bw=64 * GB, gpus_per_node=4, nvlink_domain=72, num_sms=160, cost_per_hour=9.0,
        aliases=("gb300_nvl72",), efficiency=BLACKWELL_EFFICIENCY,
    ),
]
