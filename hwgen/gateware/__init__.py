"""The Amaranth gateware of the periodic-sparse convolution engine (one module per block).

`params` (EngineParams), `descriptor` and `layout` (the DRAM formats), `schedule` (the engine's
analytical traffic and cycle model), the components `dma`, `input_buffer`, `weight_buffer`,
`pattern_rom`, `mac_array`, `requant`, `writeback` and `sram`, assembled by `engine`; plus
`sim_memory` (a DRAM model for amaranth.sim) and `synth` (Yosys resource counts).
"""
