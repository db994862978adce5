// hwgen_sram_1r1w: the engine's on-chip buffers (input rows, weights, output rows).
// A behavioural model: one synchronous read port, one write port with byte enables. Replace this
// file with a wrapper around a foundry or FPGA macro of the same ports and timing:
//   - read: rd_data shows mem[rd_addr] one cycle after a cycle with rd_en high, and holds while
//     rd_en is low; a read and a write of the same address in one cycle return the OLD data;
//   - write: at the clock edge, each GRAN-bit lane i of wr_data is stored where wr_en[i] is high.
// `hwgen generate` instantiates it with the WIDTH, DEPTH and GRAN listed in manifest.json.
`default_nettype none

module hwgen_sram_1r1w #(
    parameter integer WIDTH = 64,
    parameter integer DEPTH = 256,
    parameter integer GRAN  = 64,                // write-enable granularity in bits
    parameter integer ABITS = $clog2(DEPTH > 1 ? DEPTH : 2)
) (
    input  wire                    clk,
    input  wire                    rd_en,
    input  wire [ABITS-1:0]        rd_addr,
    output reg  [WIDTH-1:0]        rd_data,
    input  wire [WIDTH/GRAN-1:0]   wr_en,
    input  wire [ABITS-1:0]        wr_addr,
    input  wire [WIDTH-1:0]        wr_data
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i;

    always @(posedge clk) begin
        if (rd_en)
            rd_data <= mem[rd_addr];
        for (i = 0; i < WIDTH / GRAN; i = i + 1)
            if (wr_en[i])
                mem[wr_addr][i * GRAN +: GRAN] <= wr_data[i * GRAN +: GRAN];
    end
endmodule

`default_nettype wire
