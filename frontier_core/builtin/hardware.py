"""The kernel's GPU catalog, from NVIDIA's and AMD's datasheets (dense Tensor Core /
Matrix Core throughput, i.e. without 2:4 sparsity).

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

from frontier_core.model.catalog import HardwareSpec

T = 1e12
GB = 1e9
#: (compute, HBM) fraction of the datasheet peaks for the Blackwell parts without a
#: measurement here: B200's assumption in the roofline's efficiency table
#: (frontier_core.builtin.roofline.EFFICIENCY: 0.65 MFU, Hopper's 0.85 of HBM).
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
    # H20 (HGX H20, the export Hopper): 148 TFLOP/s dense bf16, 296 fp8 and int8, 96 GB HBM3
    # at 4.0 TB/s, NVLink 900 GB/s, 78 SMs (NVIDIA's H20 product brief).
    HardwareSpec(
        name="h20", description="NVIDIA H20 96GB (HGX H20)",
        flops={"bf16": 148 * T, "fp16": 148 * T, "fp8": 296 * T, "int8": 296 * T},
        mem_bytes=96 * GB, mem_bw=4000 * GB, nvlink_bw=450 * GB, scaleout_bw=50 * GB,
        pcie_bw=64 * GB, num_sms=78, cost_per_hour=1.5, aliases=("h20_sxm",),
    ),
    # PCIe cards without NVLink: GPUs of a server reach each other over PCIe, a ring
    # rather than a switch (nvlink_bw is the PCIe link, its latency AIConfigurator's 10 µs
    # p2p figure). L40S: 362 TFLOP/s dense bf16, 733 fp8, 48 GB GDDR6 (46,068 MiB usable)
    # at 864 GB/s, PCIe Gen4 x16, 142 SMs (NVIDIA L40S datasheet; AIConfigurator's
    # systems/l40s.yaml). RTX PRO 6000 Blackwell Server Edition: 468 bf16, 936 fp8, 1,871
    # fp4 (dense, at 2,430 MHz), 96 GB GDDR7 (97,887 MiB) at 1.79 TB/s, PCIe Gen5 x16,
    # 188 SMs (NVIDIA's datasheet; systems/rtx_pro_6000_server.yaml).
    HardwareSpec(
        name="l40s", description="NVIDIA L40S 48GB (PCIe, no NVLink)",
        flops={"bf16": 362 * T, "fp16": 362 * T, "fp8": 733 * T, "int8": 733 * T},
        mem_bytes=48.3 * GB, mem_bw=864 * GB, nvlink_bw=32 * GB, nvlink_latency=10e-6,
        nvlink_switched=False, scaleout_bw=50 * GB, pcie_bw=32 * GB, num_sms=142,
        cost_per_hour=1.0, aliases=("l40s_pcie",),
    ),
    HardwareSpec(
        name="rtx-pro-6000", description="NVIDIA RTX PRO 6000 Blackwell Server 96GB (PCIe)",
        flops={"bf16": 467.8 * T, "fp16": 467.8 * T, "fp8": 935.6 * T, "int8": 935.6 * T,
               "fp4": 1871.2 * T},
        mem_bytes=102.6 * GB, mem_bw=1792 * GB, nvlink_bw=64 * GB, nvlink_latency=10e-6,
        nvlink_switched=False, scaleout_bw=50 * GB, pcie_bw=64 * GB, num_sms=188,
        cost_per_hour=1.5, aliases=("rtx_pro_6000_server", "rtx_pro_6000"),
        efficiency=BLACKWELL_EFFICIENCY,
    ),
    # AMD Instinct, 8 per platform (OAM): the GPUs form a full mesh of Infinity Fabric
    # links, 7 per GPU, one to each peer, not a switch (mesh_links; nvlink_bw is the sum of
    # the 7 links per direction). AMD's datasheets: MI300X 1,307 TFLOP/s dense bf16 and
    # 2,615 fp8, 192 GB HBM3 at 5.3 TB/s, 304 CUs, links of 128 GB/s (both directions);
    # MI325X the same compute with 256 GB HBM3E at 6 TB/s; MI355X (CDNA 4) 2.5 PFLOP/s
    # bf16, 5 fp8 and 10 MXFP4, 288 GB HBM3E at 8 TB/s, 256 CUs, links of 153.6 GB/s.
    # Scale-out: a 400 Gb/s NIC per GPU. ``num_sms`` holds the compute units. No
    # efficiency measured here: the roofline's default factors apply.
    HardwareSpec(
        name="mi300x", description="AMD Instinct MI300X 192GB (Infinity Fabric mesh of 8)",
        flops={"bf16": 1307.4 * T, "fp16": 1307.4 * T, "fp8": 2614.9 * T, "int8": 2614.9 * T},
        mem_bytes=192 * GB, mem_bw=5300 * GB, nvlink_bw=7 * 64 * GB, nvlink_switched=False,
        mesh_links=7, scaleout_bw=50 * GB, pcie_bw=64 * GB, num_sms=304, cost_per_hour=2.5,
        aliases=("mi300x_oam",),
    ),
    HardwareSpec(
        name="mi325x", description="AMD Instinct MI325X 256GB (Infinity Fabric mesh of 8)",
        flops={"bf16": 1307.4 * T, "fp16": 1307.4 * T, "fp8": 2614.9 * T, "int8": 2614.9 * T},
        mem_bytes=256 * GB, mem_bw=6000 * GB, nvlink_bw=7 * 64 * GB, nvlink_switched=False,
        mesh_links=7, scaleout_bw=50 * GB, pcie_bw=64 * GB, num_sms=304, cost_per_hour=3.0,
        aliases=("mi325x_oam",),
    ),
    HardwareSpec(
        name="mi355x", description="AMD Instinct MI355X 288GB (Infinity Fabric mesh of 8)",
        flops={"bf16": 2500 * T, "fp16": 2500 * T, "fp8": 5000 * T, "int8": 5000 * T,
               "fp4": 10000 * T},
        mem_bytes=288 * GB, mem_bw=8000 * GB, nvlink_bw=7 * 76.8 * GB, nvlink_switched=False,
        mesh_links=7, scaleout_bw=50 * GB, pcie_bw=64 * GB, num_sms=256, cost_per_hour=5.0,
        aliases=("mi355x_oam",),
    ),
]
