// hwgen_pinlight: the engine (hwgen_top) behind four pins, for FPGA place-and-route only.
// Filled in by `hwgen implement` (the dollar-brace placeholders); see docs/implement.md.
//
// The engine's buses are ${IN_BITS} input and ${OUT_BITS} output bits wide, more than a small
// FPGA package has pins. This wrapper keeps every one of them live through one serial pin each way:
//   - inputs: a ${IN_BITS}-bit shift register fed from pin `si` drives every engine input, so
//     Yosys cannot treat any input as a constant;
//   - outputs: every engine output is registered, then folded into a ${OUT_BITS}-bit multiple-input
//     signature register (rotate and XOR), whose top bit is pin `so`. Each output bit reaches `so`
//     through the rotation, so no engine logic is unobservable and nothing is optimized away.
// Every engine port is registered on both sides, so the timing paths are the engine's own:
// register to register, as when the engine sits behind a registered bus in an SoC.
// Wrapper cost: ${WRAPPER_FF} flip-flops and ${OUT_BITS} two-input XORs.
`default_nettype none

module ${WRAPPER} (
    input  wire clk,
    input  wire rst,
    input  wire si,
    output wire so
);
    reg              rst_q;
    reg [${IN_BITS}-1:0]  in_q;
    reg [${OUT_BITS}-1:0] out_q;
    reg [${OUT_BITS}-1:0] sig;
    wire [${OUT_BITS}-1:0] out_w;

    always @(posedge clk) begin
        rst_q <= rst;
        in_q  <= {in_q[${IN_BITS}-2:0], si};
        out_q <= out_w;
        sig   <= {sig[${OUT_BITS}-2:0], sig[${OUT_BITS}-1]} ^ out_q;
    end
    assign so = sig[${OUT_BITS}-1];

    ${TOP} core (
        .clk(clk), .rst(rst_q),
        .desc_addr(in_q[31:0]), .start(in_q[32]),
        .req_ready(in_q[33]), .rd_valid(in_q[34]), .wr_ready(in_q[35]),
        .rd_data(in_q[${IN_BITS}-1:36]),
        .busy(out_w[0]), .done(out_w[1]),
        .req_valid(out_w[2]), .req_write(out_w[3]), .rd_ready(out_w[4]), .wr_valid(out_w[5]),
        .req_addr(out_w[37:6]), .req_len(out_w[53:38]), .mac_active(out_w[54]),
        .wr_data(out_w[${OUT_BITS}-1:55])
    );
endmodule

`default_nettype wire
