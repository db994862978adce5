"""The Amaranth gateware of the periodic-sparse convolution engine (one module per block).

The components `dma`, `input_buffer`, `weight_buffer`, `pattern_rom`, `mac_array`, `requant`,
`writeback` and `sram`, assembled by `engine` from the compiler's `hwgen.engine.EngineParams`;
`axi` (AXI4 master and AXI4-Lite slave adapters) and `axi_top` (the engine behind them, with the
registers of `hwgen.engine.registers`);
plus `sim_memory` (a DRAM model for amaranth.sim) and `synth` (Yosys resource counts). The DRAM
formats, tiling and schedule model are the compiler's (`hwgen.engine`).
"""
