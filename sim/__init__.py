"""cocotb testbenches of hwgen: the simulated DRAM (`sim.dram`) and the engine test (`sim.engine_tb`).

The simulator process imports these by module name; `hwgen.simrunner` puts the repository root on
the simulator's Python path so `sim.engine_tb` resolves.
"""
